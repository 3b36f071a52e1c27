"""Server-wide state: settings (the stable server uuid) and user accounts."""
from __future__ import annotations

import secrets
import uuid

from flask import current_app
from sqlalchemy import JSON, Boolean, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crypto import hash_password, verify_password

from . import db


class Setting(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "server_setting"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class User(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "server_user"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    roles: Mapped[list] = mapped_column(JSON, default=list)  # type: ignore[type-arg]
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


def get_setting(key: str) -> str | None:
    row = db.session.get(Setting, key)
    return row.value if row else None


def ensure_server_identity() -> str | None:
    """Create the server uuid and the admin account if missing.

    The uuid is stored, not derived per process: PouchDB builds its replication ids from
    it, so a uuid that changed on restart would throw away every device's checkpoints.
    Returns the admin password when this call generated one (so it can be printed once).
    """
    if get_setting("uuid") is None:
        db.session.add(Setting(key="uuid", value=uuid.uuid4().hex))
    wanted = current_app.config.get("WASL_ADMIN_PASSWORD")
    admin = db.session.scalar(db.select(User).where(User.name == "admin"))
    generated = None
    if admin is None:
        generated = None if wanted else secrets.token_urlsafe(12)
        admin = User(name="admin", password_hash=hash_password(wanted or generated), roles=["_admin"])
        db.session.add(admin)
    elif wanted and not verify_password(wanted, admin.password_hash):
        admin.password_hash = hash_password(wanted)
    db.session.commit()
    return generated
