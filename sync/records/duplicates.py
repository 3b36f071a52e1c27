"""Duplicate patients: candidate pairs and the supervisors' list (merging: sync.records.patientmerge).

Patients are read from the records database itself (the winning revision of each
document), never from central tables. ``refresh_candidates`` keeps, per live patient,
its blocking keys (sync.records.matching) in ``record_patient_key`` and the scored pairs
in ``record_duplicate``; it commits its own transaction. Refusals raise ``sync.errors`` (BadRequest,
NotFound, Conflict) and change nothing. The rules are in docs/records.md.
"""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from models import db
from models.duplicates import CANDIDATE_STATES, DuplicateCandidate, PatientKey

from .. import audit
from ..errors import BadRequest, Conflict, NotFound
from ..rows import CHUNK, DocRow, bodies_of, docs_by_ids
from ..store import get_database
from .matching import THRESHOLD, Match, blocking_keys, score

Body = dict[str, Any]
_CAND = DuplicateCandidate.__table__


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


def set_candidate_state(db_name: str, a: str, b: str, state: str, actor: str | None, match: Match) -> None:
    pa, pb = _pair(a, b)
    _insert_ignoring_existing([{"db_name": db_name, "patient_a": pa, "patient_b": pb, "score": match.score,
                                "reasons": match.reasons, "state": state}])
    db.session.execute(update(_CAND).where(_pair_is(db_name)).values(
        state=state, decided_by=actor, decided_at=time.time() if actor else None), {"p_a": pa, "p_b": pb})
