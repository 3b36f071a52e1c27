"""The replicated store: databases, documents with their revision trees, revision bodies,
attachment blobs and ``_local`` documents.

One row per document holds its revision tree (JSON, pouchdb-merge format), its winner and
its current update sequence, so the change feed is one indexed range scan over
``(database_id, seq)`` and each document appears once, at its latest change.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from sync import jsoncodec
from sync.treecodec import flatten, unflatten

from . import db


class RevTreeJSON(TypeDecorator[list[Any]]):
    """A revision tree stored as flat JSON rows (sync.treecodec), safe at any depth."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: list[Any] | None, dialect: Dialect) -> str | None:
        return None if value is None else jsoncodec.dumps(flatten(value))

    def process_result_value(self, value: str | None, dialect: Dialect) -> list[Any] | None:
        return None if value is None else unflatten(jsoncodec.loads(value))


class Database(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "couch_database"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    # The last sequence handed out. Writers bump it under this row's lock, which also
    # orders their commits: seq N+1 cannot commit before seq N (DESIGN decision 3).
    update_seq: Mapped[int] = mapped_column(Integer, default=0)
    revs_limit: Mapped[int] = mapped_column(Integer, default=1000)
    doc_count: Mapped[int] = mapped_column(Integer, default=0)
    doc_del_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(default=0.0)


class Document(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "couch_document"
    id: Mapped[int] = mapped_column(primary_key=True)
    database_id: Mapped[int] = mapped_column(ForeignKey("couch_database.id", ondelete="CASCADE"))
    doc_id: Mapped[str] = mapped_column(String(2000))
    rev_tree: Mapped[list[Any]] = mapped_column(RevTreeJSON)
    winning_rev: Mapped[str] = mapped_column(String(300))
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    seq: Mapped[int] = mapped_column(Integer)
    __table_args__ = (UniqueConstraint("database_id", "doc_id"),
                      Index("ix_couch_document_seq", "database_id", "seq"))


class Revision(db.Model):  # type: ignore[name-defined,misc]
    """The body of one revision. Ancestor bodies are kept until compaction (decision 2)."""

    __tablename__ = "couch_revision"
    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("couch_document.id", ondelete="CASCADE"))
    rev: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)  # JSON text, without _id/_rev/_deleted/_revisions
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    __table_args__ = (UniqueConstraint("document_id", "rev"),)


class Attachment(db.Model):  # type: ignore[name-defined,misc]
    """Attachment bytes, content-addressed by our own SHA-256 of the data.

    The digest a sender reports is kept in the revision body and returned verbatim
    (CouchDB's digest is over its gzipped stream, so we could not recompute it), but it
    is never trusted as a key: a lying digest cannot replace another document's bytes.
    """

    __tablename__ = "couch_attachment"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    length: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class LocalDoc(db.Model):  # type: ignore[name-defined,misc]
    """A ``_local`` document (replication checkpoint): no revision tree, never replicated."""

    __tablename__ = "couch_local"
    id: Mapped[int] = mapped_column(primary_key=True)
    database_id: Mapped[int] = mapped_column(ForeignKey("couch_database.id", ondelete="CASCADE"))
    doc_id: Mapped[str] = mapped_column(String(2000))
    rev: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    __table_args__ = (UniqueConstraint("database_id", "doc_id"),)
