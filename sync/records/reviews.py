"""Supervisors' reviews of visits: server-authored documents in the records database (DESIGN decision 8).

A review never edits the visit. It is its own document, ``review-<visit id>``, one per
visit: reviewing again writes a new revision of it, so the CHW's tablet holds one review
per visit, the latest. Its body follows docs/records.md (``visit_id``, ``chw``, ``state``,
``comment``, ``reviewer``, ``reviewed_at``) plus ``area``, the visit's area, so that the
scope index gives it to the CHW (``user:<chw>``) and to whoever supervises that area. The
document, written through ``sync.writes`` without a gate, and the audit entry
``review.write`` commit in one transaction under the database's write lock; the worker then
projects it into ``health_review`` and the CHW's tablet receives it by replication.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from .. import audit
from ..errors import BadRequest, NotFound
from ..reads import ReadOptions, get_doc
from ..store import write_lock
from ..writes import Author, Batch, edit_one
from .schemas import check_document, reason_of

PREFIX = "review-"
STATES = ("approved", "has_issues", "rejected")
MAX_COMMENT = 2000
Json = dict[str, Any]


def review_id(visit_id: str) -> str:
    """The id of a visit's review document."""
    return PREFIX + visit_id


def now_stamp() -> str:
    """The current UTC time as the documents write it (RFC 3339, milliseconds, ``Z``)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_review(state: object, comment: object) -> tuple[str, str | None]:
    """The state and the stripped comment (None when blank); a bad one raises ``BadRequest``."""
    if state not in STATES:
        raise BadRequest(f"state must be one of {', '.join(STATES)}")
    if comment is not None and not isinstance(comment, str):
        raise BadRequest("comment must be text")
    text = (comment or "").strip() or None
    if text is not None and len(text) > MAX_COMMENT:
        raise BadRequest(f"comment must be at most {MAX_COMMENT} characters")
    if text is None and state != "approved":
        # The CHW reads it on the tablet: "has issues" without saying which helps nobody.
        raise BadRequest("A review that is not an approval needs a comment saying what to fix")
    return str(state), text


def read_review(db_name: str, visit_id: str) -> Json | None:
    """The current review document of a visit (with ``_rev``), or None."""
    try:
        return get_doc(db_name, review_id(visit_id), None, ReadOptions())
    except NotFound:
        return None


def write_review(db_name: str, visit_id: str, state: object, comment: object, reviewer: str) -> Json:
    """Write (or revise) the review of ``visit_id``; return the review document with its new ``_rev``.

    :raise 400 bad_request: a bad state or comment. :raise 404 not_found: no live visit ``visit_id``.
    """
    state, text = check_review(state, comment)
    rid = review_id(visit_id)
    with write_lock(db_name) as txn:
        batch = Batch(txn, author=Author(reviewer, "review"))
        batch.load([visit_id, rid])
        visit = batch.docs.get(visit_id)
        body = batch.bodies_of(visit, [visit.winning_rev]).get(visit.winning_rev) if visit and not visit.deleted \
            else None
        if body is None or body.get("type") != "visit":
            raise NotFound(f"No visit {visit_id}")
        review: Json = {"_id": rid, "type": "review", "visit_id": visit_id, "chw": body.get("chw"), "state": state,
                        **({"comment": text} if text is not None else {}), "reviewer": reviewer,
                        "reviewed_at": now_stamp(), **({"area": body["area"]} if body.get("area") else {})}
        errors = check_document(review)
        if errors is not None:  # a visit without a valid chw cannot be addressed to anyone
            raise BadRequest(f"Cannot review this visit. {reason_of(errors)}")
        existing = batch.docs.get(rid)
        if existing is not None and not existing.deleted:
            review["_rev"] = existing.winning_rev
        rev = edit_one(batch, review)["rev"]
        batch.flush()
        audit.record(reviewer, "review.write", db_name=db_name, doc_id=visit_id, review_id=rid, rev=rev, state=state)
    return {**review, "_rev": rev}
