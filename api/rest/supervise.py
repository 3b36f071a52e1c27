"""``/api/v1/conflicts`` and ``/quarantine``: a supervisor's decisions on documents.

The actions themselves are ``sync.records.conflicts`` and ``quarantine`` (they write their
audit entries); this module narrows what a supervisor sees and may decide to their areas. A
conflict is in reach when its document's area (from the central tables) is; a quarantined
revision when the area of the document as sent is (or, when that is not an area path, the
stored document's). Anything out of reach is a 404, like something absent. Duplicate
patients and merges are ``api.rest.duplicates``. The pages (api.web.supervise) call the same
functions, the duplicates' ones through this module too.
"""
from __future__ import annotations

from typing import Any

from flask import Response
from marshmallow import Schema, fields
from sqlalchemy import and_, func, select

from models import db
from models.conflicts import ConflictRecord
from models.health import Household, Patient, Referral, Visit
from models.quarantine import QuarantinedRevision
from sync import jsoncodec
from sync.errors import BadRequest, NotFound
from sync.records import conflicts, quarantine
from sync.records.visibility import Visibility, area_clause, in_areas
from sync.records.visitlog import PAGE_SIZE, full_name
from sync.scope import is_area_path

from ..audit import audit_shown
from ..couch.params import json_object, send
from . import bp, caller, page_args, paged
from .decisions import ID, LIST, ONE, documented, row_id, state_arg, state_param
from .duplicates import (candidates_in_reach, dismiss, merge, merge_json, merges_in_reach,  # noqa: F401 (the pages)
                         pair_in_reach, undo)
from .visits import load, reach, records_db


# ------------------------------------------------------------------------------------------------ conflicts
def _area_of_doc() -> Any:
    return func.coalesce(Patient.area, Household.area, Visit.area, Referral.area)


def _conflict_query(db_name: str, seen: Visibility, *columns: Any) -> Any:
    query = select(*columns).select_from(ConflictRecord)
    for model in (Patient, Household, Visit, Referral):
        query = query.outerjoin(model, and_(model.db_name == ConflictRecord.db_name,
                                            model.doc_id == ConflictRecord.doc_id))
    return query.where(ConflictRecord.db_name == db_name, area_clause(_area_of_doc(), seen))


def _conflict_item(record: ConflictRecord, area: str | None, given: str | None, family: str | None,
                   hh: str | None) -> dict[str, Any]:
    return {**conflicts.conflict_json(record), "area": area, "label": full_name(given, family) or hh}


def conflicts_in_reach(db_name: str, seen: Visibility, state: str | None, limit: int,
                       offset: int) -> tuple[list[dict[str, Any]], int]:
    """Conflicts of documents in reach (``state`` None: all), oldest first, and their count."""
    if state is not None and state not in ("open", "kept", "changed"):
        raise BadRequest("state must be one of open, kept, changed, all")
    where = [ConflictRecord.state == state] if state else []
    total = db.session.scalar(_conflict_query(db_name, seen, func.count()).where(*where)) or 0
    rows = db.session.execute(_conflict_query(
        db_name, seen, ConflictRecord, _area_of_doc(), Patient.given_name, Patient.family_name, Household.name)
        .where(*where).order_by(ConflictRecord.id).limit(limit).offset(offset))
    items = [_conflict_item(*r) for r in rows]
    audit_shown([i["doc_id"] for i in items])
    return items, int(total)


def conflict_in_reach(db_name: str, seen: Visibility, conflict_id: int) -> dict[str, Any]:
    """One conflict in reach, or 404."""
    row = db.session.execute(_conflict_query(
        db_name, seen, ConflictRecord, _area_of_doc(), Patient.given_name, Patient.family_name, Household.name)
        .where(ConflictRecord.id == row_id(conflict_id))).first()
    if row is None:
        raise NotFound("missing")
    audit_shown([row[0].doc_id])
    return _conflict_item(*row)


def choose(db_name: str, seen: Visibility, conflict_id: int, rev: object, actor: str) -> dict[str, Any]:
    """Settle a conflict in reach with the value of leaf ``rev``; the conflict as it is now."""
    conflict_in_reach(db_name, seen, conflict_id)
    if not isinstance(rev, str) or not rev:
        raise BadRequest("rev must name one of the conflict's values")
    written = conflicts.choose(conflict_id, rev, actor)
    return {**conflict_in_reach(db_name, seen, conflict_id), "written_rev": written}


# ------------------------------------------------------------------------------------------------ quarantine
def _item_json(row: QuarantinedRevision, area: str | None, document: bool = False) -> dict[str, Any]:
    doc = row.document
    out = {"id": row.id, "doc_id": row.doc_id, "rev": row.rev, "parent_rev": row.parent_rev,
           "replicated": row.replicated, "type": doc.get("type") if isinstance(doc.get("type"), str) else None,
           "area": area, "reason": row.reason, "fields": row.fields, "actor": row.actor, "device_id": row.device_id,
           "received_at": row.received_at, "last_seen_at": row.last_seen_at, "attempts": row.attempts,
           "state": row.state, "decided_by": row.decided_by, "decided_at": row.decided_at,
           "decision_note": row.decision_note, "released_rev": row.released_rev}
    return {**out, "document": doc} if document else out


def _areas_of(db_name: str, items: list[tuple[int, str, str]]) -> dict[int, str | None]:
    """The area of each held row (id, doc id, body text): the body's, else the stored document's."""
    out: dict[int, str | None] = {}
    for key, _, text in items:
        area = jsoncodec.loads(text).get("area")
        out[key] = area if is_area_path(area) else None
    unknown = {doc_id for key, doc_id, _ in items if out[key] is None}
    stored: dict[str, str | None] = {}
    for model in (Patient, Household, Visit, Referral) if unknown else ():
        stored.update(db.session.execute(select(model.doc_id, model.area).where(
            model.db_name == db_name, model.doc_id.in_(list(unknown)))).tuples())
    return {key: out[key] or stored.get(doc_id) for key, doc_id, _ in items}


def held_in_reach(db_name: str, seen: Visibility, state: str | None, limit: int,
                  offset: int) -> tuple[list[dict[str, Any]], int]:
    """Quarantined revisions in reach, oldest first, and their count (``state`` None: all)."""
    if state is not None and state not in ("held", "released", "discarded"):
        raise BadRequest("state must be one of held, released, discarded, all")
    base = select(QuarantinedRevision.id, QuarantinedRevision.doc_id, QuarantinedRevision.body).where(
        QuarantinedRevision.db_name == db_name, *([QuarantinedRevision.state == state] if state else [])).order_by(
        QuarantinedRevision.received_at, QuarantinedRevision.id)
    # The area sits inside the JSON body: filtered here, a chunk at a time (the quarantine stays small).
    matching: list[tuple[int, str | None]] = []
    for start in range(0, 10**9, 500):
        chunk = db.session.execute(base.limit(500).offset(start)).all()
        areas = _areas_of(db_name, [(r.id, r.doc_id, r.body) for r in chunk])
        matching += [(r.id, areas[r.id]) for r in chunk if in_areas(areas[r.id], seen)]
        if len(chunk) < 500:
            break
    page = dict(matching[offset:offset + limit])
    rows = db.session.scalars(select(QuarantinedRevision).where(QuarantinedRevision.id.in_(list(page))).order_by(
        QuarantinedRevision.received_at, QuarantinedRevision.id)) if page else []
    items = [_item_json(r, page[r.id]) for r in rows]
    audit_shown([(i["doc_id"], i["rev"]) for i in items])
    return items, len(matching)


def held_item(db_name: str, seen: Visibility, item_id: int) -> tuple[QuarantinedRevision, dict[str, Any]]:
    """One quarantined revision in reach with its document, or 404."""
    row = db.session.get(QuarantinedRevision, row_id(item_id))
    if row is None or row.db_name != db_name:
        raise NotFound("missing")
    area = _areas_of(db_name, [(row.id, row.doc_id, row.body)])[row.id]
    if not in_areas(area, seen):
        raise NotFound("missing")
    audit_shown([(row.doc_id, row.rev)])
    return row, _item_json(row, area, document=True)


def release(db_name: str, seen: Visibility, item_id: int, corrected: object, actor: str) -> dict[str, Any]:
    """Release a correction of a held revision in reach; it must stay in the supervisor's areas."""
    held_item(db_name, seen, item_id)
    if not isinstance(corrected, dict):
        raise BadRequest("The corrected document must be a JSON object")
    if not seen.all and not in_areas(corrected.get("area"), seen):  # type: ignore[arg-type]
        raise BadRequest("The corrected document's area must lie in one of your areas")
    winner = quarantine.release(item_id, corrected, actor)
    return {**held_item(db_name, seen, item_id)[1], "winning_rev": winner}


def discard(db_name: str, seen: Visibility, item_id: int, note: object, actor: str) -> dict[str, Any]:
    """Discard a held revision in reach, with a note."""
    held_item(db_name, seen, item_id)
    quarantine.discard(item_id, actor, note)  # type: ignore[arg-type]
    return held_item(db_name, seen, item_id)[1]


# ------------------------------------------------------------------------------------------------ views
class ChoiceInputSchema(Schema):
    rev = fields.String(required=True)


class ReleaseInputSchema(Schema):
    document = fields.Dict(required=True)


class DiscardInputSchema(Schema):
    note = fields.String(required=True)


@bp.get("/conflicts")
@documented("Conflicts in the caller's areas", "get", LIST, state_param("open, kept, changed"))
def list_conflicts() -> Response:
    """Hard conflicts of documents in the caller's areas, oldest first (default: open)."""
    limit, offset = page_args(PAGE_SIZE)
    return paged(*conflicts_in_reach(records_db(), reach(), state_arg("open"), limit, offset), limit, offset)


@bp.get("/conflicts/<int:item_id>")
@documented("A conflict", "get", ONE, ID)
def get_conflict(item_id: int) -> Response:
    """One conflict with every leaf's value, author and time."""
    return send(conflict_in_reach(records_db(), reach(), item_id))


@bp.post("/conflicts/<int:item_id>/choose")
@documented("Settle a conflict", "post", ONE, ID, "ChoiceInputSchema")
def choose_conflict(item_id: int) -> Response:
    """Keep the value of one leaf (``rev``); it is written on the document's current winner."""
    seen, body = reach(), load(ChoiceInputSchema(), json_object())
    return send(choose(records_db(), seen, item_id, body["rev"], caller().name))


@bp.get("/quarantine")
@documented("Quarantined revisions in the caller's areas", "get", LIST, state_param("held, released, discarded"))
def list_quarantine() -> Response:
    """Refused revisions in the caller's areas, oldest first (default: held)."""
    limit, offset = page_args(PAGE_SIZE)
    return paged(*held_in_reach(records_db(), reach(), state_arg("held"), limit, offset), limit, offset)


@bp.get("/quarantine/<int:item_id>")
@documented("A quarantined revision", "get", ONE, ID)
def get_quarantined(item_id: int) -> Response:
    """One refused revision with its reason per field and the document as sent."""
    return send(held_item(records_db(), reach(), item_id)[1])


@bp.post("/quarantine/<int:item_id>/release")
@documented("Release a correction", "post", ONE, ID, "ReleaseInputSchema")
def release_quarantined(item_id: int) -> Response:
    """Store the corrected ``document`` in place of the refused revision."""
    seen, body = reach(), load(ReleaseInputSchema(), json_object())
    return send(release(records_db(), seen, item_id, body["document"], caller().name))


@bp.post("/quarantine/<int:item_id>/discard")
@documented("Discard a refused revision", "post", ONE, ID, "DiscardInputSchema")
def discard_quarantined(item_id: int) -> Response:
    """Close a refused revision without storing it; ``note`` says why."""
    seen, body = reach(), load(DiscardInputSchema(), json_object())
    return send(discard(records_db(), seen, item_id, body["note"], caller().name))
