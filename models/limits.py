"""Shared limit counters: failed sign-ins, one row per failure, seen by every server process."""
from __future__ import annotations

from sqlalchemy import Float, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from . import db


class SignInFailure(db.Model):  # type: ignore[name-defined,misc]
    """One failed password check counted against one key (an account name or a client address).

    ``key`` is a hash of the kind and the value, so any name fits and none is stored in clear.
    Rows older than the window are deleted as new failures come in.
    """

    __tablename__ = "signin_failure"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Float)  # epoch seconds
    __table_args__ = (Index("ix_signin_failure_key", "key", "at"), Index("ix_signin_failure_at", "at"))
