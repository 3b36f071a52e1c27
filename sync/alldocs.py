"""``_all_docs``: live documents in id order (raw code-point collation, as CouchDB's
``_all_docs`` index), with key ranges, paging and key lookups.

With a ``reader`` (sync.scopefeed) only the documents in the reader's scope exist:
``total_rows`` counts them, ``offset`` and ``skip`` count among them, and a key outside
the scope answers ``not_found`` like an absent one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.sql.elements import ColumnElement

from models import Document, db
from models.access import ScopeKey

from .reads import ReadOptions, build_doc, find_docs, load_bodies
from .scopefeed import Reader
from .store import get_database


@dataclass(frozen=True)
class AllDocsQuery:
    keys: tuple[str, ...] | None = None
    startkey: Any = None
    endkey: Any = None
    inclusive_end: bool = True
    descending: bool = False
    limit: int | None = None
    skip: int = 0
    include_docs: bool = False
    conflicts: bool = False
    attachments: bool = False


def _doc_id() -> ColumnElement[str]:
    """The id column compared byte-wise on every engine (PostgreSQL's locale would not)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return Document.doc_id.collate("C")
    return Document.doc_id  # type: ignore[return-value]


def _row(doc: Document, query: AllDocsQuery, bodies: dict[tuple[int, str], Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"id": doc.doc_id, "key": doc.doc_id, "value": {"rev": doc.winning_rev}}
    if query.include_docs:
        opts = ReadOptions(conflicts=query.conflicts, attachments=query.attachments)
        row["doc"] = build_doc(doc, doc.winning_rev, bodies.get((doc.id, doc.winning_rev)), opts)
    return row


def _in_scope(database_id: int, reader: Reader | None) -> ColumnElement[bool]:
    """The documents of the database (that the reader sees)."""
    if reader is None:
        return Document.database_id == database_id
    # The scope alone (its rows name the database): beside "database_id = ?" SQLite would
    # walk every document of the database and probe the scope for each.
    return Document.id.in_(select(ScopeKey.document_id).where(
        ScopeKey.database_id == database_id, ScopeKey.key.in_(sorted(reader.keys))))


def all_docs(db_name: str, query: AllDocsQuery, *, reader: Reader | None = None) -> dict[str, Any]:
    """The ``_all_docs`` answer: ``total_rows``, ``offset`` and ``rows``."""
    database = get_database(db_name)
    live = _in_scope(database.id, reader) & (Document.deleted.is_(False))
    total = database.doc_count if reader is None else int(
        db.session.scalar(select(func.count()).select_from(Document).where(live)) or 0)
    if query.keys is not None:
        return _by_keys(database.id, total, query, reader)
    col = _doc_id()
    lo, hi = (query.endkey, query.startkey) if query.descending else (query.startkey, query.endkey)
    lo_incl, hi_incl = (query.inclusive_end, True) if query.descending else (True, query.inclusive_end)
    cond = live
    if isinstance(lo, str):
        cond = cond & (col >= lo if lo_incl else col > lo)
    if isinstance(hi, str):
        cond = cond & (col <= hi if hi_incl else col < hi)
    stmt = select(Document).where(cond).order_by(col.desc() if query.descending else col)
    stmt = stmt.offset(query.skip)
    if query.limit is not None:
        stmt = stmt.limit(query.limit)
    docs = list(db.session.scalars(stmt))
    bodies = load_bodies([(d.id, d.winning_rev) for d in docs]) if query.include_docs else {}
    start = query.startkey if isinstance(query.startkey, str) else None
    before = 0
    if start is not None:
        edge = col > start if query.descending else col < start
        before = int(db.session.scalar(select(func.count()).select_from(Document).where(live & edge)) or 0)
    return {"total_rows": total, "offset": before + query.skip,
            "rows": [_row(d, query, bodies) for d in docs]}


def _by_keys(database_id: int, total: int, query: AllDocsQuery, reader: Reader | None) -> dict[str, Any]:
    keys = list(query.keys or ())
    docs = find_docs(database_id, keys, reader)
    if query.descending:
        keys.reverse()
    keys = keys[query.skip:]
    if query.limit is not None:
        keys = keys[:query.limit]
    wanted = [docs[k] for k in keys if k in docs and not docs[k].deleted]
    bodies = load_bodies([(d.id, d.winning_rev) for d in wanted]) if query.include_docs else {}
    rows: list[dict[str, Any]] = []
    for key in keys:
        doc = docs.get(key)
        if doc is None:
            rows.append({"key": key, "error": "not_found"})
        elif doc.deleted:
            row: dict[str, Any] = {"id": key, "key": key, "value": {"rev": doc.winning_rev, "deleted": True}}
            if query.include_docs:
                row["doc"] = None
            rows.append(row)
        else:
            rows.append(_row(doc, query, bodies))
    return {"total_rows": total, "offset": query.skip, "rows": rows}
