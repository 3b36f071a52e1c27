"""Document rows read with prepared SQL, for the paths every replication request takes.

Building a SQLAlchemy statement costs more than running it on SQLite; these statements
are built once at import and fetch plain rows, turned into ``DocRow`` values here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, text

from models import db

from . import jsoncodec
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


_COLUMNS = "id, doc_id, rev_tree, winning_rev, deleted, seq FROM couch_document WHERE database_id = :db"
_BY_IDS = text(f"SELECT {_COLUMNS} AND doc_id IN :ids").bindparams(bindparam("ids", expanding=True))
# By primary key alone: with "database_id = ?" beside it SQLite walks the database's whole
# seq index instead of looking the rows up. The database is checked on the rows.
_BY_PKS = text("SELECT id, doc_id, rev_tree, winning_rev, deleted, seq, database_id FROM couch_document"
               " WHERE id IN :pks").bindparams(bindparam("pks", expanding=True))
_LIVE_BODIES = text("SELECT rev, body FROM couch_revision WHERE document_id = :pk AND deleted = :no")
_AFTER = text(f"SELECT {_COLUMNS} AND seq > :since ORDER BY seq LIMIT :limit")
_NEWEST = text(f"SELECT {_COLUMNS} ORDER BY seq DESC LIMIT :limit")
_BODIES = text("SELECT document_id, rev, body FROM couch_revision WHERE document_id IN :pks AND rev IN :revs"
               ).bindparams(bindparam("pks", expanding=True), bindparam("revs", expanding=True))
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
        for row in db.session.execute(_BY_IDS, {"db": database_id, "ids": ids[start:start + CHUNK]}):
            found[row[1]] = _doc_row(row)
    return found


def docs_by_pks(database_id: int, pks: list[int]) -> dict[int, DocRow]:
    """The rows of the given documents (by primary key) that exist in the database."""
    ids = list(dict.fromkeys(pks))
    found: dict[int, DocRow] = {}
    for start in range(0, len(ids), CHUNK):
        for row in db.session.execute(_BY_PKS, {"pks": ids[start:start + CHUNK]}):
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
    for rev, text_ in db.session.execute(_LIVE_BODIES, {"pk": pk, "no": False}):
        pos, _, rev_hash = rev.partition("-")
        rank = (int(pos), rev_hash)
        if best is None or rank > best:
            best, body = rank, text_
    return None if body is None else jsoncodec.loads(body)


def doc_by_id(database_id: int, doc_id: str) -> DocRow | None:
    return docs_by_ids(database_id, [doc_id]).get(doc_id)


def docs_after(database_id: int, since: int, limit: int | None) -> list[DocRow]:
    """Documents changed after ``since``, in sequence order."""
    rows = db.session.execute(_AFTER, {"db": database_id, "since": since,
                                       "limit": NO_LIMIT if limit is None else limit})
    return [_doc_row(r) for r in rows]


def docs_newest_first(database_id: int, limit: int | None) -> list[DocRow]:
    rows = db.session.execute(_NEWEST, {"db": database_id, "limit": NO_LIMIT if limit is None else limit})
    return [_doc_row(r) for r in rows]


def bodies_of(pairs: list[tuple[int, str]]) -> dict[tuple[int, str], Any]:
    """Stored bodies for (document pk, rev) pairs, parsed."""
    wanted = set(pairs)
    out: dict[tuple[int, str], Any] = {}
    pks = list(dict.fromkeys(pk for pk, _ in pairs))
    for start in range(0, len(pks), CHUNK):
        chunk = set(pks[start:start + CHUNK])
        revs = list({rev for pk, rev in wanted if pk in chunk})
        for pk, rev, body in db.session.execute(_BODIES, {"pks": list(chunk), "revs": revs}):
            if (pk, rev) in wanted:
                out[(pk, rev)] = jsoncodec.loads(body)
    return out
