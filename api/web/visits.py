"""The visit log of a supervisor's team (``/visits``) and one visit with its review form.

The data comes from the same functions as the JSON twin (api.rest.visits), so a page and
``/api/v1/visits`` show the same rows under the same access rule. A bad filter shows its
reason above an empty log with status 400; a visit out of reach is the same 404 as a
missing one.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from models import db
from models.access import Area
from models.health import Campaign
from sync.errors import BadRequest, CouchError, NotFound
from sync.records import activity, reviews, visitlog
from sync.records.visibility import Visibility, area_clause, visibility_of

from ..audit import audit_shown
from ..rest.visits import photo, records_db, safe_id, visit_detail
from . import add_nav, bp, page, signed_in

ROLES = ("supervisor",)
REVIEW_LABELS = {"none": "Not reviewed", "approved": "Approved", "has_issues": "Has issues", "rejected": "Rejected"}
# The supervisors' header, in reading order (the other page modules import this one first).
for _endpoint, _label in (("web.visit_log", "Visits"), ("web.conflicts", "Conflicts"), ("web.quarantine", "Quarantine"),
                          ("web.duplicates", "Duplicates"), ("web.activity", "Activity")):
    add_nav(_endpoint, _label, *ROLES)


def seen_by_user() -> Visibility:
    """The signed-in user's reach over the central records."""
    user = signed_in()
    assert user is not None  # the page decorator has checked
    return visibility_of(user.name, user.roles)


@bp.app_template_filter("sup_time")
def sup_time(value: Any) -> str:
    """A time for people: UTC text or epoch seconds as ``2026-11-20 06:15 UTC``."""
    if value is None or value == "":
        return "—"
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = str(value)
    return f"{text[:10]} {text[11:16]} UTC" if len(text) >= 16 and text[10] in "Tt " else text


@bp.app_template_filter("sup_json")
def sup_json(value: Any) -> str:
    """A JSON value as indented text."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def campaigns_in_scope(db_name: str, seen: Visibility) -> list[tuple[str, str]]:
    """(id, name) of live campaigns with an area the reader sees, above or below their own, for a filter menu."""
    rows = db.session.execute(select(Campaign.doc_id, Campaign.name, Campaign.areas).where(
        Campaign.db_name == db_name, Campaign.deleted.is_(False)).order_by(Campaign.name, Campaign.doc_id))
    out = []
    for doc_id, name, areas in rows:
        if seen.all or any(_overlaps(a, s) for a in areas or [] for s in seen.areas):
            out.append((doc_id, name or doc_id))
    return out


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def filter_menus(seen: Visibility) -> dict[str, Any]:
    """The choices of the filter form: the team's CHWs, areas in reach, campaigns, kinds, flags."""
    areas = list(db.session.scalars(select(Area.path).where(
        Area.kind != "facility", area_clause(Area.path, seen)).order_by(Area.path)))
    return {"chws": [c.name for c in activity.team(seen).values()], "areas": areas,
            "campaigns": campaigns_in_scope(records_db(), seen), "kinds": visitlog.KINDS,
            "flags": visitlog.FLAGS, "reviews": REVIEW_LABELS}


@bp.get("/visits")
@page(*ROLES)
def visit_log() -> Any:
    """The visits of the team, newest first, filtered, 50 a page."""
    seen = seen_by_user()
    error, rows, total, filt = None, [], 0, visitlog.VisitFilter()
    number = request.args.get("page", "1")
    try:
        filt = visitlog.parse_filters(request.args)
        if not (number.isascii() and number.isdigit()) or not 1 <= int(number) <= 10**6:
            raise BadRequest("page must be a whole number from 1")
        rows, total = visitlog.list_visits(records_db(), seen, filt, limit=visitlog.PAGE_SIZE,
                                           offset=(int(number) - 1) * visitlog.PAGE_SIZE)
        audit_shown([(r["doc_id"], r["rev"]) for r in rows] + [r["patient_id"] for r in rows])
    except CouchError as exc:
        error = exc.reason
    pages = max(1, -(-total // visitlog.PAGE_SIZE))
    current = int(number) if error is None else 1
    links = {name: url_for("web.visit_log", **filt.query_args(), page=n)
             for name, n in (("prev", current - 1), ("next", current + 1)) if 1 <= n <= pages}
    return render_template("visit_log.html", rows=rows, total=total, error=error, args=request.args,
                           page=current, pages=pages, links=links, **filter_menus(seen)), 400 if error else 200


@bp.get("/visits/<doc_id>")
@page(*ROLES)
def visit_page(doc_id: str) -> Any:
    """One visit: observations, photos, revision history, who synced it, its review."""
    return _render_visit(doc_id)


def _render_visit(doc_id: str, error: str | None = None, form: dict[str, str] | None = None) -> Any:
    try:
        visit = visit_detail(records_db(), seen_by_user(), doc_id)
    except NotFound:
        abort(404)
    return render_template("visit.html", visit=visit, error=error, form=form or {},
                           states=reviews.STATES, labels=REVIEW_LABELS), 400 if error else 200


@bp.get("/visits/<doc_id>/photos/<path:name>")
@page(*ROLES)
def visit_photo_page(doc_id: str, name: str) -> Any:
    """A photo of a visit, under the visit's access rule."""
    try:
        return photo(records_db(), seen_by_user(), doc_id, name)
    except NotFound:
        abort(404)


@bp.post("/visits/<doc_id>/review")
@page(*ROLES)
def review_page(doc_id: str) -> Any:
    """Save the review of a visit; the CHW's tablet receives it with its next sync."""
    user = signed_in()
    assert user is not None
    db_name, seen = records_db(), seen_by_user()
    try:
        if visitlog.visit_row(db_name, seen, safe_id(doc_id)) is None:
            raise NotFound()
    except NotFound:
        abort(404)
    state, comment = request.form.get("state"), request.form.get("comment")
    try:
        reviews.write_review(db_name, doc_id, state, comment, user.name)
    except CouchError as exc:
        return _render_visit(doc_id, exc.reason, {"state": state or "", "comment": comment or ""})
    flash(f"Review saved: {REVIEW_LABELS.get(state or '', state)}.", "ok")
    return redirect(url_for("web.visit_page", doc_id=doc_id))
