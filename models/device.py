"""Enrolled tablets and the one-time codes that enrol them.

Codes and device tokens are stored as SHA-256 digests: both are random and long enough
that a fast hash is safe, and a stolen database yields no usable credential.
"""
from __future__ import annotations

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from . import db

DEVICE_STATUSES = ("active", "retired", "revoked")


class EnrolmentCode(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "device_enrolment_code"
    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("server_user.id", ondelete="CASCADE"))
    created_at: Mapped[float]
    expires_at: Mapped[float]
    used_by: Mapped[str | None] = mapped_column(String(36), default=None)  # the device it enrolled


class Device(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "device"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # a random UUID
    user_id: Mapped[int] = mapped_column(ForeignKey("server_user.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(10), default="active")
    enrolled_at: Mapped[float]
    status_changed_at: Mapped[float]
    last_seen_at: Mapped[float | None] = mapped_column(default=None)


class HeldReport(db.Model):  # type: ignore[name-defined,misc]
    """What a device last said it holds of a database, and how much of it left its scope."""

    __tablename__ = "device_held"
    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("device.id", ondelete="CASCADE"))
    db_name: Mapped[str] = mapped_column(String(255))
    reported_at: Mapped[float]  # epoch seconds
    held: Mapped[int]  # documents the device holds (before dropping)
    out_of_scope: Mapped[int]  # of those, documents the user may no longer see (told to drop)
    pending: Mapped[int]  # local edits the device had not pushed yet
    __table_args__ = (UniqueConstraint("device_id", "db_name", name="uq_device_held"),)
