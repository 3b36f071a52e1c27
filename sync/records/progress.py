"""A campaign's progress, computed over the central tables (models.health).

Figures, each per area, per CHW, and per sex and age band (``sync.records.filters``):

- ``eligible``: live patients (not deleted, not merged into another) whose area lies in
  one of the campaign's areas and who match its eligibility (sex; age in whole years on
  the reference date). A patient of unknown age is not eligible when the campaign bounds
  the age.
- ``screened``: live visits whose ``campaign_id`` is the campaign (a patient screened twice
  counts twice); ``positive``: those with a campaign threshold flag (``campaign:<field>``).
- ``referred``: live referrals, other than cancelled ones, made from those visits
  (``visit_id``); ``completed``: those whose status is ``completed``.

A visit counts under its own area and CHW; its patient gives the sex and age band. Per
CHW, the eligible population is that of the villages the CHW works in. A target is set
per area; a row's target is its own, else the sum of its descendants'. With a CHW, sex or
age-band filter no target applies. Each figure is one grouped query, rolled up here in
Python. The visits carry what these queries need (``campaign_positive``, and a copy of
their patient's sex, birth date and estimated age), so they join no patient and read no
JSON; on SQLite covering indexes (models.health) let them read no table row at all.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, fields
from datetime import date
from typing import Any

from sqlalchemy import case, func, select, text

from models import User, db
from models.access import Assignment
from models.health import Patient, Referral, Visit

from .campaigns import CampaignDoc
from .filters import (BAND_NAMES, BANDS, OLDEST, Filters, band_case, eligibility_clauses, in_any, in_area,
                      reference_date, sex_of, visit_clauses)
from .schemafields import SEXES

Json = dict[str, Any]
# PostgreSQL cannot tell how few (area, CHW, sex, band) groups a campaign's visits fall into,
# expects one per visit, and sorts them on disk at the default 4 MB; with this much it hashes them.
PG_WORK_MEM = "32MB"
MAIN_SEXES = ("female", "male")  # always listed, so a gap shows as a row of zeros


@dataclass
class Tally:
    """The counts of one row."""

    eligible: int = 0
    screened: int = 0
    positive: int = 0
    referred: int = 0
    completed: int = 0

    def add(self, other: Tally) -> None:
        """Add ``other``'s counts to these."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_json(self, target: int | None = None, with_target: bool = False) -> Json:
        """The counts and their rates (None where the denominator is 0 or unknown)."""
        out: Json = asdict(self)
        if with_target:
            out["target"] = target
            out["coverage_target"] = _rate(self.screened, target)
        out["coverage_eligible"] = _rate(self.screened, self.eligible)
        out["positivity"] = _rate(self.positive, self.screened)
        out["completion"] = _rate(self.completed, self.referred)
        return out


def _rate(part: int, whole: int | None) -> float | None:
    return round(part / whole, 4) if whole else None


Key = tuple[str, str, str, str]  # (area, chw, sex, band)


@dataclass(frozen=True)
class _Traits:
    """A visit's copy of its patient's sex, birth date and estimated age, where filters expect a patient."""

    sex: Any
    birth_date: Any
    estimated_age_years: Any


def _traits(v: Any) -> _Traits:
    return _Traits(v.patient_sex, v.patient_birth_date, v.patient_estimated_age_years)


def _grouped(source: Any, where: list[Any], v: Any, on: date, count: Any, *, raw_first: bool = False) -> Any:
    """``source`` rows counted by (area, CHW, sex, band): count(*) and sum(``count``).

    ``raw_first`` groups by the raw columns first, in the order of the visits' covering
    index (SQLite reads them already grouped, no sort), then by sex and band over those few
    rows: a third cheaper for a campaign's visits than sorting each by its band. Referrals
    come in no such order, and sorting them twice costs more.
    """
    def keys(c: Any) -> tuple[Any, ...]:
        p = _Traits(c.patient_sex, c.patient_birth_date, c.patient_estimated_age_years)
        return (func.coalesce(c.area, "").label("area"), func.coalesce(c.chw, "").label("chw"),
                sex_of(p).label("sex"), band_case(p, on).label("band"))

    # Grouped by the labels of a subquery: PostgreSQL does not see two renderings of the
    # same expression with bound parameters as one.
    if raw_first:
        raw = (v.area, v.chw, v.patient_sex, v.patient_birth_date, v.patient_estimated_age_years)
        i = (select(*raw, func.count().label("rows"), func.sum(count).label("n"))
             .select_from(source).where(*where).group_by(*raw)).subquery().c
        g = select(*keys(i), i.rows, i.n).subquery().c
        total = func.sum(g.rows)
    else:
        g = select(*keys(v), count.label("n")).select_from(source).where(*where).subquery().c
        total = func.count()
    return select(g.area, g.chw, g.sex, g.band, total, func.sum(g.n)).group_by(g.area, g.chw, g.sex, g.band)


def _visits(db_name: str, campaign_id: str, filters: Filters, on: date) -> dict[Key, Tally]:
    v = Visit.__table__.c
    where = [v.db_name == db_name, v.campaign_id == campaign_id, v.deleted.is_(False),
             *visit_clauses(v, _traits(v), filters, on)]
    query = _grouped(Visit.__table__, where, v, on, case((v.campaign_positive.is_(True), 1), else_=0), raw_first=True)
    return {(a, c, s, b): Tally(screened=int(n), positive=int(pos or 0))
            for a, c, s, b, n, pos in db.session.execute(query)}


def _referrals(db_name: str, campaign_id: str, filters: Filters, on: date) -> dict[Key, Tally]:
    r, v = Referral.__table__.c, Visit.__table__.c
    joined = Referral.__table__.join(Visit.__table__, (v.db_name == r.db_name) & (v.doc_id == r.visit_id))
    where = [r.db_name == db_name, r.deleted.is_(False), func.coalesce(r.status, "") != "cancelled",
             v.campaign_id == campaign_id, v.deleted.is_(False), *visit_clauses(v, _traits(v), filters, on)]
    query = _grouped(joined, where, v, on, case((r.status == "completed", 1), else_=0))
    return {(a, c, s, b): Tally(referred=n, completed=int(done or 0))
            for a, c, s, b, n, done in db.session.execute(query)}


def _eligible(db_name: str, campaign: Json, filters: Filters, on: date,
              villages: list[str] | None) -> dict[Key, Tally]:
    p = Patient.__table__.c
    where = [p.db_name == db_name, p.deleted.is_(False), p.merged_into.is_(None),
             in_any(p.area, [a for a in campaign.get("areas") or [] if isinstance(a, str)]),
             *eligibility_clauses(p, campaign, on)]
    if filters.area:
        where.append(in_area(p.area, filters.area))
    if villages is not None:  # a CHW filter: the population of that CHW's villages
        where.append(in_any(p.area, villages))
    if filters.sex:
        where.append(sex_of(p) == filters.sex)
    inner = select(p.area.label("area"), sex_of(p).label("sex"), band_case(p, on).label("band")).where(
        *where).subquery()
    query = select(inner.c.area, inner.c.sex, inner.c.band, func.count()).group_by(
        inner.c.area, inner.c.sex, inner.c.band)
    if filters.band:
        query = query.where(inner.c.band == filters.band)
    return {(a, "", s, b): Tally(eligible=n) for a, s, b, n in db.session.execute(query)}


def villages_of(chws: list[str]) -> dict[str, list[str]]:
    """The villages each of ``chws`` works in."""
    found: dict[str, list[str]] = {c: [] for c in chws}
    if chws:
        rows = db.session.execute(select(User.name, Assignment.area_path).join(User, User.id == Assignment.user_id)
                                  .where(Assignment.kind == "works_in", User.name.in_(chws)))
        for name, path in rows:
            found[name].append(path)
    return {name: sorted(paths) for name, paths in found.items()}


def _under(path: str, area: str) -> bool:
    return path == area or path.startswith(area + "/")


def _target(targets: dict[str, Any], area: str) -> int | None:
    """An area's own target, else the sum of its highest targeted descendants'."""
    own = targets.get(area)
    if isinstance(own, int) and not isinstance(own, bool):
        return own
    below = [p for p in targets if p.startswith(area + "/") and isinstance(targets[p], int)]
    tops = [p for p in below if not any(q != p and _under(p, q) for q in below)]
    return sum(targets[p] for p in tops) if tops else None


def _collapse(tallies: dict[Key, Tally], index: int) -> dict[str, Tally]:
    out: dict[str, Tally] = defaultdict(Tally)
    for key, tally in tallies.items():
        out[key[index]].add(tally)
    return out


def _area_rows(campaign: Json, by_area: dict[str, Tally], filters: Filters) -> list[Json]:
    targets = campaign.get("targets") if isinstance(campaign.get("targets"), dict) else {}
    paths = {a for a in campaign.get("areas") or [] if isinstance(a, str)} | set(targets) | set(by_area)
    paths.discard("")
    if filters.area:
        paths = {p for p in paths if _under(p, filters.area)} | {filters.area}
    rows = []
    for path in sorted(paths, key=lambda p: p.split("/")):
        tally = Tally()
        for area, counts in by_area.items():
            if _under(area, path):
                tally.add(counts)
        target = None if filters.narrows_people else _target(targets, path)
        rows.append({"area": path, "depth": path.count("/"), **tally.to_json(target, with_target=True)})
    return rows


def _expected_groups(campaign: Json, filters: Filters) -> tuple[list[str], list[str]]:
    """The sexes and age bands the campaign is for: their rows are listed even when empty."""
    rule = campaign.get("eligibility") if isinstance(campaign.get("eligibility"), dict) else {}
    sexes = [s for s in rule.get("sex") or MAIN_SEXES if s in SEXES]
    low, high = rule.get("min_age"), rule.get("max_age")
    low = low if isinstance(low, (int, float)) and not isinstance(low, bool) else 0
    high = high if isinstance(high, (int, float)) and not isinstance(high, bool) else 1000
    bands, start = [], 0
    for name, upper in (*BANDS, (OLDEST, 1000)):
        if upper > low and start <= high:
            bands.append(name)
        start = upper
    return ([filters.sex] if filters.sex else sexes), ([filters.band] if filters.band else bands)


def progress(db_name: str, campaign: CampaignDoc, filters: Filters, *, today: date | None = None) -> Json:
    """The campaign's progress under ``filters`` (see the module docstring for each figure)."""
    body, on = campaign.body, reference_date(campaign.body, today)
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text(f"SET LOCAL work_mem = '{PG_WORK_MEM}'"))  # until this transaction ends
    listed = [c for c in body.get("chws") or [] if isinstance(c, str)]
    visits, referrals = _visits(db_name, campaign.id, filters, on), _referrals(db_name, campaign.id, filters, on)
    chws = sorted(set(listed) | {k[1] for k in visits if k[1]} | {k[1] for k in referrals if k[1]})
    if filters.chw:
        chws = [filters.chw]
    homes = villages_of(chws)
    eligible = _eligible(db_name, body, filters, on, homes.get(filters.chw, []) if filters.chw else None)
    everything: dict[Key, Tally] = defaultdict(Tally)
    for part in (visits, referrals, eligible):
        for key, tally in part.items():
            everything[key].add(tally)
    by_area = _collapse(everything, 0)
    totals = Tally()
    for tally in by_area.values():
        totals.add(tally)
    area_rows = _area_rows(body, by_area, filters)
    top = [r for r in area_rows if r["area"] in (body.get("areas") or []) or r["area"] == filters.area]
    target_total = None if filters.narrows_people else (
        _target(body.get("targets") or {}, filters.area) if filters.area else
        sum(r["target"] for r in top if r["target"] is not None) if any(r["target"] is not None for r in top)
        else None)
    chw_rows = []
    eligible_by_area = _collapse(eligible, 0)
    work = _collapse({k: t for k, t in everything.items() if k[1]}, 1)
    for chw in chws:
        tally = work.get(chw, Tally())
        tally.eligible = sum(t.eligible for a, t in eligible_by_area.items()
                             if any(_under(a, village) for village in homes.get(chw, [])))
        chw_rows.append({"chw": chw, "villages": homes.get(chw, []), "assigned": chw in listed, **tally.to_json()})
    groups: dict[tuple[str, str], Tally] = defaultdict(Tally)
    for (_, _, sex, band), tally in everything.items():
        groups[(sex, band)].add(tally)
    shown_sexes, shown_bands = _expected_groups(body, filters)
    group_rows = [{"sex": sex, "band": band, **groups.get((sex, band), Tally()).to_json()}
                  for sex in SEXES for band in BAND_NAMES
                  if (sex, band) in groups or (sex in shown_sexes and band in shown_bands)]
    return {"campaign_id": campaign.id, "reference_date": on.isoformat(), "filters": filters.to_json(),
            "totals": totals.to_json(target_total, with_target=True), "areas": area_rows, "chws": chw_rows,
            "groups": group_rows}
