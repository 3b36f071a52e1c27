"""Duplicate patients: candidate pairs, the supervisors' list, a merge that keeps everything, its undo.

Patients are read from the records database itself (the winning revision of each
document), never from central tables. ``refresh_candidates`` keeps, per live patient,
its blocking keys (sync.records.matching) in ``record_patient_key`` and the scored pairs
in ``record_duplicate``; it commits its own transaction. ``merge_patients`` and
``undo_merge`` write server-authored revisions of both patients in one ``write_lock``
transaction, so devices receive them (and the merged-away patient's ``merged_into``
redirect) through normal replication. Refusals raise ``sync.errors`` (BadRequest,
NotFound, Conflict) and change nothing. The rules are in docs/records.md.
"""
from __future__ import annotations

import time
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from models import db
from models.duplicates import CANDIDATE_STATES, DuplicateCandidate, PatientKey, PatientMerge

from .. import audit
from ..errors import BadRequest, Conflict, NotFound
from ..rows import CHUNK, DocRow, bodies_of, docs_by_ids
from ..store import get_database, write_lock
from ..writes import Batch, DocState, edit_one
from .matching import THRESHOLD, Match, blocking_keys, score

Body = dict[str, Any]
# Bookkeeping fields a merge never copies from the merged-away patient.
NOT_FILLED = frozenset({"type", "area", "updated_at", "updated_by", "merged_into", "merged_from"})
_CAND = DuplicateCandidate.__table__


def _stamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _chunks(items: list[str]) -> list[list[str]]:
    return [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]


def is_live_patient(body: Body | None) -> bool:
    """A patient that takes part in matching: not deleted, not a redirect."""
    return body is not None and body.get("type") == "patient" and not body.get("merged_into")


def winning_bodies(db_name: str, doc_ids: list[str]) -> dict[str, Body | None]:
    """The winning body of each document, None for a missing or deleted one."""
    found = bodies_of_rows(list(docs_by_ids(get_database(db_name).id, doc_ids).values()))
    return {d: found.get(d) for d in doc_ids}


def bodies_of_rows(rows: list[DocRow]) -> dict[str, Body | None]:
    """The winning body of each row, None for a deleted one."""
    live = [r for r in rows if not r.deleted]
    bodies: dict[tuple[int, str], Body] = {}
    # Small slices: the query's two IN lists are probed as a cross product.
    for start in range(0, len(live), 50):
        bodies.update(bodies_of([(r.id, r.winning_rev) for r in live[start:start + 50]]))
    return {r.doc_id: None if r.deleted else bodies.get((r.id, r.winning_rev)) for r in rows}


def refresh_candidates(db_name: str, patient_doc_ids: list[str]) -> None:
    """Recompute the blocking keys and candidate pairs of these patients, and commit."""
    ids = list(dict.fromkeys(patient_doc_ids))
    if ids:
        db.session.commit()  # read the documents as committed now
        refresh_bodies(db_name, winning_bodies(db_name, ids))


def refresh_bodies(db_name: str, bodies: dict[str, Body | None], skip: set[str] | None = None) -> int:
    """``refresh_candidates`` for bodies already read; return how many pairs were scored.

    :param skip: patients whose pairs were scored already (a scan's earlier pages).
    """
    keys = write_keys(db_name, bodies)
    partners = _partners(db_name, keys)
    others = {o for members in partners.values() for o in members} - bodies.keys() - (skip or set())
    every = {**winning_bodies(db_name, sorted(others)), **bodies}
    pairs: dict[tuple[str, str], Match] = {}
    for doc_id in keys:
        for other in partners[doc_id] - {doc_id} - (skip or set()):
            a, b = sorted((doc_id, other))
            if (a, b) not in pairs and is_live_patient(every.get(other)):
                pairs[(a, b)] = score(every[a], every[b])  # type: ignore[arg-type]
    _store_pairs(db_name, pairs)
    db.session.commit()
    return len(pairs)


def _partners(db_name: str, keys: dict[str, set[str]]) -> dict[str, set[str]]:
    """Everyone sharing a key with each patient, and everyone already paired with it."""
    partners: dict[str, set[str]] = defaultdict(set)
    by_key: dict[str, set[str]] = defaultdict(set)
    for chunk in _chunks(sorted({k for doc_keys in keys.values() for k in doc_keys})):
        for key, other in db.session.execute(select(PatientKey.key, PatientKey.doc_id).where(
                PatientKey.db_name == db_name, PatientKey.key.in_(chunk))):
            by_key[key].add(other)
    for members in by_key.values():
        for doc_id in members & keys.keys():
            partners[doc_id] |= members
    # Pairs listed before are scored again even when their names no longer share a key.
    for chunk in _chunks(list(keys)):
        for a, b in db.session.execute(select(_CAND.c.patient_a, _CAND.c.patient_b).where(
                _CAND.c.db_name == db_name, or_(_CAND.c.patient_a.in_(chunk), _CAND.c.patient_b.in_(chunk)))):
            partners[a].add(b)
            partners[b].add(a)
    return partners


def write_keys(db_name: str, bodies: dict[str, Body | None]) -> dict[str, set[str]]:
    """Replace the blocking keys of these documents (none for a gone patient); return the new ones.

    It opens a transaction that starts with a write (SQLite's lock) and leaves it open.
    """
    keys = {d: blocking_keys(b) for d, b in bodies.items() if b is not None and is_live_patient(b)}
    db.session.commit()
    for chunk in _chunks(list(bodies)):
        db.session.execute(delete(PatientKey).where(PatientKey.db_name == db_name, PatientKey.doc_id.in_(chunk)))
    for chunk in _chunks([d for d in bodies if d not in keys]):  # deleted, redirected, or no longer a patient
        db.session.execute(delete(_CAND).where(_CAND.c.db_name == db_name, _CAND.c.state == "open",
                                               or_(_CAND.c.patient_a.in_(chunk), _CAND.c.patient_b.in_(chunk))))
    rows = [{"db_name": db_name, "doc_id": d, "key": k} for d, doc_keys in keys.items() for k in sorted(doc_keys)]
    if rows:
        db.session.execute(insert(PatientKey), rows)
    return keys


def _insert_ignoring_existing(rows: list[Body]) -> None:
    dialect = db.session.get_bind().dialect.name
    ins = postgresql.insert(_CAND) if dialect == "postgresql" else sqlite.insert(_CAND)
    db.session.execute(ins.on_conflict_do_nothing(index_elements=["db_name", "patient_a", "patient_b"]), rows)


def _pair_is(db_name: str) -> Any:
    return and_(_CAND.c.db_name == db_name, _CAND.c.patient_a == bindparam("p_a"),
                _CAND.c.patient_b == bindparam("p_b"))


def _store_pairs(db_name: str, pairs: dict[tuple[str, str], Match]) -> None:
    """Upsert listed pairs; conditions are evaluated by the database, so a decision made
    meanwhile (a merge, a dismissal) is never overwritten: merged pairs stay merged, and a
    dismissed pair reopens only when its score rose above the dismissed one."""
    listed = [{"p_a": a, "p_b": b, "p_s": m.score, "p_r": m.reasons} for (a, b), m in pairs.items()
              if m.score >= THRESHOLD]
    gone = [{"p_a": a, "p_b": b} for (a, b), m in pairs.items() if m.score < THRESHOLD]
    if listed:
        _insert_ignoring_existing([{"db_name": db_name, "patient_a": p["p_a"], "patient_b": p["p_b"],
                                    "score": p["p_s"], "reasons": p["p_r"], "state": "open"} for p in listed])
        reopen = or_(_CAND.c.state == "open", and_(_CAND.c.state == "dismissed", _CAND.c.score < bindparam("p_s")))
        db.session.execute(update(_CAND).where(_pair_is(db_name), reopen).values(
            score=bindparam("p_s"), reasons=bindparam("p_r", type_=_CAND.c.reasons.type), state="open",
            decided_by=None, decided_at=None), listed)
    if gone:
        db.session.execute(delete(_CAND).where(_pair_is(db_name), _CAND.c.state == "open"), gone)


def list_candidates(db_name: str, state: str = "open", limit: int = 50, offset: int = 0) -> list[DuplicateCandidate]:
    """Candidate pairs in ``state``, best score first."""
    if state not in CANDIDATE_STATES:
        raise BadRequest(f"state must be one of {', '.join(CANDIDATE_STATES)}")
    get_database(db_name)
    query = (select(DuplicateCandidate).where(DuplicateCandidate.db_name == db_name, DuplicateCandidate.state == state)
             .order_by(DuplicateCandidate.score.desc(), DuplicateCandidate.patient_a, DuplicateCandidate.patient_b)
             .limit(max(0, limit)).offset(max(0, offset)))
    return list(db.session.scalars(query))


def _pair(a: str, b: str) -> tuple[str, str]:
    if a == b:
        raise BadRequest("a patient cannot be a duplicate of itself")
    return (a, b) if a < b else (b, a)


def dismiss(db_name: str, a: str, b: str, actor: str) -> None:
    """Mark an open pair as not duplicates; it reopens only if its score rises."""
    pa, pb = _pair(a, b)
    get_database(db_name)
    db.session.commit()
    done = db.session.execute(update(_CAND).where(_pair_is(db_name), _CAND.c.state == "open").values(
        state="dismissed", decided_by=actor, decided_at=time.time()), {"p_a": pa, "p_b": pb})
    if done.rowcount == 0:  # type: ignore[attr-defined]
        db.session.rollback()
        state = db.session.scalar(select(_CAND.c.state).where(_pair_is(db_name)), {"p_a": pa, "p_b": pb})
        if state is None:
            raise NotFound(f"{pa} and {pb} are not a duplicate candidate")
        raise Conflict(f"{pa} and {pb} are already {state}")
    audit.record(actor, "duplicate.dismiss", db_name=db_name, doc_id=pa, other=pb)
    db.session.commit()


def _patient(batch: Batch, doc_id: str) -> tuple[DocState, Body]:
    """The loaded document and its winning body, or refuse."""
    doc = batch.docs.get(doc_id)
    if doc is None or doc.deleted:
        raise NotFound(f"no patient {doc_id}")
    body = batch.bodies_of(doc, [doc.winning_rev]).get(doc.winning_rev) or {}
    if body.get("type") != "patient":
        raise BadRequest(f"{doc_id} is not a patient")
    return doc, body


def _write(batch: Batch, doc: DocState, body: Body, actor: str) -> str:
    """Write ``body`` as a server-authored child of the winner; return the new rev."""
    fields = {k: v for k, v in body.items() if k != "_attachments"}
    # Attachments travel as stubs: the new revision keeps the parent's.
    stubs = {name: {"stub": True} for name in body.get("_attachments") or {}}
    new = {"_id": doc.doc_id, "_rev": doc.winning_rev, **fields, "updated_at": _stamp(), "updated_by": actor,
           **({"_attachments": stubs} if stubs else {})}
    return str(edit_one(batch, new)["rev"])


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _fill(survivor: Body, merged: Body) -> tuple[Body, Body]:
    """The survivor's body with its empty fields filled from ``merged``, and what was filled."""
    out, filled = dict(survivor), {}
    for name, value in merged.items():
        if name.startswith("_") or name in NOT_FILLED or _empty(value) or not _empty(survivor.get(name)):
            continue
        out[name] = value
        filled[name] = {"to": value, **({"from": survivor[name]} if name in survivor else {})}
    return out, filled


def _set_candidate(db_name: str, a: str, b: str, state: str, actor: str | None, match: Match) -> None:
    pa, pb = _pair(a, b)
    _insert_ignoring_existing([{"db_name": db_name, "patient_a": pa, "patient_b": pb, "score": match.score,
                                "reasons": match.reasons, "state": state}])
    db.session.execute(update(_CAND).where(_pair_is(db_name)).values(
        state=state, decided_by=actor, decided_at=time.time() if actor else None), {"p_a": pa, "p_b": pb})


def merge_patients(db_name: str, survivor_id: str, merged_id: str, actor: str) -> PatientMerge:
    """Merge ``merged_id`` into ``survivor_id``, keeping every value of both; return the merge."""
    if survivor_id == merged_id:
        raise BadRequest("a patient cannot be merged into itself")
    with write_lock(db_name) as txn:
        batch = Batch(txn)
        batch.load([survivor_id, merged_id])
        (s_doc, s_body), (m_doc, m_body) = _patient(batch, survivor_id), _patient(batch, merged_id)
        if s_body.get("merged_into") == merged_id:
            raise Conflict(f"merging would make a cycle: {survivor_id} is merged into {merged_id}")
        for doc_id, body in ((survivor_id, s_body), (merged_id, m_body)):
            if body.get("merged_into"):
                raise Conflict(f"patient {doc_id} is already merged into {body['merged_into']}")
        new_survivor, filled = _fill(s_body, m_body)
        new_survivor["merged_from"] = list(dict.fromkeys([*(s_body.get("merged_from") or []), merged_id]))
        s_before, m_before = s_doc.winning_rev, m_doc.winning_rev
        s_after = _write(batch, s_doc, new_survivor, actor)
        m_after = _write(batch, m_doc, {**m_body, "merged_into": survivor_id}, actor)
        batch.flush()
        merge = PatientMerge(db_name=db_name, survivor_id=survivor_id, merged_id=merged_id,
                             survivor_rev_before=s_before, survivor_rev_after=s_after, merged_rev_before=m_before,
                             merged_rev_after=m_after, filled_fields=filled, state="merged", by=actor, at=time.time())
        db.session.add(merge)
        _set_candidate(db_name, survivor_id, merged_id, "merged", actor, score(s_body, m_body))
        db.session.flush()  # the merge's id, for the audit entry
        audit.record(actor, "patient.merge", db_name=db_name, doc_id=merged_id, survivor=survivor_id,
                     merge_id=merge.id, filled=sorted(filled))
    refresh_candidates(db_name, [survivor_id, merged_id])
    return merge


def _unfill(survivor: Body, merge: PatientMerge) -> Body:
    """The survivor without the merge: filled fields emptied unless edited since."""
    out = dict(survivor)
    for name, fill in merge.filled_fields.items():
        if name in out and out[name] == fill["to"]:
            if "from" in fill:
                out[name] = fill["from"]
            else:
                del out[name]
    rest = [m for m in out.get("merged_from") or [] if m != merge.merged_id]
    if rest:
        out["merged_from"] = rest
    else:
        out.pop("merged_from", None)
    return out


def undo_merge(merge_id: int, actor: str) -> PatientMerge:
    """Undo a merge with new revisions of both patients; edits made since are kept."""
    merge = db.session.get(PatientMerge, merge_id) if isinstance(merge_id, int) else None
    if merge is None:
        raise NotFound(f"no merge {merge_id}")
    with write_lock(merge.db_name) as txn:
        db.session.refresh(merge)  # decided under the lock: two undos cannot both pass
        if merge.state != "merged":
            raise Conflict(f"merge {merge_id} was already undone")
        survivor_id, merged_id = merge.survivor_id, merge.merged_id
        batch = Batch(txn)
        batch.load([survivor_id, merged_id])
        (s_doc, s_body), (m_doc, m_body) = _patient(batch, survivor_id), _patient(batch, merged_id)
        if m_body.get("merged_into") != survivor_id:
            raise Conflict(f"patient {merged_id} is no longer merged into {survivor_id}")
        _write(batch, s_doc, _unfill(s_body, merge), actor)
        _write(batch, m_doc, {k: v for k, v in m_body.items() if k != "merged_into"}, actor)
        batch.flush()
        merge.state, merge.undone_by, merge.undone_at = "undone", actor, time.time()
        _set_candidate(merge.db_name, survivor_id, merged_id, "open", None, score(s_body, m_body))
        audit.record(actor, "patient.unmerge", db_name=merge.db_name, doc_id=merged_id, survivor=survivor_id,
                     merge_id=merge.id)
    refresh_candidates(merge.db_name, [survivor_id, merged_id])
    return merge
