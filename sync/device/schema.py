"""The device file's tables, its connection settings and the clear ``meta`` rows."""
from __future__ import annotations

import sqlite3
from typing import Any

SCHEMA_VERSION = 1
REVS_LIMIT = 1000  # CouchDB's default: ancestors kept as ids (not bodies) for replication

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE docs (
    doc_id TEXT PRIMARY KEY,
    rev_tree TEXT NOT NULL,
    winning_rev TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    seq INTEGER NOT NULL UNIQUE
);
CREATE TABLE revs (
    doc_id TEXT NOT NULL,
    rev TEXT NOT NULL,
    envelope BLOB NOT NULL,
    PRIMARY KEY (doc_id, rev)
);
CREATE TABLE attachments (
    doc_id TEXT NOT NULL,
    rev TEXT NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    digest TEXT NOT NULL,
    length INTEGER NOT NULL,
    revpos INTEGER NOT NULL,
    envelope BLOB NOT NULL,
    PRIMARY KEY (doc_id, rev, name)
);
CREATE TABLE local (id TEXT PRIMARY KEY, rev INTEGER NOT NULL, json TEXT NOT NULL);
"""


def connect(path: str) -> sqlite3.Connection:
    """Open the file in autocommit mode (transactions are explicit), WAL, secure_delete."""
    # check_same_thread=False: a replicator thread may use the store; DeviceStore serialises
    # every use of the connection behind its own lock.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # Freed pages are zeroed, so a re-encrypted or deleted envelope leaves no old ciphertext
    # (and a wiped keyring no old wrap) behind in the file.
    conn.execute("PRAGMA secure_delete=ON")
    conn.execute("PRAGMA synchronous=FULL")  # a visit written offline must survive a power cut
    return conn


def create_tables(conn: sqlite3.Connection, meta: dict[str, Any]) -> None:
    """Create the schema and its first meta rows in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        rows = {"schema_version": SCHEMA_VERSION, "update_seq": 0, "revs_limit": REVS_LIMIT, **meta}
        conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", list(rows.items()))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def get_meta(conn: sqlite3.Connection, key: str) -> Any:
    """The value of a meta row, or None."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def set_meta(conn: sqlite3.Connection, key: str, value: Any) -> None:
    """Insert or replace a meta row (inside the caller's transaction)."""
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))
