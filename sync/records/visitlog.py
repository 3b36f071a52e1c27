"""The visit log of a supervisor's team: filters, paging and counts over the central tables.

Queries read ``models.health`` only (never the documents), so a page costs a few indexed
statements whatever the number of visits: the rows of one page, their count, and the names
and review states of the page's rows. Every query is narrowed by the reader's visibility
(``sync.records.visibility``) first; a filter can only narrow it further. Filter values come
from a query string and are checked by ``parse_filters``: a bad one is a ``BadRequest`` that
names it. Times in the filters are whole UTC days (the central tables hold UTC text).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, cast, func, or_, select
from sqlalchemy import Text as SqlText

from models import db
from models.health import Campaign, Patient, Review, Visit

from ..errors import BadRequest
from ..scope import is_area_path
from .visibility import Visibility, area_clause

KINDS = ("routine", "antenatal", "chronic_follow_up", "screening")
REVIEW_STATES = ("approved", "has_issues", "rejected")
REVIEW_FILTERS = ("none", *REVIEW_STATES)
FLAGS = ("bp_high", "glucose_high", "malaria_positive", "muac_low")
FLAG = re.compile(r"^(?:bp_high|glucose_high|malaria_positive|muac_low|campaign:[a-z0-9_]{1,60})$")
FILTER_NAMES = ("chw", "area", "from", "to", "kind", "campaign_id", "review", "flag", "patient")
PAGE_SIZE = 50
MAX_TEXT = 200
Json = dict[str, Any]


@dataclass(frozen=True)
class VisitFilter:
    """What the visit log is narrowed to; None means no narrowing."""

    chw: str | None = None
    area: str | None = None
    date_from: date | None = None
    date_to: date | None = None  # inclusive
    kind: str | None = None
    campaign_id: str | None = None
    review: str | None = None  # "none" or a review state
    flag: str | None = None  # a risk flag, or "any"
    patient: str | None = None  # the patient the visits count for

    def query_args(self) -> dict[str, str]:
        """The filter as query-string arguments (for paging links)."""
        names = {"date_from": "from", "date_to": "to"}
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[names.get(f.name, f.name)] = value.isoformat() if isinstance(value, date) else value
        return out


def _text(args: Mapping[str, str], name: str) -> str | None:
    value = args.get(name)
    if value is None or value.strip() == "":
        return None
    if len(value) > MAX_TEXT:
        raise BadRequest(f"{name} must be at most {MAX_TEXT} characters")
    if "\x00" in value:
        raise BadRequest(f"{name} must not contain a NUL character")
    return value.strip()


def _choice(args: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    value = _text(args, name)
    if value is not None and value not in choices:
        raise BadRequest(f"{name} must be one of {', '.join(choices)}")
    return value


def _day(args: Mapping[str, str], name: str) -> date | None:
    value = _text(args, name)
    if value is None:
        return None
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name} must be a date YYYY-MM-DD") from None


def parse_filters(args: Mapping[str, str], *, blank_is_any: bool = True) -> VisitFilter:
    """The filters of a query string (other arguments are ignored); a bad value raises ``BadRequest``.

    :param blank_is_any: an empty value means no filter (a form's "Any"); else it is refused.
    """
    if not blank_is_any:
        blank = next((n for n in FILTER_NAMES if args.get(n) == ""), None)
        if blank is not None:
            raise BadRequest(f"{blank} must not be empty")
    area = _text(args, "area")
    if area is not None and not is_area_path(area):
        raise BadRequest("area must be an area path such as north/district-3")
    flag = _text(args, "flag")
    if flag is not None and flag != "any" and not FLAG.match(flag):
        raise BadRequest(f"flag must be any, one of {', '.join(FLAGS)}, or campaign:<observation>")
    found = VisitFilter(chw=_text(args, "chw"), area=area, date_from=_day(args, "from"), date_to=_day(args, "to"),
                        kind=_choice(args, "kind", KINDS), campaign_id=_text(args, "campaign_id"),
                        review=_choice(args, "review", REVIEW_FILTERS), flag=flag, patient=_text(args, "patient"))
    if found.date_from and found.date_to and found.date_from > found.date_to:
        raise BadRequest("from must not be after to")
    return found


def _stamp(day: date) -> str:
    return f"{day.isoformat()}T00:00:00.000Z"


def _newest_review(db_name: str) -> Any:
    """The state of a visit's newest review, as a correlated scalar subquery."""
    return (select(Review.state).where(Review.db_name == db_name, Review.visit_id == Visit.doc_id,
                                       Review.deleted.is_(False))
            .order_by(Review.reviewed_at.desc()).limit(1).correlate(Visit).scalar_subquery())


def _conditions(db_name: str, seen: Visibility, filt: VisitFilter) -> list[ColumnElement[bool]]:
    where = [Visit.db_name == db_name, Visit.deleted.is_(False), area_clause(Visit.area, seen)]
    if filt.chw is not None:
        where.append(Visit.chw == filt.chw)
    if filt.area is not None:
        where.append(or_(Visit.area == filt.area, Visit.area.startswith(filt.area + "/", autoescape=True)))
    if filt.date_from is not None:
        where.append(Visit.visited_at >= _stamp(filt.date_from))
    if filt.date_to is not None and filt.date_to < date.max:
        where.append(Visit.visited_at < _stamp(filt.date_to + timedelta(days=1)))
    for column, value in ((Visit.kind, filt.kind), (Visit.campaign_id, filt.campaign_id),
                          (Visit.patient_id, filt.patient)):
        if value is not None:
            where.append(column == value)
    if filt.flag == "any":
        where.append(cast(Visit.risk_flags, SqlText).contains('"', autoescape=True))
    elif filt.flag is not None:
        # The JSON text of the list holds each flag quoted: an exact match, on both engines.
        where.append(cast(Visit.risk_flags, SqlText).contains(f'"{filt.flag}"', autoescape=True))
    if filt.review == "none":
        where.append(_newest_review(db_name).is_(None))
    elif filt.review is not None:
        where.append(_newest_review(db_name) == filt.review)
    return where


def _page_query(db_name: str, seen: Visibility, filt: VisitFilter) -> Select[Any]:
    return select(Visit).where(and_(*_conditions(db_name, seen, filt)))


def count_visits(db_name: str, seen: Visibility, filt: VisitFilter) -> int:
    """How many visits the reader sees under ``filt``."""
    query = select(func.count()).select_from(Visit).where(and_(*_conditions(db_name, seen, filt)))
    return int(db.session.scalar(query) or 0)


def list_visits(db_name: str, seen: Visibility, filt: VisitFilter, *, limit: int = PAGE_SIZE,
                offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """One page of visits, newest first, as row dicts; and the total under ``filt``."""
    query = (_page_query(db_name, seen, filt).order_by(Visit.visited_at.desc(), Visit.doc_id.desc())
             .limit(limit).offset(offset))
    visits = list(db.session.scalars(query))
    total = count_visits(db_name, seen, filt) if visits or offset else 0
    return rows_of(db_name, visits), total


def rows_of(db_name: str, visits: list[Visit]) -> list[dict[str, Any]]:
    """Visits as the log shows them, with patient names, campaign names and review states."""
    patients = names_of(db_name, [v.patient_id for v in visits if v.patient_id])
    campaigns = campaign_names(db_name, [v.campaign_id for v in visits if v.campaign_id])
    reviews = review_states(db_name, [v.doc_id for v in visits])
    return [{"doc_id": v.doc_id, "rev": v.rev, "visited_at": v.visited_at, "chw": v.chw, "area": v.area,
             "kind": v.kind, "campaign_id": v.campaign_id, "campaign_name": campaigns.get(v.campaign_id or ""),
             "patient_id": v.patient_id, "patient_name": patients.get(v.patient_id or ""),
             "risk_flags": list(v.risk_flags or []), "photo_count": v.photo_count or 0,
             "review_state": reviews.get(v.doc_id)} for v in visits]


def full_name(given: str | None, family: str | None) -> str | None:
    """A patient's name for display, or None when neither part is known."""
    name = " ".join(p for p in (given, family) if p)
    return name or None


def names_of(db_name: str, patient_ids: list[str]) -> dict[str, str | None]:
    """Display names of patients by doc id (central table; missing patients are absent)."""
    ids = list(dict.fromkeys(patient_ids))
    if not ids:
        return {}
    rows = db.session.execute(select(Patient.doc_id, Patient.given_name, Patient.family_name).where(
        Patient.db_name == db_name, Patient.doc_id.in_(ids)))
    return {r.doc_id: full_name(r.given_name, r.family_name) for r in rows}


def patient_summary(db_name: str, patient_id: str, named: str | None = None) -> Json | None:
    """Who a visit is about: the patient it counts for (``named``: the id the visit gave)."""
    p = db.session.get(Patient, (db_name, patient_id))
    if p is None:
        return None
    return {"id": p.doc_id, "doc_id": named or p.doc_id, "name": full_name(p.given_name, p.family_name),
            "sex": p.sex, "birth_date": p.birth_date, "estimated_age_years": p.estimated_age_years,
            "household_id": p.household_id, "area": p.area}


def campaign_names(db_name: str, campaign_ids: list[str]) -> dict[str, str | None]:
    """Campaign names by doc id."""
    ids = list(dict.fromkeys(campaign_ids))
    if not ids:
        return {}
    rows = db.session.execute(select(Campaign.doc_id, Campaign.name).where(
        Campaign.db_name == db_name, Campaign.doc_id.in_(ids)))
    return {r.doc_id: r.name for r in rows}


def review_states(db_name: str, visit_ids: list[str]) -> dict[str, str | None]:
    """The state of each visit's newest review (visits without one are absent)."""
    ids = list(dict.fromkeys(visit_ids))
    if not ids:
        return {}
    rows = db.session.execute(select(Review.visit_id, Review.state, Review.reviewed_at).where(
        Review.db_name == db_name, Review.visit_id.in_(ids), Review.deleted.is_(False)))
    newest: dict[str, tuple[str, str | None]] = {}
    for visit_id, state, at in rows:
        if visit_id not in newest or (at or "") > newest[visit_id][0]:
            newest[visit_id] = (at or "", state)
    return {visit_id: state for visit_id, (_, state) in newest.items()}


def visit_row(db_name: str, seen: Visibility, doc_id: str) -> Visit | None:
    """The central row of a live visit the reader sees, or None (absent and out of scope look alike)."""
    return db.session.scalar(select(Visit).where(
        Visit.db_name == db_name, Visit.doc_id == doc_id, Visit.deleted.is_(False), area_clause(Visit.area, seen)))
