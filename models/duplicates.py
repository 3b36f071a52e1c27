"""Duplicate patients: blocking keys, scored candidate pairs, and merges with what undoes them.

The patient documents stay the truth (sync.records.duplicates reads their winning
revisions); these tables are an index of them plus the supervisors' decisions.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, CheckConstraint, Float, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from . import db

CANDIDATE_STATES = ("open", "merged", "dismissed")
MERGE_STATES = ("merged", "undone")


class PatientKey(db.Model):  # type: ignore[name-defined,misc]
    """One blocking key of a live patient: patients sharing a key are compared."""

    __tablename__ = "record_patient_key"
    id: Mapped[int] = mapped_column(primary_key=True)
    db_name: Mapped[str] = mapped_column(String(255))
    doc_id: Mapped[str] = mapped_column(String(2000))
    key: Mapped[str] = mapped_column(String(200))
    __table_args__ = (Index("ix_record_patient_key_key", "db_name", "key"),
                      Index("ix_record_patient_key_doc", "db_name", "doc_id"))


class DuplicateCandidate(db.Model):  # type: ignore[name-defined,misc]
    """A pair of patients that may be one person, and what a supervisor decided."""

    __tablename__ = "record_duplicate"
    id: Mapped[int] = mapped_column(primary_key=True)
    db_name: Mapped[str] = mapped_column(String(255))
    patient_a: Mapped[str] = mapped_column(String(2000))  # patient_a < patient_b: one row per pair
    patient_b: Mapped[str] = mapped_column(String(2000))
    score: Mapped[float] = mapped_column(Float)
    reasons: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # component -> contribution
    state: Mapped[str] = mapped_column(String(10), default="open")
    decided_by: Mapped[str | None] = mapped_column(String(200), default=None)
    decided_at: Mapped[float | None] = mapped_column(Float, default=None)  # epoch seconds
    __table_args__ = (UniqueConstraint("db_name", "patient_a", "patient_b"),
                      CheckConstraint("patient_a < patient_b", name="ck_record_duplicate_order"),
                      CheckConstraint("state IN ('open', 'merged', 'dismissed')", name="ck_record_duplicate_state"),
                      Index("ix_record_duplicate_list", "db_name", "state", "score"),
                      Index("ix_record_duplicate_b", "db_name", "patient_b"))


class PatientMerge(db.Model):  # type: ignore[name-defined,misc]
    """One merge of ``merged_id`` into ``survivor_id``: the revisions it wrote, and what it filled."""

    __tablename__ = "record_patient_merge"
    id: Mapped[int] = mapped_column(primary_key=True)
    db_name: Mapped[str] = mapped_column(String(255))
    survivor_id: Mapped[str] = mapped_column(String(2000))
    merged_id: Mapped[str] = mapped_column(String(2000))
    survivor_rev_before: Mapped[str] = mapped_column(String(300))
    survivor_rev_after: Mapped[str] = mapped_column(String(300))
    merged_rev_before: Mapped[str] = mapped_column(String(300))
    merged_rev_after: Mapped[str] = mapped_column(String(300))
    # field -> {"to": value filled in, "from": the survivor's empty value, absent if it had none}
    filled_fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(10), default="merged")
    by: Mapped[str] = mapped_column(String(200))
    at: Mapped[float] = mapped_column(Float)  # epoch seconds
    undone_by: Mapped[str | None] = mapped_column(String(200), default=None)
    undone_at: Mapped[float | None] = mapped_column(Float, default=None)
    __table_args__ = (CheckConstraint("state IN ('merged', 'undone')", name="ck_record_patient_merge_state"),
                      Index("ix_record_patient_merge_docs", "db_name", "survivor_id", "merged_id"))
