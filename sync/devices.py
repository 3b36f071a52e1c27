"""Device enrolment, credentials and lifecycle (active, retired, revoked).

An admin creates a one-time code for a user; the tablet trades it for a device id and a
bearer token it keeps encrypted in its store. Retiring asks the device to push what it
has not synced and then wipe; revoking (a stolen tablet) refuses the token at once and
tells the device to wipe at its next contact.

Held documents (the drop protocol, docs/access.md): a device reports the ids it holds and
how many local edits wait to be pushed; ``report_held`` answers which of them the user may
no longer see (they exist on the server, outside the scope) and records the report, so
admins and supervisors see what each device still holds.
"""
from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import select

from models import Device, EnrolmentCode, User, db
from models.access import Assignment
from models.device import HeldReport

from .errors import BadRequest, Forbidden, NotFound
from .rows import docs_by_ids
from .scopefeed import Reader, visible
from .store import get_database

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud over a phone
CODE_LENGTH = 12  # about 59 bits; single use and short-lived
CODE_TTL_SECONDS = 24 * 3600
ACTIONS = {"active": "none", "retired": "push_then_wipe", "revoked": "wipe"}
MAX_HELD_IDS = 200_000  # ids in one held report


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


@dataclass(frozen=True)
class HeldInfo:
    """A device's latest held report for one database."""

    device_id: str
    db_name: str
    reported_at: float
    held: int
    out_of_scope: int
    pending: int

    def to_json(self) -> dict[str, object]:
        return {"db": self.db_name, "reported_at": self.reported_at, "held": self.held,
                "out_of_scope": self.out_of_scope, "pending": self.pending}


def check_held(doc_ids: object, pending: object) -> tuple[list[str], int]:
    """Validate a held report's ``doc_ids`` and ``pending``.

    :raise 400: not a list of string ids, too many of them, or ``pending`` not a count.
    """
    if not isinstance(doc_ids, list) or not all(isinstance(i, str) for i in doc_ids):
        raise BadRequest("`doc_ids` must be a list of document ids")
    if len(doc_ids) > MAX_HELD_IDS:
        raise BadRequest(f"At most {MAX_HELD_IDS} ids in one report")
    if not isinstance(pending, int) or isinstance(pending, bool) or pending < 0:
        raise BadRequest("`pending` must be the number of local edits not pushed yet")
    return list(dict.fromkeys(doc_ids)), pending


def report_held(device_id: str, db_name: str, doc_ids: list[str], pending: int, reader: Reader | None) -> list[str]:
    """Record what a device holds; return the held ids the reader may no longer see (sorted)."""
    database = get_database(db_name)
    docs = docs_by_ids(database.id, doc_ids)
    seen = visible(reader, [d.id for d in docs.values()])
    drop = sorted(doc_id for doc_id, d in docs.items() if d.id not in seen)
    db.session.commit()  # write in a fresh transaction (see sync.store.write_lock)
    row = db.session.scalar(select(HeldReport).where(HeldReport.device_id == device_id,
                                                     HeldReport.db_name == db_name))
    if row is None:
        row = HeldReport(device_id=device_id, db_name=db_name)
        db.session.add(row)
    row.reported_at, row.held, row.out_of_scope, row.pending = time.time(), len(doc_ids), len(drop), pending
    db.session.commit()
    return drop


def held_reports(device_ids: list[str] | None = None) -> dict[str, list[HeldInfo]]:
    """The latest held reports, by device (every device, or the given ones)."""
    query = select(HeldReport).order_by(HeldReport.device_id, HeldReport.db_name)
    if device_ids is not None:
        query = query.where(HeldReport.device_id.in_(device_ids))
    found: dict[str, list[HeldInfo]] = {}
    for r in db.session.scalars(query):
        found.setdefault(r.device_id, []).append(
            HeldInfo(r.device_id, r.db_name, r.reported_at, r.held, r.out_of_scope, r.pending))
    return found


def team_devices(supervisor: str) -> list[tuple[DeviceInfo, list[HeldInfo]]]:
    """The devices of the CHWs working in a supervisor's subtrees, each with its held reports."""
    user = db.session.scalar(select(User).where(User.name == supervisor))
    if user is None or user.disabled or "supervisor" not in (user.roles or ()):
        raise Forbidden("Only supervisors see their team's devices")
    subtrees = list(db.session.scalars(select(Assignment.area_path).where(
        Assignment.user_id == user.id, Assignment.kind == "supervises")))
    villages = db.session.execute(select(Assignment.user_id, Assignment.area_path).where(
        Assignment.kind == "works_in"))
    team = {uid for uid, path in villages
            if any(path == s or path.startswith(s + "/") for s in subtrees)}
    devices = [d for d in list_devices() if d.user in _names(team)]
    reports = held_reports([d.device_id for d in devices])
    return [(d, reports.get(d.device_id, [])) for d in devices]


def _names(user_ids: set[int]) -> set[str]:
    if not user_ids:
        return set()
    return set(db.session.scalars(select(User.name).where(User.id.in_(user_ids))))
