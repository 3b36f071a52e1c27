"""The audit log: an append-only record of who did what to which document, and when."""
from __future__ import annotations

from sqlalchemy import JSON, Float, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from . import db


class AuditEntry(db.Model):  # type: ignore[name-defined,misc]
    """One action. The application inserts entries and never updates or deletes them."""

    __tablename__ = "audit_entry"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[float] = mapped_column(Float)  # epoch seconds
    actor: Mapped[str] = mapped_column(String(200))  # a user name, or "server" for the worker
    action: Mapped[str] = mapped_column(String(60))  # e.g. "quarantine.discard", "patient.merge"
    db_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    doc_id: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    device_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)  # type: ignore[type-arg]
    __table_args__ = (Index("ix_audit_entry_doc", "db_name", "doc_id"), Index("ix_audit_entry_at", "at"))
