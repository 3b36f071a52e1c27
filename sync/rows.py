"""Document rows and revision bodies, read on the paths every replication request takes.

The SQL runs straight on the DBAPI cursor (sync.dbapi): building a SQLAlchemy statement
and its result objects costs more than running the query on SQLite. Rows become
``DocRow`` values here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import jsoncodec
from .dbapi import fetch, marks
from .treecodec import unflatten


@dataclass(slots=True)
class DocRow:
    """A document's row: id, revision tree, winner, deleted flag and latest sequence."""

    id: int
    doc_id: str
    rev_tree: list[Any]
    winning_rev: str
    deleted: bool
    seq: int


_COLUMNS = "SELECT id, doc_id, rev_tree, winning_rev, deleted, seq FROM couch_document WHERE database_id = ?"
# By primary key alone: with "database_id = ?" beside it SQLite walks the database's whole
# seq index instead of looking the rows up. The database is checked on the rows.
_BY_PKS = "SELECT id, doc_id, rev_tree, winning_rev, deleted, seq, database_id FROM couch_document WHERE id IN "
_LIVE_BODIES = "SELECT rev, body FROM couch_revision WHERE document_id = ? AND deleted = ?"
_AFTER = _COLUMNS + " AND seq > ? ORDER BY seq LIMIT ?"
_NEWEST = _COLUMNS + " ORDER BY seq DESC LIMIT ?"
# The wanted (document, rev) pairs joined to the unique (document_id, rev) index: one
# lookup per pair. (A "document_id IN … AND rev IN …" would probe every combination.)
_BODIES = ("SELECT r.document_id, r.rev, r.body FROM (VALUES {pairs}) AS v"
           " JOIN couch_revision r ON r.document_id = v.column1 AND r.rev = v.column2")
# LIMIT needs a number on every engine; this one is never reached.
NO_LIMIT = 2**62
CHUNK = 500  # ids per IN list, well under SQLite's bound-parameter limit


def _doc_row(row: Any) -> DocRow:
    return DocRow(row[0], row[1], unflatten(jsoncodec.loads(row[2])), row[3], bool(row[4]), row[5])


def docs_by_ids(database_id: int, doc_ids: list[str]) -> dict[str, DocRow]:
    """The rows of the given documents that exist, by doc id."""
    ids = list(dict.fromkeys(doc_ids))
    found: dict[str, DocRow] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        for row in fetch(f"{_COLUMNS} AND doc_id IN ({marks(len(chunk))})", [database_id, *chunk]):
            found[row[1]] = _doc_row(row)
    return found


def docs_by_pks(database_id: int, pks: list[int]) -> dict[int, DocRow]:
    """The rows of the given documents (by primary key) that exist in the database."""
    ids = list(dict.fromkeys(pks))
    found: dict[int, DocRow] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        for row in fetch(f"{_BY_PKS}({marks(len(chunk))})", chunk):
            if row[6] == database_id:
                found[row[0]] = _doc_row(row)
    return found


def last_live_body(pk: int) -> Any:
    """The body of a document's latest live revision that is still held (highest pos, then hash), or None.

    A deleted document keeps the access keys of this body, and a write over it is judged
    against it (``sync.scope.may_write``).
    """
    best: tuple[int, str] | None = None
    body = None
    for rev, text_ in fetch(_LIVE_BODIES, [pk, False]):
        pos, _, rev_hash = rev.partition("-")
        rank = (int(pos), rev_hash)
        if best is None or rank > best:
            best, body = rank, text_
    return None if body is None else jsoncodec.loads(body)


def doc_by_id(database_id: int, doc_id: str) -> DocRow | None:
    return docs_by_ids(database_id, [doc_id]).get(doc_id)


def docs_after(database_id: int, since: int, limit: int | None) -> list[DocRow]:
    """Documents changed after ``since``, in sequence order."""
    rows = fetch(_AFTER, [database_id, since, NO_LIMIT if limit is None else limit])
    return [_doc_row(r) for r in rows]


def docs_newest_first(database_id: int, limit: int | None) -> list[DocRow]:
    rows = fetch(_NEWEST, [database_id, NO_LIMIT if limit is None else limit])
    return [_doc_row(r) for r in rows]


def bodies_of(pairs: list[tuple[int, str]]) -> dict[tuple[int, str], Any]:
    """Stored bodies for (document pk, rev) pairs, parsed."""
    return {pair: jsoncodec.loads(text) for pair, text in body_texts_of(pairs).items()}


def body_texts_of(pairs: list[tuple[int, str]]) -> dict[tuple[int, str], str]:
    """Stored bodies for (document pk, rev) pairs, as the JSON text they are stored as."""
    wanted = list(dict.fromkeys(pairs))
    out: dict[tuple[int, str], str] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start:start + CHUNK]
        params = [value for pair in chunk for value in pair]
        for pk, rev, body in fetch(_BODIES.format(pairs=marks(len(chunk), 2)), params):
            out[(pk, rev)] = body
    return out
