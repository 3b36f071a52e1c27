"""Areas (a tree of paths such as ``north/district-3/village-12``) and who is assigned where.

The rules about them (path grammar, which kind sits under which, which assignment fits
which role) live in ``sync.access`` and ``sync.scope``; these tables only hold the facts.

The scope index (``scope_key``, kept by ``sync.scopeindex``) holds each document's access
keys; ``scope_user`` and ``scope_backfill`` let a user's feed catch up when their scope
grows (``sync.scopefeed``).
"""
from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from . import db

AREA_KINDS = ("region", "district", "village", "facility")
ASSIGNMENT_KINDS = ("works_in", "supervises", "clinic")


class Area(db.Model):  # type: ignore[name-defined,misc]
    """One area; its parent is the path without its last segment (None for a root)."""

    __tablename__ = "access_area"
    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    parent_path: Mapped[str | None] = mapped_column(String(200), ForeignKey("access_area.path"), index=True)
    created_at: Mapped[float]  # epoch seconds


class Assignment(db.Model):  # type: ignore[name-defined,misc]
    """A user works in a village, supervises a subtree, or serves at a facility (a clinic)."""

    __tablename__ = "access_assignment"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("server_user.id", ondelete="CASCADE"))
    area_path: Mapped[str] = mapped_column(String(200), ForeignKey("access_area.path"))
    kind: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[float]  # epoch seconds
    __table_args__ = (UniqueConstraint("user_id", "area_path", "kind", name="uq_access_assignment"),
                      Index("ix_access_assignment_area", "area_path"))


class ScopedDatabase(db.Model):  # type: ignore[name-defined,misc]
    """A database whose documents are indexed by access key (the records database).

    Writers (``sync.writes.Batch``) look the flag up inside their write lock, so every
    process keeps the index right once any process has turned it on.
    """

    __tablename__ = "scope_database"
    database_id: Mapped[int] = mapped_column(ForeignKey("couch_database.id", ondelete="CASCADE"), primary_key=True)
    enabled_at: Mapped[float]  # epoch seconds


class ScopeKey(db.Model):  # type: ignore[name-defined,misc]
    """One access key of one document (``sync.scope.doc_keys`` of its winning, or last live, body).

    ``seq`` is the document's latest sequence: every write of a document moves all its
    rows, so a user's feed is an index range scan per key over ``(database_id, key, seq)``.
    """

    __tablename__ = "scope_key"
    id: Mapped[int] = mapped_column(primary_key=True)
    database_id: Mapped[int] = mapped_column(ForeignKey("couch_database.id", ondelete="CASCADE"))
    document_id: Mapped[int] = mapped_column(ForeignKey("couch_document.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(2100))
    seq: Mapped[int]
    __table_args__ = (Index("ix_scope_key_feed", "database_id", "key", "seq"),
                      Index("ix_scope_key_document", "document_id", "key"))


class ScopeUser(db.Model):  # type: ignore[name-defined,misc]
    """The keys a user's feed was last served with, to notice when their scope grows."""

    __tablename__ = "scope_user"
    id: Mapped[int] = mapped_column(primary_key=True)
    database_id: Mapped[int] = mapped_column(ForeignKey("couch_database.id", ondelete="CASCADE"))
    user_name: Mapped[str] = mapped_column(String(200))
    keys: Mapped[str] = mapped_column(Text)  # JSON list, sorted
    changed_at: Mapped[float]  # epoch seconds
    __table_args__ = (UniqueConstraint("database_id", "user_name", name="uq_scope_user"),)


class ScopeBackfill(db.Model):  # type: ignore[name-defined,misc]
    """A document that entered one user's scope when the scope grew, at a new sequence.

    Its own sequence may be older than the user's devices' checkpoints; this row puts it
    back into that user's feed (only theirs) after the checkpoint.
    """

    __tablename__ = "scope_backfill"
    id: Mapped[int] = mapped_column(primary_key=True)
    database_id: Mapped[int] = mapped_column(ForeignKey("couch_database.id", ondelete="CASCADE"))
    user_name: Mapped[str] = mapped_column(String(200))
    document_id: Mapped[int] = mapped_column(ForeignKey("couch_document.id", ondelete="CASCADE"))
    seq: Mapped[int]
    __table_args__ = (Index("ix_scope_backfill_feed", "database_id", "user_name", "seq"),
                      Index("ix_scope_backfill_document", "document_id"))
