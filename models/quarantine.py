"""The quarantine: revisions the records database refused, kept with their reason (DESIGN decision 5).

A refused revision never reaches the document tables. Its row keeps the document as sent
(attachment bytes moved to the attachment store, so ``body`` holds their metadata and
``sha256``), why it was refused, who sent it, and what a supervisor later decided.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sync import jsoncodec

from . import db

STATES = ("held", "released", "discarded")


class QuarantinedRevision(db.Model):  # type: ignore[name-defined,misc]
    """One refused revision of one document; sent again, it is the same row (``attempts`` grows)."""

    __tablename__ = "record_quarantine"
    id: Mapped[int] = mapped_column(primary_key=True)
    db_name: Mapped[str] = mapped_column(String(255))
    doc_id: Mapped[str] = mapped_column(String(2000))
    # The refused revision; for an edit (new_edits=true), the rev it would have had.
    rev: Mapped[str] = mapped_column(String(300))
    parent_rev: Mapped[str | None] = mapped_column(String(300), nullable=True)  # edits only
    replicated: Mapped[bool] = mapped_column(Boolean, default=False)  # sent with new_edits=false
    body: Mapped[str] = mapped_column(Text)  # JSON text of the document as sent
    reason: Mapped[str] = mapped_column(Text)
    fields: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"dotted.path": [messages]}
    actor: Mapped[str] = mapped_column(String(200))
    device_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    received_at: Mapped[float] = mapped_column(Float)  # epoch seconds
    last_seen_at: Mapped[float] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(String(16), default="held")  # one of STATES
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    decision_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    released_rev: Mapped[str | None] = mapped_column(String(300), nullable=True)  # the corrected revision
    __table_args__ = (UniqueConstraint("db_name", "doc_id", "rev", name="uq_record_quarantine_rev"),
                      Index("ix_record_quarantine_state", "db_name", "state", "received_at"))

    @property
    def document(self) -> dict[str, Any]:
        """The refused document as sent (a fresh copy on every call)."""
        doc: dict[str, Any] = jsoncodec.loads(self.body)
        return doc
