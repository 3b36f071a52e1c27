"""Databases, the write lock that orders the change feed, and attachment blobs.

Every write to a database runs inside ``write_lock``: it takes the database row's lock
first, hands out sequence numbers under it and commits before releasing it. Because the
lock is held from the first sequence taken until commit, a change with a higher seq can
never become visible before one with a lower seq, on SQLite (one writer at a time
anyway) and on PostgreSQL (row lock), so an incremental ``_changes`` reader never skips
a committed change (DESIGN decision 3).
"""
from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.dialects import postgresql, sqlite

from models import Attachment, Database, Document, db

from .dbapi import fetch, run
from .errors import DatabaseNotFound, FileExists, IllegalDatabaseName

DB_NAME = re.compile(r"^[a-z][a-z0-9_$()+/-]*$")

# Wakes long-poll readers in this process as soon as a write commits; readers in other
# processes fall back to polling the database row (see sync.changes.wait_for_change).
changed = threading.Condition()
# Set while the server shuts down: waiting feeds end at once instead of at their timeout.
stopping = threading.Event()


def stop_waiters() -> None:
    """End every waiting feed in this process now (a shutting-down server calls this)."""
    stopping.set()
    with changed:
        changed.notify_all()


_DATABASE = ("SELECT id, name, update_seq, revs_limit, doc_count, doc_del_count FROM couch_database"
             " WHERE name = ?")
# Taking the row's write lock and reading it are one statement; the counters are written back once.
_LOCK = "UPDATE couch_database SET update_seq = update_seq WHERE name = ?" \
        " RETURNING id, name, update_seq, revs_limit, doc_count, doc_del_count"
_SAVE = "UPDATE couch_database SET update_seq = ?, doc_count = ?, doc_del_count = ? WHERE id = ?"


@dataclass(slots=True)
class DatabaseRow:
    """A database's row as plain values (``write_lock`` changes the counters and writes them back)."""

    id: int
    name: str
    update_seq: int
    revs_limit: int
    doc_count: int
    doc_del_count: int


def get_database(name: str) -> DatabaseRow:
    """The database named ``name`` as plain values, or raise ``DatabaseNotFound``.

    Not an ORM object: every request looks its database up, and the ORM's identity
    bookkeeping costs more than the query itself.
    """
    rows = fetch(_DATABASE, [name])
    if not rows:
        raise DatabaseNotFound()
    return DatabaseRow(*rows[0])


def create_database(name: str) -> None:
    """Create an empty database; raise on an illegal or taken name."""
    if not isinstance(name, str) or not DB_NAME.match(name) or len(name) > 238:
        raise IllegalDatabaseName()
    # Write first, read never: on SQLite a transaction that has read cannot start to
    # write once another writer committed, so every write here begins with a fresh one.
    db.session.commit()
    try:
        db.session.execute(insert(Database).values(name=name, update_seq=0, revs_limit=1000, doc_count=0,
                                                   doc_del_count=0, created_at=time.time()))
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise FileExists() from None


def delete_database(name: str) -> None:
    """Delete a database and everything in it (rows cascade through foreign keys)."""
    db.session.commit()
    if db.session.execute(delete(Database).where(Database.name == name)).rowcount == 0:  # type: ignore[attr-defined]
        db.session.rollback()
        raise DatabaseNotFound()
    db.session.commit()


def set_revs_limit(name: str, limit: int) -> None:
    """Set how many revisions each document path keeps."""
    db.session.commit()
    if db.session.execute(update(Database).where(Database.name == name)
                          .values(revs_limit=limit)).rowcount == 0:  # type: ignore[attr-defined]
        db.session.rollback()
        raise DatabaseNotFound()
    db.session.commit()


def list_databases() -> list[str]:
    return list(db.session.scalars(select(Database.name).order_by(Database.name)))


def database_info(row: Any) -> dict[str, object]:
    """The ``GET /db`` body, with the fields PouchDB and the CouchDB replicator read."""
    return {
        "db_name": row.name, "update_seq": row.update_seq, "purge_seq": 0,
        "doc_count": row.doc_count, "doc_del_count": row.doc_del_count,
        "instance_start_time": "0", "compact_running": False, "disk_format_version": 8,
        "sizes": {"file": 0, "external": 0, "active": 0},
        "props": {}, "cluster": {"q": 1, "n": 1, "w": 1, "r": 1},
    }


@dataclass
class WriteTxn:
    """Bookkeeping for one locked write: the database row and its counters."""

    database: DatabaseRow

    def bump(self, now_live: bool, was_live: bool | None) -> int:
        """Hand out the next sequence and keep the live/deleted counters right."""
        database = self.database
        database.update_seq += 1
        if was_live is not None:
            database.doc_count -= int(was_live)
            database.doc_del_count -= int(not was_live)
        database.doc_count += int(now_live)
        database.doc_del_count += int(not now_live)
        return database.update_seq


@contextmanager
def write_lock(name: str) -> Iterator[WriteTxn]:
    """Lock database ``name`` for writing; commit on success, roll back on any error."""
    # End any read transaction first: on SQLite a transaction that read before it
    # writes cannot take the write lock once another writer has committed.
    db.session.commit()
    try:
        rows = fetch(_LOCK, [name])
        if not rows:
            raise DatabaseNotFound()
        row = DatabaseRow(*rows[0])
        counters = (row.update_seq, row.doc_count, row.doc_del_count)
        yield WriteTxn(row)
        if (row.update_seq, row.doc_count, row.doc_del_count) != counters:
            run(_SAVE, [row.update_seq, row.doc_count, row.doc_del_count, row.id])
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    with changed:
        changed.notify_all()


def store_blob(data: bytes) -> str:
    """Store attachment bytes once; return their SHA-256 key."""
    key = hashlib.sha256(data).hexdigest()
    dialect = db.session.get_bind().dialect.name
    ins = postgresql.insert(Attachment) if dialect == "postgresql" else sqlite.insert(Attachment)
    db.session.execute(ins.values(sha256=key, length=len(data), data=data)
                       .on_conflict_do_nothing(index_elements=["sha256"]))
    return key


def load_blob(key: str) -> bytes:
    row = db.session.get(Attachment, key)
    if row is None:  # pragma: no cover - a revision never names a blob it did not store
        raise DatabaseNotFound("attachment data missing")
    return row.data


def branch_points(tree: list[Any]) -> set[str]:
    """Revisions with more than one child."""
    found: set[str] = set()
    stack = [(p["pos"], p["ids"]) for p in tree]
    while stack:
        pos, node = stack.pop()
        if len(node[2]) > 1:
            found.add(f"{pos}-{node[0]}")
        stack.extend((pos + 1, child) for child in node[2])
    return found


def compact_database(name: str) -> None:
    """Drop bodies of non-leaf revisions (CouchDB's ``_compact``), except branch points.

    A revision with two or more children is the common ancestor of a conflict: the
    three-way merge needs its body (DESIGN decision 2), so compaction keeps it.
    """
    from .revtree import compact
    with write_lock(name) as txn:
        docs = db.session.scalars(select(Document).where(Document.database_id == txn.database.id))
        for doc in docs:
            tree, removed = compact(doc.rev_tree)
            keep = branch_points(doc.rev_tree)
            removed = [r for r in removed if r not in keep]
            if removed:
                doc.rev_tree = tree
                db.session.execute(text("DELETE FROM couch_revision WHERE document_id = :d AND rev = :r"),
                                   [{"d": doc.id, "r": r} for r in removed])
