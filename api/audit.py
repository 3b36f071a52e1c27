"""``GET /api/v1/audit``: the audit log, for admins, newest first.

Filters: ``actor``, ``action`` (a trailing ``.`` matches a family, e.g. ``auth.``), ``db``,
``doc_id``, ``device_id``, ``since`` and ``until`` (RFC 3339 date-times or epoch seconds),
``limit`` (1 to 1000, default 100) and ``offset``, ``patient`` (entries on that patient's
document and on every document whose central row names the patient: visits, referrals).
A bad filter is a 400 that names it.

``audit_shown`` is what the REST API and the pages call when they show documents of the
records database: one ``doc.read`` entry per document, written before the reply.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, g, request

from sync import audit
from sync.errors import BadRequest, Forbidden, Unauthorized
from sync.scope import is_admin

from .couch.auth import current_user
from .couch.params import send, whole_arg

bp = Blueprint("audit", __name__, url_prefix="/api/v1/audit")
FILTERS = ("actor", "action", "db", "doc_id", "device_id", "patient", "since", "until", "limit", "offset")
VIA = {"rest": "api", "web": "page"}  # blueprint -> the audit's name for the path


def audit_shown(doc_ids: Iterable[str | tuple[str, str] | None], *, via: str | None = None,
                db_name: str | None = None, **detail: Any) -> None:
    """Audit records-database documents the caller of this request is shown (a page, the API, an export).

    ``via`` defaults to ``api`` under ``/api/v1`` and ``page`` for the pages; ``None`` items
    (a visit without a patient) are skipped; ``(doc_id, rev)`` names the revision shown.
    :raise: whatever stops the entries being written: the caller then shows nothing.
    """
    user = g.get("rest_user") or g.get("web_user") or g.get("user")
    if user is None or request.method == "HEAD":
        return
    name = db_name or str(current_app.config["WASL_RECORDS_DB"])
    # A view that shows a document twice (an item before and after a decision) audits it once.
    done: set[tuple[str, str]] = g.setdefault("wasl_audited", set())
    fresh = [i for i in doc_ids if i and (name, i if isinstance(i, str) else i[0]) not in done]
    audit.record_reads(user.name, name, fresh, device_id=getattr(user, "device_id", None),
                       via=via or VIA.get(request.blueprint or "", "api"), **detail)
    done.update((name, i if isinstance(i, str) else i[0]) for i in fresh)


def _time(name: str) -> float | None:
    """A filter time: epoch seconds, or an RFC 3339 date-time with an offset."""
    value = request.args.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise BadRequest(f"{name} must be epoch seconds or an RFC 3339 date-time with an offset")
    return parsed.timestamp()


@bp.get("")
def list_entries() -> Response:
    """The audit entries matching the filters, newest first (admins only)."""
    user = current_user()
    if user is None:
        raise Unauthorized()
    if not is_admin(user.roles):
        raise Forbidden("Only admins read the audit log")
    unknown = sorted(set(request.args) - set(FILTERS))
    if unknown:
        raise BadRequest(f"Unknown filter {unknown[0]!r}; use {', '.join(FILTERS)}")
    limit, offset = whole_arg("limit", 100, 1, 1000), whole_arg("offset", 0, 0, 10**9)
    found = audit.entries(actor=request.args.get("actor"), action=request.args.get("action"),
                          db_name=request.args.get("db"), doc_id=request.args.get("doc_id"),
                          device_id=request.args.get("device_id"), patient=request.args.get("patient"),
                          since=_time("since"), until=_time("until"), limit=limit, offset=offset)
    return send({"entries": [audit.entry_json(e) for e in found], "limit": limit, "offset": offset})
