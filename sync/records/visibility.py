"""Which central records a page or REST user may see: the same rules as replication, in SQL.

The central tables (models.health) carry each record's ``area``; a supervisor sees the
subtrees they supervise, a CHW their villages, a clinician the referrals to their
facilities, an organiser the campaigns they run (``organiser`` on the campaign) and their
visits, an admin everything. ``Visibility`` says which, and ``area_clause`` turns it into a
WHERE clause on an ``area`` column: equal to an area, or starting with it and a ``/``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, false, or_, true

from sync.access import assignments_of
from sync.scope import is_admin


@dataclass(frozen=True)
class Visibility:
    """A user's reach over the central records."""

    name: str
    all: bool
    areas: tuple[str, ...]  # subtrees (supervisor) and villages (CHW), seen with everything below them
    facilities: tuple[str, ...]  # clinician facilities (area paths)
    organiser: bool


def visibility_of(name: str, roles: tuple[str, ...] | list[str]) -> Visibility:
    """The reach of the user ``name`` holding ``roles``."""
    if is_admin(roles):
        return Visibility(name, True, (), (), True)
    areas: list[str] = []
    facilities: list[str] = []
    for path, kind in assignments_of(name):
        if kind == "supervises" and "supervisor" in roles or kind == "works_in" and "chw" in roles:
            areas.append(path)
        elif kind == "clinic" and "clinician" in roles:
            facilities.append(path)
    return Visibility(name, False, tuple(sorted(set(areas))), tuple(sorted(set(facilities))), "organiser" in roles)


def area_clause(column: Any, seen: Visibility) -> ColumnElement[bool]:
    """``column`` (an area path) lies in one of the user's areas, or anything for an admin."""
    if seen.all:
        return true()
    if not seen.areas:
        return false()
    # A prefix LIKE, not a range: a locale collation (PostgreSQL's default) may sort "/"
    # anywhere. Area paths are lowercase by their grammar, so SQLite's case-blind LIKE is exact.
    return or_(*[or_(column == area, column.startswith(area + "/", autoescape=True)) for area in seen.areas])


def in_areas(area: str | None, seen: Visibility) -> bool:
    """The same test in Python, for one record."""
    if seen.all:
        return True
    return area is not None and any(area == a or area.startswith(a + "/") for a in seen.areas)
