"""Conflict resolutions of shared records, and the field conflicts a supervisor settles.

A ``Resolution`` is written with every merge revision the server makes (sync.records.resolve);
its ``merged_revs`` are the merge's parents, read back to find the common ancestor of the
next conflict on the same document. A ``ConflictRecord`` is one field the merged leaves
changed differently (or a deleted branch beside an edited one), open until a supervisor
keeps the server's pick or chooses another leaf's value.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from . import db

KINDS = ("field", "delete_vs_edit")
STATES = ("open", "kept", "changed")


class ConflictRecord(db.Model):  # type: ignore[name-defined,misc]
    """One hard conflict: every leaf's value, the rev the server picked, and the decision."""

    __tablename__ = "record_conflict"
    id: Mapped[int] = mapped_column(primary_key=True)
    db_name: Mapped[str] = mapped_column(String(255))
    doc_id: Mapped[str] = mapped_column(String(2000))
    field: Mapped[str] = mapped_column(String(1000))  # dotted path for people; "" for delete_vs_edit
    path: Mapped[list[str]] = mapped_column(JSON, default=list)  # the keys, exact even if a key holds a dot
    kind: Mapped[str] = mapped_column(String(20))  # "field" | "delete_vs_edit"
    # [{"rev", "value", "updated_at", "updated_by"} (+ "removed" or "deleted": true)], one per leaf
    values: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    picked_rev: Mapped[str] = mapped_column(String(300))
    resolution_rev: Mapped[str | None] = mapped_column(String(300), nullable=True)  # the merge revision
    state: Mapped[str] = mapped_column(String(10), default="open")  # "open" | "kept" | "changed"
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # epoch seconds
    created_at: Mapped[float] = mapped_column(Float)  # epoch seconds
    __table_args__ = (Index("ix_record_conflict_state", "db_name", "state", "id"),
                      Index("ix_record_conflict_doc", "db_name", "doc_id"))


class Resolution(db.Model):  # type: ignore[name-defined,misc]
    """A merge revision written by the server, with the leaves it merged and the tombstones it wrote."""

    __tablename__ = "record_resolution"
    id: Mapped[int] = mapped_column(primary_key=True)
    db_name: Mapped[str] = mapped_column(String(255))
    doc_id: Mapped[str] = mapped_column(String(2000))
    merge_rev: Mapped[str] = mapped_column(String(300))
    merged_revs: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"leaves": [...], "tombstones": [...]}
    ancestor_rev: Mapped[str | None] = mapped_column(String(300), nullable=True)
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Float)  # epoch seconds
    __table_args__ = (UniqueConstraint("db_name", "doc_id", "merge_rev"),)
