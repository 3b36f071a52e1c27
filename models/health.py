"""The central records: a projection of the records database's documents (DESIGN decision 7).

Each table holds one row per document, keyed by (``db_name``, ``doc_id``), with the ``rev``
it was projected from. Only the worker (sync.records.worker) writes these tables, and only
together with its checkpoint, so they always reflect the documents up to that checkpoint.
There is deliberately no autoincrement id: every column is a function of the documents,
so a rebuild gives the same rows, column for column. Times are UTC text of fixed width
(``2026-11-20T06:15:00.000Z``, sortable as text), dates ISO dates.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from sync.records.project import AREA, ID_BYTES, SHORT

from . import db

TIME = 24  # len("2026-11-20T06:15:00.000Z")
DATE = 10


class _Record:
    """Columns every central table has."""

    db_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    doc_id: Mapped[str] = mapped_column(String(ID_BYTES), primary_key=True)
    rev: Mapped[str] = mapped_column(String(300))  # the winning revision this row was projected from
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


def _id() -> Mapped[str | None]:
    return mapped_column(String(ID_BYTES), nullable=True)


def _short() -> Mapped[str | None]:
    return mapped_column(String(SHORT), nullable=True)


def _area() -> Mapped[str | None]:
    return mapped_column(String(AREA), nullable=True)


def _time() -> Mapped[str | None]:
    return mapped_column(String(TIME), nullable=True)


class Household(_Record, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "health_household"
    area: Mapped[str | None] = _area()
    name: Mapped[str | None] = mapped_column(Text, nullable=True)
    landmark: Mapped[str | None] = mapped_column(Text, nullable=True)
    gps_lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    gps_lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    head_patient_id: Mapped[str | None] = _id()
    updated_at: Mapped[str | None] = _time()
    __table_args__ = (Index("ix_health_household_area", "db_name", "area"),)


class Patient(_Record, db.Model):  # type: ignore[name-defined,misc]
    """A patient as its document says, plus fields derived from its visits and referrals."""

    __tablename__ = "health_patient"
    area: Mapped[str | None] = _area()
    household_id: Mapped[str | None] = _id()
    given_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    family_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    sex: Mapped[str | None] = _short()
    birth_date: Mapped[str | None] = mapped_column(String(DATE), nullable=True)
    estimated_age_years: Mapped[float | None] = mapped_column(Float, nullable=True)
    phone: Mapped[str | None] = _short()
    national_id: Mapped[str | None] = _short()
    share_with_partners: Mapped[bool] = mapped_column(Boolean, default=False)
    chronic_conditions: Mapped[list[str]] = mapped_column(JSON, default=list)
    merged_into: Mapped[str | None] = _id()  # a redirect: this patient's records count for that one
    updated_at: Mapped[str | None] = _time()
    # Derived, recomputed from health_visit and health_referral whenever they change.
    visit_count: Mapped[int] = mapped_column(Integer, default=0)
    last_visit_at: Mapped[str | None] = _time()
    latest_observations: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    risk_flags: Mapped[list[str]] = mapped_column(JSON, default=list)  # of the latest visit
    referral_needed: Mapped[bool] = mapped_column(Boolean, default=False)
    # On SQLite the area index also covers the eligible population of a campaign's progress
    # (sync.records.progress), so it reads no patient row. PostgreSQL hash-joins whole tables
    # there instead, and could not hold such wide entries for the longest values (a B-tree
    # entry is at most ~2.7 kB).
    __table_args__ = (Index("ix_health_patient_area", "db_name", "area").ddl_if(dialect="postgresql"),
                      Index("ix_health_patient_area_cover", "db_name", "area", "deleted", "merged_into", "sex",
                            "birth_date", "estimated_age_years").ddl_if(dialect="sqlite"),
                      Index("ix_health_patient_household", "db_name", "household_id"))


class Visit(_Record, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "health_visit"
    patient_doc_id: Mapped[str | None] = _id()  # the patient the visit names
    patient_id: Mapped[str | None] = _id()  # the patient it counts for, after merged_into redirects
    chw: Mapped[str | None] = _short()
    area: Mapped[str | None] = _area()
    campaign_id: Mapped[str | None] = _id()
    household_id: Mapped[str | None] = _id()
    kind: Mapped[str | None] = _short()
    visited_at: Mapped[str | None] = _time()
    observations: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    risk_flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    photo_count: Mapped[int] = mapped_column(Integer, default=0)
    # A campaign threshold flag (``campaign:<field>``) is among risk_flags: a campaign's positivity
    # is counted without reading the JSON of each visit.
    campaign_positive: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Copied from the central row of patient_id (None without one) whenever either changes, so a
    # campaign's progress groups its visits by sex and age band without joining the patients.
    patient_sex: Mapped[str | None] = _short()
    patient_birth_date: Mapped[str | None] = mapped_column(String(DATE), nullable=True)
    patient_estimated_age_years: Mapped[float | None] = mapped_column(Float, nullable=True)
    __table_args__ = (Index("ix_health_visit_patient", "db_name", "patient_id", "visited_at"),
                      Index("ix_health_visit_patient_doc", "db_name", "patient_doc_id"),
                      Index("ix_health_visit_chw", "db_name", "chw", "visited_at"),
                      Index("ix_health_visit_area", "db_name", "area", "visited_at"),
                      Index("ix_health_visit_campaign", "db_name", "campaign_id", "visited_at"),
                      # SQLite: what a campaign's progress reads, in the order it groups by, so even a campaign
                      # holding most visits reads no visit row (PostgreSQL: see health_patient).
                      Index("ix_health_visit_campaign_cover", "db_name", "campaign_id", "deleted", "area", "chw",
                            "patient_sex", "patient_birth_date", "patient_estimated_age_years", "campaign_positive",
                            "visited_at").ddl_if(dialect="sqlite"),
                      # The visit log's newest-first page: without it every visit in reach is sorted.
                      Index("ix_health_visit_time", "db_name", "visited_at"))


class Referral(_Record, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "health_referral"
    patient_doc_id: Mapped[str | None] = _id()
    patient_id: Mapped[str | None] = _id()  # after merged_into redirects, as for visits
    visit_id: Mapped[str | None] = _id()
    from_chw: Mapped[str | None] = _short()
    to_facility: Mapped[str | None] = _short()
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    urgency: Mapped[str | None] = _short()
    status: Mapped[str | None] = _short()
    created_at: Mapped[str | None] = _time()
    updated_at: Mapped[str | None] = _time()
    area: Mapped[str | None] = _area()
    __table_args__ = (Index("ix_health_referral_patient", "db_name", "patient_id"),
                      Index("ix_health_referral_patient_doc", "db_name", "patient_doc_id"),
                      Index("ix_health_referral_facility", "db_name", "to_facility", "status"),
                      Index("ix_health_referral_area", "db_name", "area", "created_at"),
                      Index("ix_health_referral_visit", "db_name", "visit_id"))  # referrals made per campaign visit


class Campaign(_Record, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "health_campaign"
    name: Mapped[str | None] = mapped_column(Text, nullable=True)
    condition: Mapped[str | None] = mapped_column(Text, nullable=True)
    start_date: Mapped[str | None] = mapped_column(String(DATE), nullable=True)
    end_date: Mapped[str | None] = mapped_column(String(DATE), nullable=True)
    areas: Mapped[list[str]] = mapped_column(JSON, default=list)
    fields: Mapped[list[Any]] = mapped_column(JSON, default=list)  # the thresholds, as the document has them
    eligibility: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    targets: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Review(_Record, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "health_review"
    visit_id: Mapped[str | None] = _id()
    chw: Mapped[str | None] = _short()
    state: Mapped[str | None] = _short()
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    reviewer: Mapped[str | None] = _short()
    reviewed_at: Mapped[str | None] = _time()
    __table_args__ = (Index("ix_health_review_visit", "db_name", "visit_id"),
                      Index("ix_health_review_chw", "db_name", "chw", "reviewed_at"))


class WorkerCheckpoint(db.Model):  # type: ignore[name-defined,misc]
    """How far the worker has projected a database's change feed.

    ``generation`` grows at each rebuild, so a batch prepared against the old tables can
    never commit onto the new ones; ``database_created_at`` notices a database that was
    deleted and created again under the same name.
    """

    __tablename__ = "health_checkpoint"
    db_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    database_created_at: Mapped[float] = mapped_column(Float, default=0.0)


RECORD_MODELS: dict[str, Any] = {"household": Household, "patient": Patient, "visit": Visit,
                                 "referral": Referral, "campaign": Campaign, "review": Review}
