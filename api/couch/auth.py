"""Who is calling: Basic auth, or CouchDB's ``AuthSession`` cookie from ``POST /_session``.

Argon2id makes a password check cost tens of milliseconds, too much for every request of
a replication; a verified (name, password) pair is remembered for a minute, keyed by a
keyed hash so the cache never holds a password. A disabled account or a changed password
therefore takes effect within ``CACHE_SECONDS``.

Sign-in throttling: after ``WASL_SIGNIN_MAX_FAILURES`` (5) failed checks for one account
name, or from one client address, within ``WASL_SIGNIN_WINDOW_SECONDS`` (15 minutes),
every further check for that name or from that address gets 429 ``too_many_requests``
with ``Retry-After``, a right password included, until the window has passed. The
counter and the cache are per app, in this process's memory (``api.security``).

Audit: each real verification is logged, ``auth.sign_in`` or ``auth.sign_in_failed``
(never the password); a cache hit is not a new sign-in, so a replication's Basic-auth
requests add at most one entry a minute.

Devices: an enrolled tablet sends its bearer token (``Authorization: Bearer <token>``),
or, where a client can only put credentials in the URL (a PouchDB app), Basic auth with
the name ``_device`` and the token as password. No account name starts with ``_``.
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

from crypto import hash_password, verify_password
from models import User, db
from sync import audit
from sync.devices import device_for_token, touch
from sync.errors import Unauthorized

from ..security import TooManyRequests, failures

REVOKED_REASON = "This device has been revoked; wipe its copy."

COOKIE = "AuthSession"
SESSION_SECONDS = 12 * 3600
CACHE_SECONDS = 60

CACHE_EXTENSION = "wasl.verified_passwords"
_lock = threading.Lock()
_dummy_hash: list[str] = []  # hashed once, checked for unknown names so they cost the same


@dataclass(frozen=True)
class UserCtx:
    name: str
    roles: tuple[str, ...]
    device_id: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "roles": list(self.roles)}


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="couch-session")


def _verified() -> dict[str, tuple[UserCtx, float]]:
    return current_app.extensions.setdefault(CACHE_EXTENSION, {})  # type: ignore[no-any-return]


def _find_user(name: str, password: str) -> tuple[User | None, str | None]:
    """The account and why the check failed (None: it passed)."""
    # A name no column can hold (or one PostgreSQL refuses) cannot exist: skip the query.
    user = None if len(name) > 200 or "\0" in name else db.session.scalar(select(User).where(User.name == name))
    if user is None:
        if not _dummy_hash:
            _dummy_hash.append(hash_password("not a password"))
        verify_password(password, _dummy_hash[0])  # as slow as a real check: names do not leak
        return None, "unknown_user"
    if not verify_password(password, user.password_hash):
        return user, "wrong_password"
    return user, "disabled" if user.disabled else None


def _audit(actor: str, action: str, **detail: object) -> None:
    """Log a sign-in event in its own short transaction."""
    db.session.commit()  # end the read transaction: on SQLite a reader cannot start to write
    audit.record(actor.replace("\0", "")[:200], action, **detail)
    db.session.commit()


def check_password(name: str, password: str, *, via: str = "session") -> UserCtx | None:
    """Return the user if ``name``/``password`` are right and the account is enabled.

    :raise 429: too many failures for ``name`` or from the client's address (``TooManyRequests``).
    """
    address = request.remote_addr or "-"
    keys = (("name", name), ("address", address))
    key = hmac.new(current_app.config["SECRET_KEY"].encode(), f"{name}\0{password}".encode(),
                   hashlib.sha256).hexdigest()
    cache = _verified()
    with _lock:
        hit = cache.get(key)
    # A password verified within the minute is proof enough: replication sends it on every
    # request, and the failure count is shared (a database read), so it is asked only when
    # the password has to be checked again.
    if hit is not None and hit[1] > time.monotonic():
        return hit[0]
    wait = failures().wait(*keys)
    if wait > 0:
        raise TooManyRequests(wait)
    user, failure = _find_user(name, password)
    if user is None or failure is not None:
        locked = failures().fail(*keys)
        _audit(name, "auth.sign_in_failed", via=via, address=address, reason=failure, locked=locked)
        return None
    failures().forget(("name", name))
    ctx = UserCtx(user.name, tuple(user.roles or ()))
    with _lock:
        if len(cache) > 10000:
            cache.clear()
        cache[key] = (ctx, time.monotonic() + CACHE_SECONDS)
    _audit(ctx.name, "auth.sign_in", via=via, address=address)
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
    if name == DEVICE_NAME:
        return _device_user(password)
    return check_password(name, password, via="basic") if sep else None


SEEN_INTERVAL = 60.0  # seconds between "last seen" writes for one device
DEVICE_NAME = "_device"  # the Basic-auth name that carries a device token as its password


def _from_bearer() -> UserCtx | None:
    """A device's bearer token."""
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    return _device_user(header[7:].strip())


def _device_user(token: str) -> UserCtx | None:
    """The user a device token signs in; a revoked device is refused at once and told to wipe."""
    found = device_for_token(token) if token else None
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


CALLER = "wasl.caller"  # the request environ key of the caller, once worked out


def current_user() -> UserCtx | None:
    """The caller: a device's bearer token, Basic auth (as CouchDB), or the session cookie."""
    # Worked out once per request: several layers ask, and each wrong Basic password
    # checked again would count as another failed sign-in (and cost another Argon2 check).
    # Kept in the request's environ, not in ``g``: an app context (and so ``g``) may outlive
    # one request, as when a test issues requests inside ``app.app_context()``.
    environ = request.environ
    if CALLER not in environ:
        environ[CALLER] = _from_bearer() or _from_basic() or _from_cookie()
    caller: UserCtx | None = environ[CALLER]
    return caller
