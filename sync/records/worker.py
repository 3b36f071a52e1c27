"""The worker that keeps the central records (models.health) in step with the records database.

It reads the server's own change feed from its checkpoint, in batches. For each batch it
first resolves documents with several live leaves, and records deletions that lost to an
edit, for a supervisor (sync.records.resolve); then it reads the
winning revision of every changed document and plans the rows (``prepare``: reads only),
then writes them in one transaction that begins by moving the checkpoint
(``central.advance``), so the rows and the checkpoint commit together or not at all: a
crash at any point loses nothing and counts nothing twice. A row already projected from
the same rev is left alone, and a patient's derived fields are recomputed from the visit
and referral tables, never incremented, so replays and ``rebuild`` give the same rows.
See docs/records.md, "Central records and the worker".
"""
from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from models import Database, Document, db
from models.health import WorkerCheckpoint
from sync.errors import DatabaseNotFound
from sync.revtree import collect_leaves, revs_info
from sync.rows import DocRow, bodies_of
from sync.store import changed

from . import central, duplicates, resolve
from .project import Json, project, redirected, ref, risk_flags, survivor, table_of

log = logging.getLogger("wasl.worker")
Change = tuple[DocRow, Json | None]  # a changed document and its winning body
BATCH = 500
ANALYZE_AFTER = 1000  # changes in one run; then again each time the count doubles
DERIVED_DEFAULTS: Json = {"visit_count": 0, "last_visit_at": None, "latest_observations": {}, "risk_flags": [],
                          "referral_needed": False}


@dataclass
class Plan:
    """What one batch changes in the central tables."""

    upserts: dict[str, list[Json]] = field(default_factory=lambda: defaultdict(list))
    marks: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    removals: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    flags: list[tuple[str, list[str]]] = field(default_factory=list)
    moves: list[tuple[str, str]] = field(default_factory=list)
    touched: set[str | None] = field(default_factory=set)  # patients whose derived fields to recompute
    patients: list[str] = field(default_factory=list)  # patient documents that changed


# ------------------------------------------------------------------------------------------------ reading
def _database(db_name: str) -> Any:
    """The database row (id, update_seq, created_at, doc counts); raise ``DatabaseNotFound``."""
    row = db.session.execute(select(Database.id, Database.update_seq, Database.created_at, Database.doc_count,
                                    Database.doc_del_count).where(Database.name == db_name)).first()
    if row is None:
        raise DatabaseNotFound()
    return row


def _needs_resolver(db_name: str, doc: DocRow) -> bool:
    """Several live leaves; or a deleted leaf beside the live one that no resolution wrote
    and no delete-vs-edit record names yet (the resolver records it for a supervisor)."""
    leaves = collect_leaves(doc.rev_tree)
    live = sum(1 for leaf in leaves if not leaf.opts.get("deleted"))
    if live != 1 or len(leaves) == 1:
        return live > 1
    history = resolve.load_history(db_name, doc.doc_id).get(doc.doc_id, resolve.History())
    return resolve.needs_resolution(doc.rev_tree, history)


def _read_batch(db_name: str, database_id: int, since: int, size: int) -> tuple[list[Change], bool]:
    """The next ``size`` changes after resolving the conflicted ones; and whether a resolution was written.

    A resolution is a new revision, so its document moves to a later seq: read again. Each
    version of a document (its seq) is tried once: a resolution that fails or writes nothing
    leaves the seq as it was, and is not tried again in this batch. A branch pushed while the
    batch runs gives the document a new seq and is resolved too; keyed by id alone, such a
    branch stayed unresolved (and projected) until the document changed again.
    """
    attempted: set[tuple[str, int]] = set()
    resolved = False
    while True:
        changes = central.changed_docs(database_id, since, size)
        todo = [d for d, _ in changes if (d.doc_id, d.seq) not in attempted and _needs_resolver(db_name, d)]
        if not todo:
            return changes, resolved
        for doc in todo:
            attempted.add((doc.doc_id, doc.seq))
            try:
                resolved |= resolve.resolve_document(db_name, doc.doc_id, actor="server") is not None
            except Exception:
                # The winner is still projected; the conflict stays for `wasl resolve` or a supervisor.
                db.session.rollback()
                log.exception("resolving %s in %s failed", doc.doc_id, db_name)


def _sources(changes: list[Change]) -> dict[str, Json | None]:
    """The body each document is projected from: its winner, or for a tombstone without a type
    the nearest ancestor body the store holds (None when there is none)."""
    out: dict[str, Json | None] = {}
    ancestors: dict[str, list[tuple[int, str]]] = {}
    for d, body in changes:
        if d.deleted and table_of(body) is None:
            ancestors[d.doc_id] = [(d.id, info["rev"]) for info in revs_info(d.rev_tree, d.winning_rev)[1:]
                                   if info["status"] == "available"]
            body = None
        out[d.doc_id] = body
    older = bodies_of([pair for pairs in ancestors.values() for pair in pairs]) if ancestors else {}
    for doc_id, pairs in ancestors.items():
        out[doc_id] = next((older[p] for p in pairs if table_of(older.get(p)) is not None), None)
    return out


# ------------------------------------------------------------------------------------------------ planning
def _drop(plan: Plan, old: central.Existing, doc_id: str, links: dict[str, str], camps: dict[str, Json]) -> None:
    """Undo what an old row contributed: a redirect, a campaign's thresholds, a patient's records."""
    if old.table == "patient":
        links.pop(doc_id, None)
        plan.patients.append(doc_id)
    elif old.table == "campaign":
        camps.pop(doc_id, None)
    plan.touched.add(old.patient_id)


def prepare(db_name: str, changes: list[Change]) -> Plan:
    """Plan the central-table changes of a batch of changed documents (reads only)."""
    sources, docs = _sources(changes), [d for d, _ in changes]
    existing = central.existing_rows(db_name, [d.doc_id for d in docs])
    old_links, old_camps = central.redirects(db_name), central.campaigns(db_name)
    links, camps = dict(old_links), dict(old_camps)
    plan, pending, projected = Plan(), [], {}
    for doc in docs:
        body, old = sources[doc.doc_id], existing.get(doc.doc_id)
        table = table_of(body) if not doc.doc_id.startswith("_design/") else None
        if old is not None and old.rev == doc.winning_rev:
            continue  # projected from this very revision already
        if old is not None and old.table != table:
            _drop(plan, old, doc.doc_id, links, camps)
            if table is None and body is None and doc.deleted:
                # Deleted, and no body to tell what it was: keep the last values, marked deleted.
                plan.marks[old.table].append((doc.doc_id, doc.winning_rev))
            else:
                plan.removals[old.table].append(doc.doc_id)
        if table is None:
            continue
        if table in ("patient", "campaign"):
            row = projected[doc.doc_id] = project(body)  # type: ignore[arg-type]
            (links if table == "patient" else camps).pop(doc.doc_id, None)
            if table == "patient" and row["merged_into"] and not doc.deleted:
                links[doc.doc_id] = row["merged_into"]
            elif table == "campaign" and not doc.deleted:
                camps[doc.doc_id] = {"fields": row["fields"]}
        pending.append((doc, table, body, old))
    for doc, table, body, old in pending:
        row = projected.get(doc.doc_id) or project(body, camps.get(ref(body.get("campaign_id")) or ""))
        row = {"db_name": db_name, "doc_id": doc.doc_id, "rev": doc.winning_rev, "deleted": doc.deleted, **row}
        if table in ("visit", "referral"):
            row["patient_id"] = survivor(row["patient_doc_id"], links) if row["patient_doc_id"] else None
            plan.touched |= {row["patient_id"], old.patient_id if old is not None else None}
        elif table == "patient":
            row.update(DERIVED_DEFAULTS)
            plan.touched.add(doc.doc_id)
            plan.patients.append(doc.doc_id)
        plan.upserts[table].append(row)
    for moved in sorted(redirected(old_links, links)):
        plan.moves.append((moved, survivor(moved, links)))
        plan.touched |= {survivor(moved, old_links), survivor(moved, links)}
    _reflag(db_name, plan, old_camps, camps, links)
    plan.touched.discard(None)
    return plan


def _reflag(db_name: str, plan: Plan, old: dict[str, Json], new: dict[str, Json], links: dict[str, str]) -> None:
    """Recompute the risk flags of visits whose campaign's thresholds changed."""
    changed_ids = {c for c in old.keys() | new.keys() if old.get(c) != new.get(c)}
    if not changed_ids:
        return
    fresh = {row["doc_id"] for row in plan.upserts["visit"]}
    visits = central.visits_of_campaigns(db_name, changed_ids)
    for doc_id, patient_doc_id, campaign_id, observations, flags in visits:
        now = risk_flags(observations, new.get(campaign_id))
        if doc_id not in fresh and now != flags:
            plan.flags.append((doc_id, now))
            plan.touched.add(survivor(patient_doc_id, links) if patient_doc_id else None)


def apply(db_name: str, plan: Plan) -> None:
    """Write a plan (inside the transaction ``central.advance`` began)."""
    for table, doc_ids in plan.removals.items():
        central.remove(table, db_name, doc_ids)
    for table, rows in plan.upserts.items():
        central.upsert(table, rows)
    for table, revs in plan.marks.items():
        central.mark_deleted(table, db_name, revs)
    central.set_flags(db_name, plan.flags)
    central.move_records(db_name, plan.moves)
    central.recompute_patients(db_name, [p for p in plan.touched if p is not None])


# ------------------------------------------------------------------------------------------------ running
def _batch(db_name: str, size: int) -> tuple[int, int, bool]:
    """Project the next batch; return (changes processed, checkpoint after it, resolutions written)."""
    while True:
        database = _database(db_name)
        checkpoint = central.read_checkpoint(db_name, database.created_at)
        changes, resolved = _read_batch(db_name, database.id, checkpoint.seq, size)
        if not changes:
            db.session.commit()
            return 0, checkpoint.seq, resolved
        plan, last = prepare(db_name, changes), changes[-1][0].seq
        if plan.patients:
            # Before the checkpoint moves (it commits on its own): a crash repeats it, never skips it,
            # and a repeat is harmless, as it recomputes the candidates from the documents.
            duplicates.refresh_candidates(db_name, sorted(set(plan.patients)))
        try:
            if not central.advance(db_name, checkpoint, last):
                db.session.rollback()
                continue  # another worker (or a rebuild) moved the checkpoint: read again
            apply(db_name, plan)
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
        return len(changes), last, resolved


def run_once(db_name: str, *, batch_size: int = BATCH, progress: Callable[[int], None] | None = None) -> int:
    """Project every change committed before the call, in batches; return how many were processed.

    Resolutions written meanwhile are projected too. ``progress(done)`` follows each batch.
    """
    target, done, extended = _database(db_name).update_seq, 0, False
    analyze_at = ANALYZE_AFTER
    while True:
        count, seq, resolved = _batch(db_name, batch_size)
        done += count
        if done >= analyze_at:
            # A long catch-up fills the tables faster than autovacuum analyzes them, and on
            # empty-table statistics PostgreSQL picks the wrong index (ten times the cost).
            central.analyze()
            analyze_at = 2 * done
        if progress is not None and count:
            progress(done)
        if count == 0 or seq >= target:
            if not resolved or extended:
                return done
            extended, target = True, _database(db_name).update_seq


def rebuild(db_name: str, progress: Callable[[int, int], None] | None = None) -> int:
    """Empty the central records of ``db_name`` and project every document again; return changes processed.

    ``progress(done, total)`` follows each batch (total: the documents in the database).
    """
    database = _database(db_name)
    central.reset(db_name, database.created_at)
    total = database.doc_count + database.doc_del_count
    return run_once(db_name, progress=None if progress is None else lambda done: progress(done, total))


def _wait_for_change(db_name: str, poll: float, stop: threading.Event) -> None:
    """Return once the database has changes past the checkpoint (or ``stop`` is set)."""
    while not stop.is_set():
        db.session.commit()  # a fresh snapshot for each look
        seq = db.session.scalar(select(Database.update_seq).where(Database.name == db_name))
        done = db.session.scalar(select(WorkerCheckpoint.seq).where(WorkerCheckpoint.db_name == db_name))
        if seq is None or seq != done:
            return
        with changed:  # writers in this process wake us at once; others are seen within ``poll``
            changed.wait(poll)


def run_forever(db_name: str, *, poll: float = 0.2, stop: threading.Event | None = None,
                batch_size: int = BATCH) -> None:
    """Keep the central records of ``db_name`` up to date until ``stop`` is set.

    Failures (a database that is not there yet, a lost connection) are logged and retried
    with a growing pause; nothing is skipped, as the checkpoint only moves with the rows.
    """
    stop = stop or threading.Event()
    failures = 0
    while not stop.is_set():
        try:
            run_once(db_name, batch_size=batch_size)
            failures = 0
            _wait_for_change(db_name, poll, stop)
        except DatabaseNotFound:
            db.session.rollback()
            if failures == 0:
                log.warning("database %r does not exist (yet); waiting for it", db_name)
            failures = 1
            stop.wait(max(poll, 1.0))
        except Exception:
            db.session.rollback()
            failures += 1
            log.exception("projecting %s failed (attempt %d); retrying", db_name, failures)
            stop.wait(min(30.0, poll * 2 ** failures))


def status(db_name: str) -> dict[str, int]:
    """The worker's checkpoint, the database's update_seq, and how many documents wait to be projected."""
    database = _database(db_name)
    done = db.session.scalar(select(WorkerCheckpoint.seq).where(WorkerCheckpoint.db_name == db_name)) or 0
    pending = db.session.scalar(select(func.count()).select_from(Document).where(
        Document.database_id == database.id, Document.seq > done))
    return {"checkpoint": done, "update_seq": database.update_seq, "pending": int(pending or 0)}


def counts(db_name: str) -> dict[str, int]:
    """Rows not marked deleted, per central table."""
    return central.counts(db_name)


def snapshot(db_name: str) -> dict[str, list[dict[str, Any]]]:
    """Every central row of ``db_name`` (no column excluded), for equality checks."""
    return central.snapshot(db_name)
