"""Areas (a tree of paths such as ``north/district-3/village-12``) and who is assigned where.

The rules about them (path grammar, which kind sits under which, which assignment fits
which role) live in ``sync.access`` and ``sync.scope``; these tables only hold the facts.
"""
from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
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
