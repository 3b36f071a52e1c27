"""Who is calling: Basic auth, or CouchDB's ``AuthSession`` cookie from ``POST /_session``.

Argon2id makes a password check cost tens of milliseconds, too much for every request of
a replication; a verified (name, password) pair is remembered for a minute, keyed by a
keyed hash so the cache never holds a password. A disabled account or a changed password
therefore takes effect within ``CACHE_SECONDS``.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time
from dataclasses import dataclass

from flask import current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select

from crypto import verify_password
from models import User, db
from sync.devices import device_for_token, touch
from sync.errors import Unauthorized

REVOKED_REASON = "This device has been revoked; wipe its copy."

COOKIE = "AuthSession"
SESSION_SECONDS = 12 * 3600
CACHE_SECONDS = 60

_verified: dict[str, tuple[UserCtx, float]] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class UserCtx:
    name: str
    roles: tuple[str, ...]
    device_id: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "roles": list(self.roles)}


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="couch-session")


def check_password(name: str, password: str) -> UserCtx | None:
    """Return the user if ``name``/``password`` are right and the account is enabled."""
    key = hmac.new(current_app.config["SECRET_KEY"].encode(), f"{name}\0{password}".encode(),
                   hashlib.sha256).hexdigest()
    with _lock:
        hit = _verified.get(key)
    if hit is not None and hit[1] > time.monotonic():
        return hit[0]
    user = db.session.scalar(select(User).where(User.name == name))
    if user is None or user.disabled or not verify_password(password, user.password_hash):
        return None
    ctx = UserCtx(user.name, tuple(user.roles or ()))
    with _lock:
        if len(_verified) > 10000:
            _verified.clear()
        _verified[key] = (ctx, time.monotonic() + CACHE_SECONDS)
    return ctx


def session_cookie(user: UserCtx) -> str:
    return _serializer().dumps(user.name)


def _from_cookie() -> UserCtx | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        name = _serializer().loads(token, max_age=SESSION_SECONDS)
    except BadSignature:
        return None
    user = db.session.scalar(select(User).where(User.name == name))
    if user is None or user.disabled:
        return None
    return UserCtx(user.name, tuple(user.roles or ()))


def _from_basic() -> UserCtx | None:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, sep, password = decoded.partition(":")
    return check_password(name, password) if sep else None


SEEN_INTERVAL = 60.0  # seconds between "last seen" writes for one device


def _from_bearer() -> UserCtx | None:
    """A device's bearer token; a revoked device is refused at once and told to wipe."""
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    found = device_for_token(header[7:].strip())
    if found is None:
        return None
    info, user = found
    if info.status == "revoked":
        raise Unauthorized(REVOKED_REASON)
    if user.disabled:
        return None
    if info.last_seen_at is None or time.time() - info.last_seen_at > SEEN_INTERVAL:
        touch(info.device_id)
    return UserCtx(user.name, tuple(user.roles or ()), info.device_id)


def current_user() -> UserCtx | None:
    """The caller: a device's bearer token, Basic auth (as CouchDB), or the session cookie."""
    return _from_bearer() or _from_basic() or _from_cookie()
