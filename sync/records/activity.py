"""CHW activity for supervisors: last sync per device, documents waiting, refused writes, visits per day.

The team is every enabled user with the ``chw`` role who works in a village the reader sees
(an admin sees every CHW). Per device: ``last_seen_at`` (the last request it authenticated,
``sync.devices.touch``), its status, and its latest held report for the records database
(``device_held``: documents held, and ``pending``, local edits it had not pushed when it
reported). Per CHW: their writes refused into the quarantine (by ``actor``), and their
visits per UTC day from the central table, counted only where the reader sees the visit.
A device is *stale* when it is active and was not heard from for ``stale_days`` days.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, func, select

from models import Device, User, db
from models.access import Assignment
from models.device import HeldReport
from models.health import Visit
from models.quarantine import QuarantinedRevision

from .visibility import Visibility, area_clause

DAY = 86400.0


@dataclass
class DeviceActivity:
    """One tablet of a CHW."""

    device_id: str
    name: str
    status: str
    last_seen_at: float | None
    stale: bool
    held: int | None = None  # documents it reported holding
    pending: int | None = None  # local edits it reported not pushed yet
    reported_at: float | None = None


@dataclass
class ChwActivity:
    """One CHW: devices, refused writes and visits per day (oldest day first)."""

    name: str
    villages: list[str]
    devices: list[DeviceActivity] = field(default_factory=list)
    refused_held: int = 0  # refused writes still in the quarantine
    refused_total: int = 0
    visits_per_day: dict[str, int] = field(default_factory=dict)

    @property
    def last_sync(self) -> float | None:
        """The last time any of their devices was heard from."""
        seen = [d.last_seen_at for d in self.devices if d.last_seen_at is not None]
        return max(seen) if seen else None

    @property
    def pending(self) -> int | None:
        """Documents waiting on their devices, as last reported (None: never reported)."""
        known = [d.pending for d in self.devices if d.pending is not None]
        return sum(known) if known else None

    @property
    def stale(self) -> bool:
        """Any of their active devices was not heard from for the stale period."""
        return any(d.stale for d in self.devices)

    def to_json(self) -> dict[str, Any]:
        """As the REST API sends it."""
        return {"name": self.name, "villages": self.villages, "last_sync": self.last_sync, "pending": self.pending,
                "stale": self.stale, "refused_held": self.refused_held, "refused_total": self.refused_total,
                "visits_per_day": self.visits_per_day, "visits_total": sum(self.visits_per_day.values()),
                "devices": [vars(d) for d in self.devices]}


def day_labels(days: int, now: float) -> list[str]:
    """The last ``days`` UTC dates up to today, oldest first."""
    today = datetime.fromtimestamp(now, timezone.utc).date()
    return [(today - timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]


def team(seen: Visibility) -> dict[str, ChwActivity]:
    """The CHWs the reader sees, by name, with the villages they work in that the reader sees."""
    query = (select(User.name, User.roles, Assignment.area_path)
             .outerjoin(Assignment, and_(Assignment.user_id == User.id, Assignment.kind == "works_in"))
             .where(User.disabled.is_(False), area_clause(Assignment.area_path, seen)))
    found: dict[str, ChwActivity] = {}
    for name, roles, village in db.session.execute(query):
        if "chw" not in (roles or ()):
            continue
        chw = found.setdefault(name, ChwActivity(name, []))
        if village is not None:
            chw.villages.append(village)
    for chw in found.values():
        chw.villages.sort()
    return dict(sorted(found.items()))


def team_activity(db_name: str, seen: Visibility, *, days: int = 14, stale_days: int = 3,
                  now: float | None = None) -> list[ChwActivity]:
    """Activity of each CHW of the reader's team, by name."""
    now = time.time() if now is None else now
    chws = team(seen)
    names = list(chws)
    if not names:
        return []
    _add_devices(db_name, chws, now - stale_days * DAY)
    refused = select(QuarantinedRevision.actor, QuarantinedRevision.state, func.count()).where(
        QuarantinedRevision.db_name == db_name, QuarantinedRevision.actor.in_(names)).group_by(
        QuarantinedRevision.actor, QuarantinedRevision.state)
    for actor, state, count in db.session.execute(refused):
        chws[actor].refused_total += count
        if state == "held":
            chws[actor].refused_held += count
    labels = day_labels(days, now)
    for chw in chws.values():
        chw.visits_per_day = dict.fromkeys(labels, 0)
    day = func.substr(Visit.visited_at, 1, 10)
    per_day = (select(Visit.chw, day, func.count()).where(
        Visit.db_name == db_name, Visit.chw.in_(names), Visit.visited_at >= f"{labels[0]}T00:00:00.000Z",
        Visit.deleted.is_(False), area_clause(Visit.area, seen)).group_by(Visit.chw, day))
    for chw_name, date_text, count in db.session.execute(per_day):
        if date_text in chws[chw_name].visits_per_day:  # visits dated in the future are not counted
            chws[chw_name].visits_per_day[date_text] = count
    return list(chws.values())


def _add_devices(db_name: str, chws: dict[str, ChwActivity], stale_before: float) -> None:
    rows = db.session.execute(select(User.name, Device).join(Device, Device.user_id == User.id).where(
        User.name.in_(list(chws))).order_by(User.name, Device.enrolled_at))
    devices: dict[str, DeviceActivity] = {}
    for name, device in rows:
        seen_at = device.last_seen_at
        # A device never heard from counts from its enrolment: a tablet enrolled today is not late yet.
        late = (seen_at if seen_at is not None else device.enrolled_at) < stale_before
        info = DeviceActivity(device.id, device.name, device.status, seen_at, device.status == "active" and late)
        chws[name].devices.append(info)
        devices[device.id] = info
    if devices:
        for report in db.session.scalars(select(HeldReport).where(
                HeldReport.db_name == db_name, HeldReport.device_id.in_(list(devices)))):
            info = devices[report.device_id]
            info.held, info.pending, info.reported_at = report.held, report.pending, report.reported_at
