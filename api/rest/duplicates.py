"""``/api/v1/duplicates`` and ``/merges``: duplicate patients side by side, merges and their undo.

The actions themselves are ``sync.records.duplicates`` and ``patientmerge`` (they write
their audit entries); this module narrows them to a supervisor's areas: a duplicate pair or
a merge is in reach when both patients are. Anything out of reach is a 404, like something
absent. The pages (api.web.supervise) call the same functions.
"""
from __future__ import annotations

from typing import Any

from flask import Response
from marshmallow import Schema, fields
from sqlalchemy import and_, func, select
from sqlalchemy.orm import aliased

from models import db
from models.duplicates import DuplicateCandidate, PatientMerge
from models.health import Patient
from sync.errors import BadRequest, NotFound
from sync.records import duplicates, patientmerge
from sync.records.visibility import Visibility, area_clause
from sync.records.visitlog import PAGE_SIZE, full_name

from ..audit import audit_shown
from ..couch.params import json_object, send
from . import bp, caller, page_args, paged
from .decisions import CREATED, ID, LIST, ONE, PAIR, documented, row_id, state_arg, state_param
from .visits import load, reach, records_db, safe_id

# ------------------------------------------------------------------------------------------------ duplicates
PA, PB = aliased(Patient), aliased(Patient)


def _person(p: Any) -> dict[str, Any]:
    return {"id": p.doc_id, "name": full_name(p.given_name, p.family_name), "sex": p.sex,
            "birth_date": p.birth_date, "estimated_age_years": p.estimated_age_years, "area": p.area,
            "household_id": p.household_id, "visit_count": p.visit_count or 0, "merged_into": p.merged_into}


def _pairs(db_name: str, seen: Visibility, model: Any, a: Any, b: Any, *columns: Any) -> Any:
    return (select(*columns).select_from(model)
            .join(PA, and_(PA.db_name == model.db_name, PA.doc_id == a))
            .join(PB, and_(PB.db_name == model.db_name, PB.doc_id == b))
            .where(model.db_name == db_name, area_clause(PA.area, seen), area_clause(PB.area, seen)))


def _pair_json(c: DuplicateCandidate, a: Any, b: Any) -> dict[str, Any]:
    return {"a": _person(a), "b": _person(b), "score": c.score, "reasons": c.reasons, "state": c.state,
            "decided_by": c.decided_by, "decided_at": c.decided_at}


def candidates_in_reach(db_name: str, seen: Visibility, state: str | None, limit: int,
                        offset: int) -> tuple[list[dict[str, Any]], int]:
    """Candidate pairs with both patients in reach, best score first, and their count."""
    if state is not None and state not in ("open", "merged", "dismissed"):
        raise BadRequest("state must be one of open, merged, dismissed, all")
    C = DuplicateCandidate
    where = [C.state == state] if state else []
    total = db.session.scalar(_pairs(db_name, seen, C, C.patient_a, C.patient_b, func.count()).where(*where)) or 0
    rows = db.session.execute(_pairs(db_name, seen, C, C.patient_a, C.patient_b, C, PA, PB).where(*where).order_by(
        C.score.desc(), C.patient_a, C.patient_b).limit(limit).offset(offset))
    items = [_pair_json(*r) for r in rows]
    audit_shown([p["id"] for i in items for p in (i["a"], i["b"])])
    return items, int(total)


def pair_in_reach(db_name: str, seen: Visibility, a: str, b: str) -> dict[str, Any]:
    """A candidate pair in reach, with both patients' documents as they are now; or 404."""
    first, second = sorted((safe_id(a), safe_id(b)))
    C = DuplicateCandidate
    row = db.session.execute(_pairs(db_name, seen, C, C.patient_a, C.patient_b, C, PA, PB).where(
        C.patient_a == first, C.patient_b == second)).first()
    if row is None:
        raise NotFound("missing")
    bodies = duplicates.winning_bodies(db_name, [first, second])
    audit_shown([first, second])
    out = _pair_json(*row)
    out["a"]["document"], out["b"]["document"] = bodies.get(first), bodies.get(second)
    return out


def merge_json(m: PatientMerge) -> dict[str, Any]:
    """A merge as the API sends it."""
    return {"id": m.id, "survivor_id": m.survivor_id, "merged_id": m.merged_id, "filled_fields": m.filled_fields,
            "state": m.state, "by": m.by, "at": m.at, "undone_by": m.undone_by, "undone_at": m.undone_at,
            "survivor_rev_after": m.survivor_rev_after, "merged_rev_after": m.merged_rev_after}


def merge(db_name: str, seen: Visibility, a: str, b: str, survivor: object, actor: str) -> dict[str, Any]:
    """Merge a pair in reach into ``survivor`` (one of the two)."""
    pair_in_reach(db_name, seen, a, b)
    if survivor not in (a, b):
        raise BadRequest("survivor must be one of the two patients")
    merged = b if survivor == a else a
    return merge_json(patientmerge.merge_patients(db_name, str(survivor), merged, actor))


def dismiss(db_name: str, seen: Visibility, a: str, b: str, actor: str) -> dict[str, Any]:
    """Mark a pair in reach as two different people."""
    pair_in_reach(db_name, seen, a, b)
    duplicates.dismiss(db_name, a, b, actor)
    return pair_in_reach(db_name, seen, a, b)


def merges_in_reach(db_name: str, seen: Visibility, state: str | None, limit: int,
                    offset: int) -> tuple[list[dict[str, Any]], int]:
    """Merges with both patients in reach, newest first (``state`` None: all), and their count."""
    if state is not None and state not in ("merged", "undone"):
        raise BadRequest("state must be one of merged, undone, all")
    M = PatientMerge
    where = [M.state == state] if state else []
    total = db.session.scalar(_pairs(db_name, seen, M, M.survivor_id, M.merged_id, func.count()).where(*where))
    rows = db.session.execute(_pairs(db_name, seen, M, M.survivor_id, M.merged_id, M, PA, PB).where(*where)
                              .order_by(M.id.desc()).limit(limit).offset(offset))
    return [{**merge_json(m), "survivor": _person(s), "merged": _person(x)} for m, s, x in rows], int(total or 0)


def undo(db_name: str, seen: Visibility, merge_id: int, actor: str) -> dict[str, Any]:
    """Undo a merge in reach."""
    M = PatientMerge
    found = db.session.scalar(_pairs(db_name, seen, M, M.survivor_id, M.merged_id, M.id).where(
        M.id == row_id(merge_id)))
    if found is None:
        raise NotFound("missing")
    return merge_json(patientmerge.undo_merge(merge_id, actor))


# ------------------------------------------------------------------------------------------------ views
class MergeInputSchema(Schema):
    survivor = fields.String(required=True)


@bp.get("/duplicates")
@documented("Duplicate candidates in the caller's areas", "get", LIST, state_param("open, merged, dismissed"))
def list_duplicates() -> Response:
    """Candidate pairs with both patients in the caller's areas, best score first (default: open)."""
    limit, offset = page_args(PAGE_SIZE)
    return paged(*candidates_in_reach(records_db(), reach(), state_arg("open"), limit, offset), limit, offset)


@bp.get("/duplicates/<a>/<b>")
@documented("A candidate pair", "get", ONE, PAIR)
def get_duplicate(a: str, b: str) -> Response:
    """Two patients side by side with the score's reasons and both documents."""
    return send(pair_in_reach(records_db(), reach(), a, b))


@bp.post("/duplicates/<a>/<b>/merge")
@documented("Merge a pair", "post", CREATED, PAIR, "MergeInputSchema")
def merge_duplicate(a: str, b: str) -> Response:
    """Merge the pair into ``survivor``; the other patient becomes a redirect."""
    seen, body = reach(), load(MergeInputSchema(), json_object())
    return send(merge(records_db(), seen, a, b, body["survivor"], caller().name), 201)


@bp.post("/duplicates/<a>/<b>/dismiss")
@documented("Dismiss a pair", "post", ONE, PAIR)
def dismiss_duplicate(a: str, b: str) -> Response:
    """Mark the pair as two different people; it reopens only if its score rises."""
    return send(dismiss(records_db(), reach(), a, b, caller().name))


@bp.get("/merges")
@documented("Merges in the caller's areas", "get", LIST, state_param("merged, undone"))
def list_merges() -> Response:
    """Merges with both patients in the caller's areas, newest first."""
    limit, offset = page_args(PAGE_SIZE)
    return paged(*merges_in_reach(records_db(), reach(), state_arg(None), limit, offset), limit, offset)


@bp.post("/merges/<int:item_id>/undo")
@documented("Undo a merge", "post", ONE, ID)
def undo_merge(item_id: int) -> Response:
    """Undo a merge with new revisions of both patients; edits made since are kept."""
    return send(undo(records_db(), reach(), item_id, caller().name))
