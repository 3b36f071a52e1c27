"""The partner clinician's page: referrals to their facility, marked received or completed.

A patient's record is shown only where the patient consented to sharing with partners.
Marking a referral writes a new revision of its document as the clinician; the CHW's
tablet receives it at its next sync.
"""
from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for

from sync.errors import BadRequest, Conflict, Forbidden, NotFound
from sync.records.referrals import STATUSES, list_referrals, set_status
from sync.records.visibility import Visibility, visibility_of

from ..audit import audit_shown
from . import add_nav, bp, page, signed_in

PAGE = 50

add_nav("web.referrals", "Referrals", "clinician")


def _db() -> str:
    return str(current_app.config["WASL_RECORDS_DB"])


def _viewer() -> tuple[str, tuple[str, ...], Visibility]:
    user = signed_in()
    assert user is not None  # @page saw to it
    return user.name, user.roles, visibility_of(user.name, user.roles)


def _offset(value: str | None) -> int:
    return int(value) if value and value.isdigit() and len(value) < 10 else 0


@bp.get("/referrals")
@page("clinician")
def referrals() -> str:
    """Referrals to the clinician's facilities, newest first, filtered by status."""
    status = request.args.get("status") or None
    if status not in (None, *STATUSES):
        abort(400)
    offset = _offset(request.args.get("offset"))
    _, _, seen = _viewer()
    items, total = list_referrals(_db(), seen, status=status, limit=PAGE, offset=offset)
    audit_shown([(i["id"], i["rev"]) for i in items] + [i["patient_id"] for i in items if i["patient_shared"]])
    return render_template("referrals.html", items=items, total=total, status=status, statuses=STATUSES,
                           offset=offset, limit=PAGE, facilities=seen.facilities, everything=seen.all)


@bp.post("/referrals/<referral_id>/status")
@page("clinician")
def referral_status(referral_id: str) -> Any:
    """Mark a referral received or completed, with an optional note."""
    name, roles, seen = _viewer()
    back = {k: v for k, v in (("status", request.form.get("back_status")),
                              ("offset", request.form.get("back_offset"))) if v}
    try:
        set_status(_db(), referral_id, request.form.get("status"), request.form.get("note"), name=name,
                   roles=roles, seen=seen)
    except NotFound:
        abort(404)
    except (BadRequest, Conflict, Forbidden) as exc:
        flash(exc.reason, "error")
    else:
        flash(f"Referral marked {request.form.get('status')}. The CHW's tablet receives it at its next sync.")
    return redirect(url_for("web.referrals", **back))
