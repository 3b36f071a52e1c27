"""What every part of the device store shares: the connection, the keys, envelopes, revision writes."""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import crypto
from sync import jsoncodec
from sync.merge import merge
from sync.revtree import RevPath, RevTree, compact, is_deleted, is_leaf, winning_rev
from sync.treecodec import flatten, unflatten

from . import schema

Json = dict[str, Any]


@dataclass(frozen=True)
class DocRow:
    """A document's clear metadata: its revision tree, winner, deleted flag and seq."""

    tree: RevTree
    winning_rev: str
    deleted: bool
    seq: int


@dataclass(frozen=True)
class Att:
    """One attachment of one revision: metadata and, when loaded, the decrypted bytes."""

    content_type: str
    digest: str
    length: int
    revpos: int
    data: bytes | None = None

    def stub(self) -> Json:
        """The ``_attachments`` entry of a read without data."""
        return {"content_type": self.content_type, "digest": self.digest, "length": self.length,
                "revpos": self.revpos, "stub": True}


class StoreCore:
    """The connection, the unlocked data key (and the retiring one mid-rotation), and revision writes."""

    def __init__(self, conn: sqlite3.Connection, path: str, key: bytes, old_key: bytes | None) -> None:
        self._conn = conn
        self.path = path
        self._lock = threading.RLock()
        self.db_name: str = schema.get_meta(conn, "db_name")
        self._revs_limit = int(schema.get_meta(conn, "revs_limit"))
        self._set_keys(key, old_key)

    def _set_keys(self, key: bytes, old_key: bytes | None) -> None:
        """Remember the data keys by id, so each envelope opens with the key that sealed it."""
        self._key = key
        self._keys = {crypto.key_id(key): key}
        if old_key is not None:
            self._keys[crypto.key_id(old_key)] = old_key

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (IMMEDIATE) so seqs are handed out in commit order."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run a read under the lock."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _keyring(self) -> crypto.Keyring:
        """The stored keyring."""
        text = self._rows("SELECT value FROM meta WHERE key = 'keyring'")[0][0]
        return crypto.Keyring.from_json(jsoncodec.loads(text))

    def _seal(self, data: bytes, doc_id: str, rev: str, attachment: str | None = None) -> bytes:
        """Seal under the current data key, bound to this db, the doc id, the rev (and the name)."""
        return crypto.seal(self._key, data, db=self.db_name, doc_id=doc_id, rev=rev, attachment=attachment)

    def _open(self, envelope: bytes, doc_id: str, rev: str, attachment: str | None = None) -> bytes:
        """Open an envelope with whichever of our keys sealed it; DecryptionError for anything else."""
        key = self._keys.get(crypto.envelope_key_id(envelope))
        if key is None:
            raise crypto.DecryptionError
        return crypto.open_sealed(key, envelope, db=self.db_name, doc_id=doc_id, rev=rev, attachment=attachment)

    def _load(self, doc_id: str) -> DocRow | None:
        """The document's clear metadata, or None if it was never written."""
        rows = self._rows("SELECT rev_tree, winning_rev, deleted, seq FROM docs WHERE doc_id = ?", (doc_id,))
        if not rows:
            return None
        tree, winner, deleted, seq = rows[0]
        return DocRow(unflatten(jsoncodec.loads(tree)), winner, bool(deleted), seq)

    def _body(self, doc_id: str, rev: str) -> Json | None:
        """The decrypted body of a stored revision, or None when its body is not held."""
        rows = self._rows("SELECT envelope FROM revs WHERE doc_id = ? AND rev = ?", (doc_id, rev))
        return jsoncodec.loads(self._open(rows[0][0], doc_id, rev)) if rows else None

    def _atts(self, doc_id: str, rev: str, *, data: bool) -> dict[str, Att]:
        """The attachments of a stored revision, decrypted when ``data``."""
        rows = self._rows("SELECT name, content_type, digest, length, revpos, envelope FROM attachments"
                          " WHERE doc_id = ? AND rev = ? ORDER BY name", (doc_id, rev))
        return {name: Att(ctype, digest, length, revpos, self._open(env, doc_id, rev, name) if data else None)
                for name, ctype, digest, length, revpos, env in rows}

    def _write(self, doc_id: str, existing: DocRow | None, path: RevPath, rev: str, body: Json,
               atts: dict[str, Att]) -> None:
        """Merge ``path`` into the tree and store ``rev``'s body and attachments (inside ``_tx``)."""
        merged = merge(existing.tree if existing else [], path, self._revs_limit)
        # The device keeps leaf bodies only (compaction on every write): the replicator only
        # ever sends leaves, and fewer old copies of personal data sit on a tablet.
        tree, compacted = compact(merged.tree)
        gone = [(doc_id, r) for r in set(merged.stemmed_revs) | set(compacted)]
        self._conn.executemany("DELETE FROM revs WHERE doc_id = ? AND rev = ?", gone)
        self._conn.executemany("DELETE FROM attachments WHERE doc_id = ? AND rev = ?", gone)
        if is_leaf(tree, rev):
            self._store_rev(doc_id, rev, body, atts)
        seq = int(schema.get_meta(self._conn, "update_seq")) + 1
        schema.set_meta(self._conn, "update_seq", seq)
        self._conn.execute(
            "INSERT INTO docs (doc_id, rev_tree, winning_rev, deleted, seq) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (doc_id) DO UPDATE SET rev_tree = excluded.rev_tree,"
            " winning_rev = excluded.winning_rev, deleted = excluded.deleted, seq = excluded.seq",
            (doc_id, jsoncodec.dumps(flatten(tree)), winning_rev(tree), int(is_deleted(tree)), seq))

    def _store_rev(self, doc_id: str, rev: str, body: Json, atts: dict[str, Att]) -> None:
        """Seal and insert one revision's body and its attachments."""
        envelope = self._seal(jsoncodec.dumps(body).encode("utf-8"), doc_id, rev)
        self._conn.execute("INSERT OR REPLACE INTO revs (doc_id, rev, envelope) VALUES (?, ?, ?)",
                           (doc_id, rev, envelope))
        self._conn.execute("DELETE FROM attachments WHERE doc_id = ? AND rev = ?", (doc_id, rev))
        self._conn.executemany(
            "INSERT INTO attachments (doc_id, rev, name, content_type, digest, length, revpos, envelope)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(doc_id, rev, name, a.content_type, a.digest, a.length, a.revpos,
              self._seal(a.data or b"", doc_id, rev, name)) for name, a in atts.items()])
