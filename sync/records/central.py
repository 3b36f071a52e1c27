"""SQL over the central records (models.health): the worker's checkpoint, reads and set-wise writes.

Every write here runs inside the worker's batch transaction, after ``advance`` took the
checkpoint row: rows and checkpoint commit together or not at all. Writes are set-wise,
one statement per kind of change and chunk of rows: an executemany on SQLite, and on
PostgreSQL (where an executemany is a round trip per row) one JSON parameter unpacked by
``json_to_recordset``. Upserts are ``INSERT .. ON CONFLICT DO UPDATE`` on both. SQL text
built here names only the models' own tables and columns; values are always parameters.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, Table, Text, any_, bindparam, cast, delete, literal, null, select, text, union_all, \
    update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from models import db
from models.health import RECORD_MODELS, WorkerCheckpoint

from .. import jsoncodec
from ..rows import DocRow
from ..treecodec import unflatten
from .project import campaign_positive, derive_patient

Json = dict[str, Any]
TABLES: dict[str, Table] = {name: model.__table__ for name, model in RECORD_MODELS.items()}
CHUNK = 500  # ids per IN list, well under SQLite's bound-parameter limit
KEY = ("db_name", "doc_id")
DERIVED = ("visit_count", "last_visit_at", "latest_observations", "risk_flags", "referral_needed")
CP = WorkerCheckpoint.__table__


@dataclass(frozen=True)
class Checkpoint:
    """The worker's position in one database's change feed."""

    seq: int
    generation: int
    database_created_at: float


@dataclass(frozen=True)
class Existing:
    """A document's current central row: its table, rev, and the links a change must undo."""

    table: str
    rev: str
    patient_id: str | None = None  # visits and referrals: the patient they count for now


def chunks(items: Iterable[str]) -> Iterator[list[str]]:
    """``items`` in lists of at most CHUNK."""
    ids = list(items)
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


def _postgres() -> bool:
    return bool(db.session.get_bind().dialect.name == "postgresql")


def _insert(table: Table) -> Any:
    return postgresql.insert(table) if _postgres() else sqlite.insert(table)


def among(col: Any, ids: list[str]) -> ColumnElement[bool]:
    """``col IN ids``; on PostgreSQL one array parameter, cheaper to send and to plan than a long IN list."""
    if _postgres():
        return col == any_(literal(ids, postgresql.ARRAY(String)))  # type: ignore[no-any-return]
    return col.in_(ids)  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------------------ checkpoint
def _ensure_checkpoint(db_name: str, created_at: float) -> None:
    db.session.execute(_insert(CP).values(db_name=db_name, seq=0, generation=0, database_created_at=created_at)
                       .on_conflict_do_nothing(index_elements=["db_name"]))


def read_checkpoint(db_name: str, created_at: float) -> Checkpoint:
    """The checkpoint of ``db_name``, created at 0 if missing, and reset if the database was recreated."""
    query = select(CP.c.seq, CP.c.generation, CP.c.database_created_at).where(CP.c.db_name == db_name)
    row = db.session.execute(query).first()
    if row is None:
        db.session.commit()  # write from a fresh transaction (SQLite: never write after reading)
        _ensure_checkpoint(db_name, created_at)
        db.session.commit()
        row = db.session.execute(query).one()
    if row.database_created_at != created_at:
        # Deleted and created again under the same name: the old rows describe documents that are gone.
        reset(db_name, created_at)
        row = db.session.execute(query).one()
    return Checkpoint(row.seq, row.generation, row.database_created_at)


def advance(db_name: str, checkpoint: Checkpoint, seq: int) -> bool:
    """Start the write transaction by moving the checkpoint from ``checkpoint`` to ``seq``.

    A compare-and-set on (seq, generation), and the transaction's first statement, so it
    takes the row lock (PostgreSQL) or the write lock (SQLite) before anything else. False
    when another worker or a rebuild moved the checkpoint since the batch was read.
    """
    db.session.commit()
    moved = db.session.execute(update(CP).where(
        CP.c.db_name == db_name, CP.c.seq == checkpoint.seq, CP.c.generation == checkpoint.generation,
    ).values(seq=seq))
    return bool(moved.rowcount == 1)  # type: ignore[attr-defined]


def reset(db_name: str, created_at: float) -> None:
    """Empty the central tables of ``db_name`` and set its checkpoint back to 0, in one transaction.

    The tables are first brought to the models' shape (``upgrade``), so a rebuild is also
    how an older install gains the central columns and indexes a later version declares.
    """
    from .upgrade import upgrade  # no cycle at import: upgrade reads TABLES from here
    upgrade()
    db.session.commit()
    _ensure_checkpoint(db_name, created_at)
    db.session.execute(update(CP).where(CP.c.db_name == db_name).values(
        seq=0, generation=CP.c.generation + 1, database_created_at=created_at))
    for table in TABLES.values():
        db.session.execute(delete(table).where(table.c.db_name == db_name))
    db.session.commit()


# ------------------------------------------------------------------------------------------------ reads
# The winning body joins in by (document, rev): one probe per document, where an IN list of
# ids and another of revs would probe every pair.
_CHANGED = text("SELECT d.id, d.doc_id, d.rev_tree, d.winning_rev, d.deleted, d.seq, r.body"
                " FROM couch_document d LEFT JOIN couch_revision r ON r.document_id = d.id AND r.rev = d.winning_rev"
                " WHERE d.database_id = :db AND d.seq > :since ORDER BY d.seq LIMIT :limit")


def changed_docs(database_id: int, since: int, limit: int) -> list[tuple[DocRow, Json | None]]:
    """The next ``limit`` documents changed after ``since``, in seq order, with their winning bodies."""
    return [(DocRow(r[0], r[1], unflatten(jsoncodec.loads(r[2])), r[3], bool(r[4]), r[5]),
             None if r[6] is None else jsoncodec.loads(r[6]))
            for r in db.session.execute(_CHANGED, {"db": database_id, "since": since, "limit": limit})]


def existing_rows(db_name: str, doc_ids: list[str]) -> dict[str, Existing]:
    """The central rows of these documents, whatever their table (one query per chunk of ids)."""
    found: dict[str, Existing] = {}
    for ids in chunks(doc_ids):
        parts = [select(literal(name), table.c.doc_id, table.c.rev,
                        table.c.patient_id if name in ("visit", "referral") else null())
                 .where(table.c.db_name == db_name, among(table.c.doc_id, ids)) for name, table in TABLES.items()]
        for name, doc_id, rev, patient_id in db.session.execute(union_all(*parts)):
            found[doc_id] = Existing(name, rev, patient_id)
    return found


def redirects(db_name: str) -> dict[str, str]:
    """``merged_into`` links of live patients: duplicate id -> the patient it was merged into."""
    table = TABLES["patient"]
    return dict(db.session.execute(select(table.c.doc_id, table.c.merged_into).where(
        table.c.db_name == db_name, table.c.merged_into.is_not(None), table.c.deleted.is_(False))).all())


def campaigns(db_name: str) -> dict[str, Json]:
    """Live campaigns' referral thresholds, as ``{"fields": [...]}`` by campaign id."""
    table = TABLES["campaign"]
    rows = db.session.execute(select(table.c.doc_id, table.c.fields).where(
        table.c.db_name == db_name, table.c.deleted.is_(False)))
    return {doc_id: {"fields": fields} for doc_id, fields in rows}


def visits_of_campaigns(db_name: str, campaign_ids: Iterable[str]) -> list[Any]:
    """(doc_id, patient_doc_id, campaign_id, observations, risk_flags) of the campaigns' visits."""
    table = TABLES["visit"]
    found = []
    for ids in chunks(campaign_ids):
        found += db.session.execute(select(table.c.doc_id, table.c.patient_doc_id, table.c.campaign_id,
                                           table.c.observations, table.c.risk_flags).where(
            table.c.db_name == db_name, among(table.c.campaign_id, ids))).all()
    return found


# ------------------------------------------------------------------------------------------------ writes
def upsert(table_name: str, rows: list[Json]) -> None:
    """Insert or replace these rows (all with the same keys); a patient's derived fields are left alone."""
    if not rows:
        return
    table = TABLES[table_name]
    names = list(rows[0])
    kept = [c for c in names if c not in KEY and c not in (DERIVED if table_name == "patient" else ())]
    if not _postgres():
        ins = sqlite.insert(table)
        db.session.execute(ins.on_conflict_do_update(index_elements=list(KEY),
                                                     set_={c: ins.excluded[c] for c in kept}), rows)
        return
    # One JSON parameter per chunk, as in _update_each.
    shape = ", ".join(f"{n} {_pg_type(table, n)}" for n in names)
    stmt = text(f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {', '.join(names)}"
                f" FROM json_to_recordset(CAST(:rows AS json)) AS v({shape})"
                f" ON CONFLICT (db_name, doc_id) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in kept)}")
    for start in range(0, len(rows), CHUNK):
        db.session.execute(stmt, {"rows": jsoncodec.dumps(rows[start:start + CHUNK])})


def remove(table_name: str, db_name: str, doc_ids: list[str]) -> None:
    """Delete the rows of documents that are no longer records of this table."""
    table = TABLES[table_name]
    for ids in chunks(doc_ids):
        db.session.execute(delete(table).where(table.c.db_name == db_name, among(table.c.doc_id, ids)))
    if table_name == "patient":
        copy_patient_traits(db_name, doc_ids)  # their visits now count for no known patient


TRAITS = (("patient_sex", "sex"), ("patient_birth_date", "birth_date"),
          ("patient_estimated_age_years", "estimated_age_years"))


def copy_patient_traits(db_name: str, patient_ids: Iterable[str]) -> None:
    """Copy the sex, birth date and estimated age of these patients' central rows onto the visits
    that count for them (None where the patient has no row): one UPDATE per chunk of patients."""
    visit, patient = TABLES["visit"], TABLES["patient"]
    traits = {mine: select(patient.c[theirs]).where(patient.c.db_name == visit.c.db_name,
                                                    patient.c.doc_id == visit.c.patient_id).scalar_subquery()
              for mine, theirs in TRAITS}
    for ids in chunks(sorted(set(patient_ids))):
        db.session.execute(update(visit).where(visit.c.db_name == db_name, among(visit.c.patient_id, ids))
                           .values(**traits))


def _pg_type(table: Table, name: str) -> str:
    return str(table.c[name].type.compile(dialect=postgresql.dialect()))


def _update_each(table: Table, db_name: str, params: list[Json]) -> None:
    """UPDATE rows by (db_name, doc_id = ``b_id``), the SET columns named by the other keys (same in each).

    On PostgreSQL the rows travel as one JSON array, unpacked by ``json_to_recordset``: an
    executemany there is a round trip per row, and a VALUES list costs SQLAlchemy more to
    compile than the update costs to run. SQLite has no such function, and its executemany is cheap.
    """
    if not params:
        return
    names = [k for k in params[0] if k != "b_id"]
    if not _postgres():
        stmt = update(table).where(table.c.db_name == bindparam("b_db"), table.c.doc_id == bindparam("b_id"))
        db.session.execute(stmt, [{"b_db": db_name, **p} for p in params])
        return
    shape = ", ".join([f"b_id {_pg_type(table, 'doc_id')}"] + [f"{n} {_pg_type(table, n)}" for n in names])
    stmt = text(f"UPDATE {table.name} AS t SET {', '.join(f'{n} = v.{n}' for n in names)}"
                f" FROM json_to_recordset(CAST(:rows AS json)) AS v({shape})"
                " WHERE t.db_name = :db AND t.doc_id = v.b_id")
    for start in range(0, len(params), CHUNK):
        db.session.execute(stmt, {"db": db_name, "rows": jsoncodec.dumps(params[start:start + CHUNK])})


def mark_deleted(table_name: str, db_name: str, revs: list[tuple[str, str]]) -> None:
    """Mark rows deleted at their tombstone rev, keeping the values last projected."""
    _update_each(TABLES[table_name], db_name, [{"b_id": d, "rev": r, "deleted": True} for d, r in revs])


def set_flags(db_name: str, flags: list[tuple[str, list[str]]]) -> None:
    """New risk flags for visits whose campaign thresholds changed."""
    _update_each(TABLES["visit"], db_name, [{"b_id": d, "risk_flags": f, "campaign_positive": campaign_positive(f)}
                                            for d, f in flags])


def move_records(db_name: str, moves: list[tuple[str, str]]) -> None:
    """Point visits and referrals that name each patient at its survivor."""
    if not moves:
        return
    for table in (TABLES["visit"], TABLES["referral"]):
        stmt = update(table).where(table.c.db_name == bindparam("b_db"),
                                   table.c.patient_doc_id == bindparam("b_src"))
        db.session.execute(stmt, [{"b_db": db_name, "b_src": s, "patient_id": p} for s, p in moves])


def recompute_patients(db_name: str, patient_ids: Iterable[str]) -> None:
    """Recompute the derived fields of these patients from their live visits and referrals, and copy
    their traits onto the visits that count for them (``copy_patient_traits``)."""
    ids = sorted(set(patient_ids))
    visit, referral = TABLES["visit"].c, TABLES["referral"].c
    visits: dict[str, list[Any]] = defaultdict(list)
    referrals: dict[str, list[Any]] = defaultdict(list)
    loads = jsoncodec.loads
    for chunk in chunks(ids):
        # Core selects, JSON as text parsed with orjson: this runs for every patient a batch
        # touches, and the JSON type's json.loads and ORM rows would cost more than the query.
        for pid, when, vid, obs, flags in db.session.execute(select(
                visit.patient_id, visit.visited_at, visit.doc_id, cast(visit.observations, Text),
                cast(visit.risk_flags, Text)).where(visit.db_name == db_name, visit.deleted.is_(False),
                                                    among(visit.patient_id, chunk))):
            visits[pid].append((when, vid, loads(obs), loads(flags)))
        for pid, made, vid, status in db.session.execute(select(
                referral.patient_id, referral.created_at, referral.visit_id, referral.status).where(
                referral.db_name == db_name, referral.deleted.is_(False), among(referral.patient_id, chunk))):
            referrals[pid].append((made, vid, status))
    _update_each(TABLES["patient"], db_name,
                 [{"b_id": pid, **derive_patient(visits[pid], referrals[pid])} for pid in ids])
    # Every change that can alter a visit's patient, or that patient's row, touches the patient.
    copy_patient_traits(db_name, ids)


def analyze() -> None:
    """Refresh PostgreSQL's statistics of the central tables (SQLite plans well without them)."""
    if _postgres():
        db.session.commit()
        db.session.execute(text("ANALYZE " + ", ".join(table.name for table in TABLES.values())))
        db.session.commit()


# ------------------------------------------------------------------------------------------------ views
def snapshot(db_name: str) -> dict[str, list[Json]]:
    """Every central row of ``db_name``, every column, by table and doc id (for equality checks)."""
    out: dict[str, list[Json]] = {}
    for name, table in TABLES.items():
        rows = [dict(r._mapping) for r in db.session.execute(select(table).where(table.c.db_name == db_name))]
        out[name] = sorted(rows, key=lambda r: r["doc_id"])
    return out


def counts(db_name: str) -> dict[str, int]:
    """Live (not deleted) rows per central table."""
    from sqlalchemy import func
    return {name: int(db.session.scalar(select(func.count()).select_from(table).where(
        table.c.db_name == db_name, table.c.deleted.is_(False))) or 0) for name, table in TABLES.items()}
