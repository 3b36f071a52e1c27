"""One write's documents: loaded once, changed in memory, written back set-wise.

``Batch`` is what ``sync.writes`` (and the records code on top of it) change documents
through: ``load`` the rows, ``graft`` revision paths into their trees, ``flush`` the
result in a handful of statements on the DBAPI cursor (sync.dbapi) rather than the ORM's
unit of work: a replication batch of 100 new documents is one multi-row ``INSERT`` of
documents, one of bodies, and the database row's counters at commit (sync.store).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from . import audit, jsoncodec, scopeindex
from .dbapi import fetch, marks, run, run_many
from .docs import Json, dump_body
from .merge import merge
from .revtree import is_deleted, winning_rev
from .rows import bodies_of, docs_by_ids, last_live_body
from .store import WriteTxn
from .treecodec import flatten

_NEW_DOCS = ("INSERT INTO couch_document (database_id, doc_id, rev_tree, winning_rev, deleted, seq)"
             " VALUES {rows} RETURNING id, doc_id")
_SET_DOC = "UPDATE couch_document SET rev_tree = ?, winning_rev = ?, deleted = ?, seq = ? WHERE id = ?"
_NEW_BODY = "INSERT INTO couch_revision (document_id, rev, body, deleted) VALUES (?, ?, ?, ?)"
_DROP_BODIES = "DELETE FROM couch_revision WHERE document_id = ? AND rev IN ({revs})"
INSERT_CHUNK = 500  # documents per INSERT: 3,000 parameters, within every engine's bound


class Author(NamedTuple):
    """Who writes the revisions of a server-side batch, by which path (``via``), from which device."""

    actor: str
    via: str
    device_id: str | None = None


@dataclass
class DocState:
    """A document's row as this write sees it: loaded, or about to be inserted."""

    doc_id: str
    rev_tree: list[Any]
    winning_rev: str = ""
    deleted: bool = False
    seq: int = 0
    id: int | None = None
    dirty: bool = False


def path_revs(path: dict[str, Any]) -> list[str]:
    """The hashes along a linear path from ``make_path``, root first."""
    hashes, node = [], path["ids"]
    while True:
        hashes.append(node[0])
        if not node[2]:
            return hashes
        node = node[2][0]


@dataclass
class Batch:
    """Documents of one write, loaded once, plus the rows to write at the end."""

    txn: WriteTxn
    docs: dict[str, DocState] = field(default_factory=dict)
    bodies: list[tuple[DocState, str, str, bool]] = field(default_factory=list)
    stemmed: list[tuple[DocState, list[str]]] = field(default_factory=list)
    # Bodies grafted by this batch, by (doc id, rev): the index needs the winners' bodies.
    new_bodies: dict[tuple[str, str], Json] = field(default_factory=dict)
    # Who writes a server-side edit (a review, a merge, a resolution) and by which path: each
    # revision it grafts gets its doc.write entry, as a device's revisions get theirs from the
    # access gate, so the visit page can say who wrote every revision.
    author: Author | None = None

    def load(self, doc_ids: list[Any]) -> None:
        ids = [i for i in doc_ids if isinstance(i, str)]
        for doc_id, row in docs_by_ids(self.txn.database.id, ids).items():
            self.docs[doc_id] = DocState(doc_id, row.rev_tree, row.winning_rev, row.deleted, row.seq, row.id)

    def bodies_of(self, doc: DocState | None, revs: list[str]) -> dict[str, Json]:
        """Stored bodies of ``revs`` of ``doc`` (those we hold)."""
        if doc is None or doc.id is None or not revs:
            return {}
        return {rev: body for (_, rev), body in bodies_of([(doc.id, r) for r in revs]).items()}

    def body_at(self, doc: DocState, rev: str) -> Json | None:
        """The body of ``rev``: grafted by this batch, or stored."""
        found = self.new_bodies.get((doc.doc_id, rev))
        return found if found is not None else self.bodies_of(doc, [rev]).get(rev)

    def old_body(self, doc_id: str, rev: str | None = None) -> Json | None:
        """The body a write replaces (see sync.writes); ``rev``: an edit's parent."""
        doc = self.docs.get(doc_id)
        if doc is None:
            return None
        rev = rev or doc.winning_rev
        body = None if is_deleted(doc.rev_tree, rev) else self.body_at(doc, rev)
        if body is None and doc.id is not None:
            body = last_live_body(doc.id)
        return {**(body or {}), "_id": doc_id}

    def graft(self, doc_id: str, path: dict[str, Any], rev: str, body: Json, deleted: bool) -> None:
        """Merge ``path`` into the document's tree and queue the leaf body."""
        doc = self.docs.get(doc_id)
        text = dump_body(body)
        limit = self.txn.database.revs_limit
        was_live = None if doc is None else not doc.deleted
        if doc is None and len(path_revs(path)) <= limit:
            # A first revision needs no merge: the path is the tree, its leaf the winner.
            doc = self.docs[doc_id] = DocState(doc_id, [path], rev, deleted)
        else:
            if doc is None:
                doc = self.docs[doc_id] = DocState(doc_id, [])
            result = merge(doc.rev_tree, path, limit)
            doc.rev_tree = result.tree
            doc.winning_rev = winning_rev(result.tree)
            doc.deleted = is_deleted(result.tree)
            if result.stemmed_revs:
                self.stemmed.append((doc, list(result.stemmed_revs)))
        doc.dirty = True
        doc.seq = self.txn.bump(not doc.deleted, was_live)
        self.bodies.append((doc, rev, text, deleted))
        self.new_bodies[(doc_id, rev)] = body
        if self.author is not None:
            audit.record_write(self.author.actor, self.txn.database.name, doc_id, rev, via=self.author.via,
                               device_id=self.author.device_id, deleted=deleted)

    def flush(self) -> None:
        """Write the changed rows: new documents, updated ones, bodies, stemmed bodies, index keys."""
        fresh = [d for d in self.docs.values() if d.dirty and d.id is None]
        fresh_ids = {d.doc_id for d in fresh}
        changed = [d for d in self.docs.values() if d.dirty and d.id is not None]
        database_id = self.txn.database.id
        for start in range(0, len(fresh), INSERT_CHUNK):
            chunk = fresh[start:start + INSERT_CHUNK]
            params = [value for d in chunk for value in (database_id, d.doc_id, jsoncodec.dumps(flatten(d.rev_tree)),
                                                         d.winning_rev, d.deleted, d.seq)]
            for pk, doc_id in fetch(_NEW_DOCS.format(rows=marks(len(chunk), 6)), params):
                self.docs[doc_id].id = pk
        run_many(_SET_DOC, [(jsoncodec.dumps(flatten(d.rev_tree)), d.winning_rev, d.deleted, d.seq, d.id)
                            for d in changed])
        for doc, revs in self.stemmed:
            run(_DROP_BODIES.format(revs=marks(len(revs))), [doc.id, *revs])
        run_many(_NEW_BODY, [(doc.id, rev, text, deleted) for doc, rev, text, deleted in self.bodies])
        if (fresh or changed) and scopeindex.is_indexed(database_id):
            scopeindex.index_writes(database_id, [
                scopeindex.Written(d.id, d.doc_id, d.seq,  # type: ignore[arg-type]
                                   None if d.deleted else self.body_at(d, d.winning_rev), d.doc_id in fresh_ids)
                for d in (*fresh, *changed)])
