"""Users, areas and assignments over the database; every change is audited.

Areas form a tree of paths (``sync.scope.AREA_PATH``). A region is a root, a district
sits under a region, a village under a district, and a facility under a district or a
village; nothing sits under a facility. An assignment ties a user to an area: a CHW
``works_in`` villages, a supervisor ``supervises`` subtrees (any area), a clinician serves
at a facility (``clinic``). Organisers and admins need no area.

Refusals are ``sync.errors`` exceptions with a plain reason (the CLI prints it as one
line) and leave the database unchanged.
"""
from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from crypto import hash_password
from models import Device, User, db
from models.access import AREA_KINDS, ASSIGNMENT_KINDS, Area, Assignment

from . import audit
from .errors import BadRequest, Conflict, NotFound
from .scope import ADMIN_ROLES, ASSIGNMENT_ROLE, NO_SCOPE, ROLES, Scope, is_admin, is_area_path, user_keys

# The kinds an area of each kind may sit under (None: it is a root).
PARENT_KINDS: dict[str, tuple[str | None, ...]] = {
    "region": (None,), "district": ("region",), "village": ("district",), "facility": ("district", "village")}
# The area kind an assignment needs (None: any).
ASSIGNMENT_AREA_KIND = {"works_in": "village", "supervises": None, "clinic": "facility"}
# A user name is also a key (``user:<name>``) and the left of a Basic-auth ``name:password``.
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
MIN_PASSWORD = 8


@dataclass(frozen=True)
class AreaInfo:
    """An area as the CLI and the API show it."""

    path: str
    kind: str
    name: str
    parent_path: str | None
    created_at: float


@dataclass(frozen=True)
class UserInfo:
    """An account, its roles and its (area path, kind) assignments."""

    name: str
    roles: tuple[str, ...]
    disabled: bool
    assignments: tuple[tuple[str, str], ...]

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "roles": list(self.roles), "disabled": self.disabled,
                "assignments": [{"area": a, "kind": k} for a, k in self.assignments]}


def _commit() -> None:
    """Commit; a unique key taken meanwhile by another writer becomes a plain conflict."""
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("That already exists (written at the same time by another command)") from None


def _user(name: str) -> User:
    user = db.session.scalar(select(User).where(User.name == name)) if isinstance(name, str) else None
    if user is None:
        raise NotFound(f"No user named {name!r}")
    return user


def _area(path: str) -> Area:
    area = db.session.scalar(select(Area).where(Area.path == path)) if is_area_path(path) else None
    if area is None:
        raise NotFound(f"No area {path!r}")
    return area


def _area_info(area: Area) -> AreaInfo:
    return AreaInfo(area.path, area.kind, area.name, area.parent_path, area.created_at)


def add_area(path: str, kind: str, name: str, *, actor: str) -> AreaInfo:
    """Create an area under its existing parent (a region is a root)."""
    if not is_area_path(path):
        raise BadRequest(f"{path!r} is not an area path: 1 to 4 segments of a-z, 0-9 and -, joined by /")
    if kind not in AREA_KINDS:
        raise BadRequest(f"Unknown area kind {kind!r}: use one of {', '.join(AREA_KINDS)}")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise BadRequest("An area needs a display name of 1 to 200 characters")
    parent_path = path.rpartition("/")[0] or None
    allowed = PARENT_KINDS[kind]
    if (parent_path is None) != (None in allowed):
        raise BadRequest("A region is a root: its path is one segment" if kind == "region"
                         else f"A {kind} sits under a {' or a '.join(map(str, allowed))}: its path needs a parent")
    if db.session.scalar(select(Area.id).where(Area.path == path)) is not None:
        raise Conflict(f"Area {path!r} already exists")
    if parent_path is not None:
        parent = db.session.scalar(select(Area).where(Area.path == parent_path))
        if parent is None:
            raise NotFound(f"No parent area {parent_path!r}: add it first")
        if parent.kind not in allowed:
            raise BadRequest(f"A {kind} sits under a {' or a '.join(map(str, allowed))}; {parent_path} is a"
                             f" {parent.kind}")
    area = Area(path=path, kind=kind, name=name.strip(), parent_path=parent_path, created_at=time.time())
    db.session.add(area)
    audit.record(actor, "area.add", area=path, kind=kind, name=area.name)
    _commit()
    return _area_info(area)


def list_areas() -> list[AreaInfo]:
    """Every area, parents before their children (ordered segment by segment)."""
    areas = [_area_info(a) for a in db.session.scalars(select(Area))]
    return sorted(areas, key=lambda a: a.path.split("/"))


def assign(user_name: str, area_path: str, kind: str, *, actor: str) -> None:
    """Assign a user to an area; the kind must fit the user's roles and the area's kind."""
    if kind not in ASSIGNMENT_KINDS:
        raise BadRequest(f"Unknown assignment {kind!r}: use one of {', '.join(ASSIGNMENT_KINDS)}")
    user, area = _user(user_name), _area(area_path)
    role = ASSIGNMENT_ROLE[kind]
    if role not in (user.roles or ()):
        raise BadRequest(f"{kind} is for a {role}; {user.name} has the roles {', '.join(user.roles or ()) or 'none'}")
    wanted = ASSIGNMENT_AREA_KIND[kind]
    if wanted is not None and area.kind != wanted:
        raise BadRequest(f"{kind} needs a {wanted}; {area.path} is a {area.kind}")
    taken = select(Assignment.id).where(Assignment.user_id == user.id, Assignment.area_path == area.path,
                                        Assignment.kind == kind)
    if db.session.scalar(taken) is not None:
        raise Conflict(f"{user.name} is already assigned to {area.path} as {kind}")
    db.session.add(Assignment(user_id=user.id, area_path=area.path, kind=kind, created_at=time.time()))
    audit.record(actor, "access.assign", user=user.name, area=area.path, kind=kind)
    _commit()


def unassign(user_name: str, area_path: str, kind: str | None = None, *, actor: str) -> int:
    """Remove a user's assignments to an area (of one kind, or all); return how many went."""
    if kind is not None and kind not in ASSIGNMENT_KINDS:
        raise BadRequest(f"Unknown assignment {kind!r}: use one of {', '.join(ASSIGNMENT_KINDS)}")
    user = _user(user_name)
    query = delete(Assignment).where(Assignment.user_id == user.id, Assignment.area_path == area_path)
    if kind is not None:
        query = query.where(Assignment.kind == kind)
    removed = db.session.execute(query).rowcount  # type: ignore[attr-defined]
    if not removed:
        db.session.rollback()
        raise NotFound(f"{user.name} has no assignment to {area_path!r}" + (f" as {kind}" if kind else ""))
    audit.record(actor, "access.unassign", user=user.name, area=area_path, kind=kind, removed=removed)
    _commit()
    return int(removed)


def _assignments(user_id: int) -> list[tuple[str, str]]:
    rows = db.session.execute(select(Assignment.area_path, Assignment.kind).where(Assignment.user_id == user_id))
    return sorted((path, kind) for path, kind in rows)


def assignments_of(user_name: str) -> list[tuple[str, str]]:
    """A user's (area path, kind) assignments, sorted."""
    return _assignments(_user(user_name).id)


def scope_of(user_name: str, *, organised_campaigns: Iterable[str] = (),
             consented_patient_ids: Iterable[str] = ()) -> Scope:
    """The scope of a user (empty when disabled), from their roles and assignments.

    The campaigns an organiser runs and the consented patients referred to a clinician's
    facility come from the records database; until the scope index computes them, the
    caller passes them (empty by default, so an organiser or clinician sees only what
    their other keys reach).
    """
    user = _user(user_name)
    if user.disabled:
        return NO_SCOPE
    return user_keys(user.roles or (), _assignments(user.id), user.name, organised_campaigns=organised_campaigns,
                     consented_patient_ids=consented_patient_ids)


def add_user(name: str, password: str, roles: Iterable[str], *, actor: str) -> UserInfo:
    """Create an account with at least one known role."""
    if not isinstance(name, str) or not USER_NAME.match(name):
        raise BadRequest("A user name is 1 to 100 letters, digits, '.', '_', '@' or '-', starting with a"
                         " letter or digit")
    roles = list(dict.fromkeys(roles))
    unknown = [r for r in roles if r not in ROLES and r not in ADMIN_ROLES]
    if unknown or not roles:
        raise BadRequest(f"Unknown role {unknown[0]!r}: use {', '.join(ROLES)}" if unknown
                         else f"A user needs a role: {', '.join(ROLES)}")
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise BadRequest(f"A password needs at least {MIN_PASSWORD} characters")
    if db.session.scalar(select(User.id).where(User.name == name)) is not None:
        raise Conflict(f"A user named {name!r} already exists")
    db.session.add(User(name=name, password_hash=hash_password(password), roles=roles, disabled=False))
    audit.record(actor, "user.add", user=name, roles=roles)
    _commit()
    return UserInfo(name, tuple(roles), False, ())


def list_users() -> list[UserInfo]:
    """Every account with its assignments, by name."""
    users = list(db.session.scalars(select(User).order_by(User.name)))
    found: dict[int, list[tuple[str, str]]] = {u.id: [] for u in users}
    for user_id, path, kind in db.session.execute(select(Assignment.user_id, Assignment.area_path,
                                                         Assignment.kind)):
        found.setdefault(user_id, []).append((path, kind))
    return [UserInfo(u.name, tuple(u.roles or ()), bool(u.disabled), tuple(sorted(found[u.id]))) for u in users]


def disable_user(name: str, *, actor: str) -> int:
    """Disable an account: its password, cookies and devices are refused; return how many devices that stops."""
    user = _user(name)
    if user.disabled:
        raise BadRequest(f"{user.name} is already disabled")
    if is_admin(user.roles or ()):
        admins = [u for u in db.session.scalars(select(User).where(User.disabled.is_(False)))
                  if is_admin(u.roles or ())]
        if len(admins) <= 1:
            raise BadRequest(f"{user.name} is the last enabled admin; add another admin first")
    user.disabled = True
    devices = db.session.scalar(select(func.count()).select_from(Device).where(
        Device.user_id == user.id, Device.status != "revoked")) or 0
    audit.record(actor, "user.disable", user=user.name, devices=devices)
    _commit()
    return int(devices)
