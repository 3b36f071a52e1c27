"""``/api/v1/conflicts``, ``/quarantine``, ``/duplicates`` and ``/merges``: a supervisor's decisions.

The actions themselves are ``sync.records.conflicts``, ``quarantine``, ``duplicates`` and
``patientmerge`` (they write their audit entries); this module narrows what a supervisor
sees and may decide to their areas. A conflict is in reach when its document's area (from
the central tables) is; a quarantined revision when the area of the document as sent is
(or, when that is not an area path, the stored document's); a duplicate pair or a merge when
both patients are. Anything out of reach is a 404, like something absent. The pages
(api.web.supervise) call the same functions.
"""
from __future__ import annotations

from typing import Any

from flask import Response, request
from marshmallow import Schema, fields
from sqlalchemy import and_, func, select
from sqlalchemy.orm import aliased

from models import db
from models.conflicts import ConflictRecord
from models.duplicates import DuplicateCandidate, PatientMerge
from models.health import Household, Patient, Referral, Visit
from models.quarantine import QuarantinedRevision
from sync import jsoncodec
from sync.errors import BadRequest, NotFound
from sync.records import conflicts, duplicates, patientmerge, quarantine
from sync.records.visibility import Visibility, area_clause, in_areas
from sync.records.visitlog import full_name
from sync.scope import is_area_path

from ..couch.params import json_object, send
from . import bp, caller, paged
from .visits import load, paging, reach, records_db, safe_id

MAX_ID = 2**31 - 1


def _row_id(value: int) -> int:
    if not 0 < value <= MAX_ID:
        raise NotFound("missing")
    return value


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
    return [_conflict_item(*r) for r in rows], int(total)


def conflict_in_reach(db_name: str, seen: Visibility, conflict_id: int) -> dict[str, Any]:
    """One conflict in reach, or 404."""
    row = db.session.execute(_conflict_query(
        db_name, seen, ConflictRecord, _area_of_doc(), Patient.given_name, Patient.family_name, Household.name)
        .where(ConflictRecord.id == _row_id(conflict_id))).first()
    if row is None:
        raise NotFound("missing")
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
    for row_id, _, text in items:
        area = jsoncodec.loads(text).get("area")
        out[row_id] = area if is_area_path(area) else None
    unknown = {doc_id for row_id, doc_id, _ in items if out[row_id] is None}
    stored: dict[str, str | None] = {}
    for model in (Patient, Household, Visit, Referral) if unknown else ():
        stored.update(db.session.execute(select(model.doc_id, model.area).where(
            model.db_name == db_name, model.doc_id.in_(list(unknown)))).tuples())
    return {row_id: out[row_id] or stored.get(doc_id) for row_id, doc_id, _ in items}


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
    return [_item_json(r, page[r.id]) for r in rows], len(matching)


def held_item(db_name: str, seen: Visibility, item_id: int) -> tuple[QuarantinedRevision, dict[str, Any]]:
    """One quarantined revision in reach with its document, or 404."""
    row = db.session.get(QuarantinedRevision, _row_id(item_id))
    if row is None or row.db_name != db_name:
        raise NotFound("missing")
    area = _areas_of(db_name, [(row.id, row.doc_id, row.body)])[row.id]
    if not in_areas(area, seen):
        raise NotFound("missing")
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
    return [_pair_json(*r) for r in rows], int(total)


def pair_in_reach(db_name: str, seen: Visibility, a: str, b: str) -> dict[str, Any]:
    """A candidate pair in reach, with both patients' documents as they are now; or 404."""
    first, second = sorted((safe_id(a), safe_id(b)))
    C = DuplicateCandidate
    row = db.session.execute(_pairs(db_name, seen, C, C.patient_a, C.patient_b, C, PA, PB).where(
        C.patient_a == first, C.patient_b == second)).first()
    if row is None:
        raise NotFound("missing")
    bodies = duplicates.winning_bodies(db_name, [first, second])
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
        M.id == _row_id(merge_id)))
    if found is None:
        raise NotFound("missing")
    return merge_json(patientmerge.undo_merge(merge_id, actor))


# ------------------------------------------------------------------------------------------------ views
def _state(default: str | None) -> str | None:
    value = request.args.get("state", default)
    return None if value == "all" else value


class SupervisedListSchema(Schema):
    items = fields.List(fields.Dict(), required=True)
    total = fields.Integer(required=True)
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)


class ChoiceInputSchema(Schema):
    rev = fields.String(required=True)


class ReleaseInputSchema(Schema):
    document = fields.Dict(required=True)


class DiscardInputSchema(Schema):
    note = fields.String(required=True)


class MergeInputSchema(Schema):
    survivor = fields.String(required=True)


# Every view answers these errors alike: the body is {"error", "reason"}.
_ERR = "{content: {application/json: {schema: ErrorReplySchema}}, description: "


def _doc(summary: str, method: str, ok: str, params: str = "", body: str = "") -> str:
    """An OpenAPI block for a view's docstring (the views share their parameters and errors)."""
    lines = [f"{method}:", f"  summary: {summary}", "  security: [{basic: []}, {bearer: []}]"]
    if params:
        lines.append(f"  parameters: [{params}]")
    if body:
        lines.append(f"  requestBody: {{required: true, content: {{application/json: {{schema: {body}}}}}}}")
    lines += ["  responses:", f"    {ok}", f"    400: {_ERR}Bad input}}", f"    401: {_ERR}Not signed in}}",
              f"    403: {_ERR}Not a supervisor}}", f"    404: {_ERR}Not found or out of reach}}"]
    if method == "post":
        lines += [f"    409: {_ERR}Already decided}}", f"    415: {_ERR}Not JSON}}"]
    return "\n".join(lines)


def documented(summary: str, method: str, ok: str, params: str = "", body: str = "") -> Any:
    """Append the view's OpenAPI block to its docstring."""
    def decorate(view: Any) -> Any:
        """Set the docstring apispec reads."""
        view.__doc__ = f"{view.__doc__}\n---\n{_doc(summary, method, ok, params, body)}"
        return view
    return decorate


LIST = "200: {description: One page, content: {application/json: {schema: SupervisedListSchema}}}"
ONE = "200: {description: The record, content: {application/json: {schema: {type: object}}}}"
CREATED = ONE.replace("200", "201", 1)
PAGING = ("{in: query, name: limit, schema: {type: integer, minimum: 1, maximum: 500}}, "
          "{in: query, name: offset, schema: {type: integer, minimum: 0, maximum: 1000000000}}")
ID = "{in: path, name: item_id, required: true, schema: {type: integer}}"
PAIR = ("{in: path, name: a, required: true, schema: {type: string}}, "
        "{in: path, name: b, required: true, schema: {type: string}}")


def _state_param(values: str) -> str:
    return f"{{in: query, name: state, schema: {{type: string, enum: [{values}, all]}}}}, {PAGING}"


@bp.get("/conflicts")
@documented("Conflicts in the caller's areas", "get", LIST, _state_param("open, kept, changed"))
def list_conflicts() -> Response:
    """Hard conflicts of documents in the caller's areas, oldest first (default: open)."""
    limit, offset = paging()
    return paged(*conflicts_in_reach(records_db(), reach(), _state("open"), limit, offset), limit, offset)


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
@documented("Quarantined revisions in the caller's areas", "get", LIST, _state_param("held, released, discarded"))
def list_quarantine() -> Response:
    """Refused revisions in the caller's areas, oldest first (default: held)."""
    limit, offset = paging()
    return paged(*held_in_reach(records_db(), reach(), _state("held"), limit, offset), limit, offset)


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


@bp.get("/duplicates")
@documented("Duplicate candidates in the caller's areas", "get", LIST, _state_param("open, merged, dismissed"))
def list_duplicates() -> Response:
    """Candidate pairs with both patients in the caller's areas, best score first (default: open)."""
    limit, offset = paging()
    return paged(*candidates_in_reach(records_db(), reach(), _state("open"), limit, offset), limit, offset)


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
@documented("Merges in the caller's areas", "get", LIST, _state_param("merged, undone"))
def list_merges() -> Response:
    """Merges with both patients in the caller's areas, newest first."""
    limit, offset = paging()
    return paged(*merges_in_reach(records_db(), reach(), _state(None), limit, offset), limit, offset)


@bp.post("/merges/<int:item_id>/undo")
@documented("Undo a merge", "post", ONE, ID)
def undo_merge(item_id: int) -> Response:
    """Undo a merge with new revisions of both patients; edits made since are kept."""
    return send(undo(records_db(), reach(), item_id, caller().name))
