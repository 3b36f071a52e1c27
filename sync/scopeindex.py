"""The scope index: every document's access keys (``sync.scope.doc_keys``) in ``scope_key``.

Only databases flagged in ``scope_database`` are indexed: the records database, which the
API turns on (``enable``) the first time it serves it. ``sync.writes.Batch.flush`` keeps
the index right in the same transaction as the documents, whoever writes (a replication,
the conflict resolver, a quarantine release), so the flag lives in the database, not in
one process's configuration.

Rows (DESIGN decision 4)::

    scope_key(database_id, document_id -> couch_document.id, key, seq)
    index (database_id, key, seq)   a user's feed: one range scan per key after ``since``
    index (document_id, key)        a document's keys: visibility checks (index only), rewrites

A document's keys come from its winning body. A deleted winner keeps the keys of its last
live body (the existing rows stay). Every write of a document sets ``seq`` of all its rows
to the document's new sequence, so a key's rows are in feed order and a document that left
a key simply stops appearing under it.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, text

from models import Document, db
from models.access import ScopedDatabase, ScopeKey

from . import jsoncodec
from .docs import Json
from .rows import CHUNK, last_live_body
from .scope import doc_keys
from .store import get_database, write_lock

_FLAG = text("SELECT 1 FROM scope_database WHERE database_id = :db")
_SET_SEQ = text("UPDATE scope_key SET seq = :seq WHERE document_id = :pk")
# Walks the primary key (all databases), checking database_id on the rows: with
# "database_id = ?" SQLite would scan that database's seq index for every chunk.
_WINNERS = text("SELECT d.id, d.doc_id, d.deleted, d.seq, r.body, d.database_id FROM couch_document d"
                " LEFT JOIN couch_revision r ON r.document_id = d.id AND r.rev = d.winning_rev"
                " WHERE d.id > :after ORDER BY d.id LIMIT :limit")
REBUILD_CHUNK = 2000
Progress = Callable[[int], None]  # told how many stored documents were just read


@dataclass(frozen=True)
class Written:
    """One document as a write left it: its row, its new seq, and its winning body (None if deleted)."""

    pk: int
    doc_id: str
    seq: int
    body: Json | None
    fresh: bool  # inserted by this write: it has no rows yet


def is_indexed(database_id: int) -> bool:
    """Whether writes to this database keep the scope index."""
    return db.session.execute(_FLAG, {"db": database_id}).first() is not None


def keys_of(doc_id: str, body: Json) -> frozenset[str]:
    """The access keys of a stored body (stored bodies carry no ``_id``)."""
    return doc_keys({**body, "_id": doc_id})


def index_writes(database_id: int, written: Iterable[Written]) -> None:
    """Bring the rows of written documents up to date (inside the write's transaction)."""
    replace: list[int] = []
    rows: list[dict[str, Any]] = []
    bumps: list[dict[str, int]] = []
    for doc in written:
        if doc.body is None:
            if not doc.fresh:  # deleted: keep the keys of the last live body, at the new seq
                bumps.append({"seq": doc.seq, "pk": doc.pk})
            continue
        if not doc.fresh:
            replace.append(doc.pk)
        rows.extend({"database_id": database_id, "document_id": doc.pk, "key": key, "seq": doc.seq}
                    for key in keys_of(doc.doc_id, doc.body))
    for start in range(0, len(replace), CHUNK):
        db.session.execute(delete(ScopeKey).where(ScopeKey.document_id.in_(replace[start:start + CHUNK])))
    if rows:
        db.session.execute(insert(ScopeKey), rows)
    if bumps:
        db.session.execute(_SET_SEQ, bumps)


def enable(db_name: str, progress: Progress | None = None) -> bool:
    """Index ``db_name`` from now on; build the index of what it holds. True if it was not indexed yet.

    ``progress`` is called with the count of stored documents read, chunk by chunk.
    """
    database = get_database(db_name)
    if is_indexed(database.id):
        return False
    with write_lock(db_name) as txn:
        if is_indexed(txn.database.id):  # another process got there first
            return False
        db.session.add(ScopedDatabase(database_id=txn.database.id, enabled_at=time.time()))
        _rebuild(txn.database.id, progress)
    return True


def rebuild(db_name: str, progress: Progress | None = None) -> int:
    """Recompute every key row of an indexed database (after a bulk load); return the rows written.

    ``progress`` is called with the count of stored documents read, chunk by chunk.
    """
    with write_lock(db_name) as txn:
        db.session.execute(delete(ScopeKey).where(ScopeKey.database_id == txn.database.id))
        return _rebuild(txn.database.id, progress)


def _rebuild(database_id: int, progress: Progress | None = None) -> int:
    """Insert the rows of every document, a chunk at a time (inside a write lock)."""
    after, total = 0, 0
    while True:
        chunk = db.session.execute(_WINNERS, {"after": after, "limit": REBUILD_CHUNK}).all()
        if not chunk:
            return total
        if progress is not None:
            progress(len(chunk))  # the chunk spans every database's documents: one step each
        rows = []
        for pk, doc_id, deleted, seq, body, owner in chunk:
            if owner != database_id:
                continue
            found = last_live_body(pk) if deleted or body is None else jsoncodec.loads(body)
            rows.extend({"database_id": database_id, "document_id": pk, "key": key, "seq": seq}
                        for key in (keys_of(doc_id, found) if found is not None else ()))
        if rows:
            db.session.execute(insert(ScopeKey), rows)
        total += len(rows)
        after = chunk[-1][0]


_KEYS_OF_PKS = text("SELECT document_id, key FROM scope_key WHERE document_id IN :pks").bindparams(
    bindparam("pks", expanding=True))


def stored_keys(pks: list[int]) -> dict[int, set[str]]:
    """The indexed keys of these documents."""
    found: dict[int, set[str]] = {pk: set() for pk in pks}
    for start in range(0, len(pks), CHUNK):
        for pk, key in db.session.execute(_KEYS_OF_PKS, {"pks": pks[start:start + CHUNK]}):
            found[pk].add(key)
    return found


def documents_under(database_id: int, key: str) -> list[tuple[int, str, bool]]:
    """(pk, doc id, deleted) of the documents holding ``key``."""
    rows = db.session.execute(select(Document.id, Document.doc_id, Document.deleted)
                              .join(ScopeKey, ScopeKey.document_id == Document.id)
                              .where(ScopeKey.database_id == database_id, ScopeKey.key == key))
    return [(pk, doc_id, bool(deleted)) for pk, doc_id, deleted in rows]
