"""Device enrolment, credentials and lifecycle (active, retired, revoked).

An admin creates a one-time code for a user; the tablet trades it for a device id and a
bearer token it keeps encrypted in its store. Retiring asks the device to push what it
has not synced and then wipe; revoking (a stolen tablet) refuses the token at once and
tells the device to wipe at its next contact.
"""
from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import select

from models import Device, EnrolmentCode, User, db

from .errors import BadRequest, Forbidden, NotFound

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud over a phone
CODE_LENGTH = 12  # about 59 bits; single use and short-lived
CODE_TTL_SECONDS = 24 * 3600
ACTIONS = {"active": "none", "retired": "push_then_wipe", "revoked": "wipe"}


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


@dataclass(frozen=True)
class DeviceInfo:
    """What a device (or an admin) may know about a device."""

    device_id: str
    user: str
    name: str
    status: str
    enrolled_at: float
    last_seen_at: float | None

    def to_json(self) -> dict[str, object]:
        return {"device_id": self.device_id, "user": self.user, "name": self.name, "status": self.status,
                "action": ACTIONS[self.status], "enrolled_at": self.enrolled_at, "last_seen_at": self.last_seen_at}


def _info(device: Device, user: User) -> DeviceInfo:
    return DeviceInfo(device.id, user.name, device.name, device.status, device.enrolled_at, device.last_seen_at)


def create_code(user_name: str, ttl_seconds: int = CODE_TTL_SECONDS) -> str:
    """A new one-time enrolment code for ``user_name``, grouped in fours for reading aloud."""
    user = db.session.scalar(select(User).where(User.name == user_name))
    if user is None or user.disabled:
        raise NotFound(f"No enabled user named {user_name!r}")
    if ttl_seconds < 60:
        raise BadRequest("An enrolment code must live at least 60 seconds")
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    now = time.time()
    db.session.add(EnrolmentCode(code_hash=_digest(code), user_id=user.id, created_at=now,
                                 expires_at=now + ttl_seconds))
    db.session.commit()
    return "-".join(code[i:i + 4] for i in range(0, CODE_LENGTH, 4))


def enrol(code: str, device_name: str) -> tuple[DeviceInfo, str]:
    """Trade a code for a new device and its bearer token (returned once, stored hashed)."""
    if not isinstance(code, str) or not isinstance(device_name, str) or not device_name.strip():
        raise BadRequest("An enrolment needs a code and a device name")
    row = db.session.scalar(select(EnrolmentCode).where(EnrolmentCode.code_hash == _digest(_normalise_code(code))))
    if row is None or row.used_by is not None or row.expires_at < time.time():
        raise Forbidden("Unknown, used or expired enrolment code")
    user = db.session.get(User, row.user_id)
    if user is None or user.disabled:
        raise Forbidden("Unknown, used or expired enrolment code")
    token = secrets.token_urlsafe(32)
    now = time.time()
    device = Device(id=str(uuid.uuid4()), user_id=user.id, name=device_name.strip()[:200],
                    token_hash=_digest(token), status="active", enrolled_at=now, status_changed_at=now)
    row.used_by = device.id
    db.session.add(device)
    db.session.commit()
    return _info(device, user), token


def device_for_token(token: str) -> tuple[DeviceInfo, User] | None:
    """The device holding ``token`` and its user, or None for an unknown token."""
    device = db.session.scalar(select(Device).where(Device.token_hash == _digest(token)))
    if device is None:
        return None
    user = db.session.get(User, device.user_id)
    if user is None:
        return None
    return _info(device, user), user


def touch(device_id: str) -> None:
    """Record that the device was just heard from (for supervisors' "last sync")."""
    device = db.session.get(Device, device_id)
    if device is not None:
        device.last_seen_at = time.time()
        db.session.commit()


def set_status(device_id: str, status: str) -> DeviceInfo:
    """Retire or revoke a device; revocation is final."""
    if status not in ("retired", "revoked"):
        raise BadRequest("A device can be retired or revoked")
    device = db.session.get(Device, device_id)
    if device is None:
        raise NotFound("No such device")
    if device.status == "revoked":
        raise BadRequest("This device is already revoked")
    device.status = status
    device.status_changed_at = time.time()
    db.session.commit()
    user = db.session.get(User, device.user_id)
    return _info(device, user)  # type: ignore[arg-type]


def list_devices() -> list[DeviceInfo]:
    rows = db.session.execute(select(Device, User).join(User, Device.user_id == User.id)
                              .order_by(Device.enrolled_at))
    return [_info(device, user) for device, user in rows]
