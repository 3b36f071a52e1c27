"""The filters of a campaign's progress page and exports, and age bands, as SQL over the central tables.

Ages are whole years on a reference date (the campaign's start date, else today): from
``birth_date``, else ``estimated_age_years``. Bands: 0-4, 5-14, 15-29, 30-44, 45-59, 60+,
and ``unknown`` for a patient of neither. Dates filter ``visited_at`` as UTC days.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, func, or_

from ..errors import BadRequest
from ..scope import is_area_path
from .schemafields import SEXES

Json = dict[str, Any]
BANDS: tuple[tuple[str, int], ...] = (("0-4", 5), ("5-14", 15), ("15-29", 30), ("30-44", 45), ("45-59", 60))
OLDEST, UNKNOWN = "60+", "unknown"
BAND_NAMES = (*(name for name, _ in BANDS), OLDEST, UNKNOWN)


# ------------------------------------------------------------------------------------------------ ages
def years_before(day: date, years: int) -> str:
    """The ISO date ``years`` whole years before ``day`` (29 February becomes the 28th)."""
    year = max(day.year - years, 1)  # a start date in year 1 still gives a date, not a 500
    try:
        return day.replace(year=year).isoformat()
    except ValueError:
        return day.replace(year=year, day=28).isoformat()


def age_band(birth_date: str | None, estimated_age: float | None, on: date) -> str:
    """The age band of a patient on ``on``: from the birth date, else the estimated age."""
    for name, upper in BANDS:
        if birth_date is not None:
            if birth_date > years_before(on, upper):
                return name
        elif estimated_age is not None:
            if estimated_age < upper:
                return name
    return UNKNOWN if birth_date is None and estimated_age is None else OLDEST


def reference_date(campaign: Json, today: date | None = None) -> date:
    """The day ages are counted on: the campaign's start date, else today (UTC)."""
    start = campaign.get("start_date")
    try:
        return date.fromisoformat(start) if isinstance(start, str) else _today(today)
    except ValueError:
        return _today(today)


def _today(today: date | None) -> date:
    return today or datetime.now(timezone.utc).date()


def band_case(patient: Any, on: date) -> Any:
    """SQL for ``age_band`` over a patient table (NULL columns when the patient is missing)."""
    by_birth = case(*[(patient.birth_date > years_before(on, upper), name) for name, upper in BANDS], else_=OLDEST)
    by_estimate = case(*[(patient.estimated_age_years < upper, name) for name, upper in BANDS], else_=OLDEST)
    return case((patient.birth_date.is_not(None), by_birth), (patient.estimated_age_years.is_not(None), by_estimate),
                else_=UNKNOWN)


def sex_of(patient: Any) -> Any:
    """SQL for a patient's sex, ``unknown`` when not known."""
    return func.coalesce(patient.sex, "unknown")


# ------------------------------------------------------------------------------------------------ filters
@dataclass(frozen=True)
class Filters:
    """The progress page's and the exports' filters; None: not filtered."""

    area: str | None = None
    chw: str | None = None
    sex: str | None = None
    band: str | None = None
    date_from: str | None = None
    date_to: str | None = None

    def to_json(self) -> Json:
        """The filters as the API names them."""
        return {"area": self.area, "chw": self.chw, "sex": self.sex, "band": self.band,
                "from": self.date_from, "to": self.date_to}

    @property
    def narrows_people(self) -> bool:
        """Whether a filter other than area and dates applies (targets are per area only)."""
        return any((self.chw, self.sex, self.band))


def _day(value: str, name: str) -> str:
    try:
        if len(value) == 10:  # fromisoformat also takes 20261120, which is no date here
            return date.fromisoformat(value).isoformat()
    except ValueError:
        pass
    raise BadRequest(f"{name} must be a date, YYYY-MM-DD")


def parse_filters(args: Mapping[str, str]) -> Filters:
    """Filters from query arguments (an empty value is no filter); a bad one is a 400 naming it."""
    got = {k: (args.get(k) or "").strip() or None for k in ("area", "chw", "sex", "band", "from", "to")}
    for name, value in got.items():
        if value is not None and (len(value) > 200 or not value.isprintable()):
            raise BadRequest(f"{name} must be printable text of at most 200 characters")
    if got["area"] is not None and not is_area_path(got["area"]):
        raise BadRequest("area must be an area path such as north/district-3")
    if got["sex"] is not None and got["sex"] not in SEXES:
        raise BadRequest(f"sex must be one of {', '.join(SEXES)}")
    if got["band"] is not None and got["band"] not in BAND_NAMES:
        raise BadRequest(f"band must be one of {', '.join(BAND_NAMES)}")
    start = _day(got["from"], "from") if got["from"] else None
    end = _day(got["to"], "to") if got["to"] else None
    if start and end and start > end:
        raise BadRequest("from must not be after to")
    return Filters(got["area"], got["chw"], got["sex"], got["band"], start, end)


def in_area(column: Any, area: str) -> ColumnElement[bool]:
    """``column`` is ``area`` or lies below it."""
    return or_(column == area, column.startswith(area + "/", autoescape=True))


def in_any(column: Any, areas: Iterable[str]) -> ColumnElement[bool]:
    """``column`` lies in one of ``areas`` (false for none)."""
    clauses = [in_area(column, a) for a in areas]
    return or_(*clauses) if clauses else false()


def visit_clauses(visit: Any, patient: Any, filters: Filters, on: date) -> list[ColumnElement[bool]]:
    """WHERE clauses of the filters over a visit joined to its patient."""
    out: list[ColumnElement[bool]] = []
    if filters.area:
        out.append(in_area(visit.area, filters.area))
    if filters.chw:
        out.append(visit.chw == filters.chw)
    if filters.sex:
        out.append(sex_of(patient) == filters.sex)
    if filters.band:
        out.append(band_case(patient, on) == filters.band)
    if filters.date_from:
        out.append(visit.visited_at >= f"{filters.date_from}T00:00:00.000Z")
    if filters.date_to:
        after = date.fromisoformat(filters.date_to) + timedelta(days=1)
        out.append(visit.visited_at < f"{after.isoformat()}T00:00:00.000Z")
    return out


def eligibility_clauses(patient: Any, campaign: Json, on: date) -> list[ColumnElement[bool]]:
    """WHERE clauses of the campaign's eligibility (sex, age in whole years) over a patient table."""
    rule = campaign.get("eligibility") if isinstance(campaign.get("eligibility"), dict) else {}
    out: list[ColumnElement[bool]] = []
    sexes = [s for s in rule.get("sex") or [] if isinstance(s, str)]
    if sexes:
        out.append(patient.sex.in_(sexes))
    born, estimate = patient.birth_date, patient.estimated_age_years
    low, high = rule.get("min_age"), rule.get("max_age")
    if isinstance(low, (int, float)) and not isinstance(low, bool):
        years = math.ceil(low)
        out.append(or_(and_(born.is_not(None), born <= years_before(on, years)),
                       and_(born.is_(None), estimate >= years)))
    if isinstance(high, (int, float)) and not isinstance(high, bool):
        years = math.floor(high) + 1
        out.append(or_(and_(born.is_not(None), born > years_before(on, years)),
                       and_(born.is_(None), estimate < years)))
    return out
