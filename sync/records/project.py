"""Projection of record documents into central-table rows: pure, standard library only.

``project(body, campaign)`` turns the body of one revision (docs/records.md) into the
column values of its central table, ``risk_flags`` gives a visit's risk flags and
``campaign_positive`` whether they meet one of its campaign's referral thresholds.
``derive_patient`` recomputes a patient's derived fields from its visits and referrals,
and ``survivor`` follows ``merged_into`` redirects. Nothing here raises on odd input: a
value of the wrong type or out of range becomes None, so one malformed document can never
stop the worker. Times become sortable UTC text (``2026-11-20T06:15:00.000Z``) and dates
ISO dates; lists that are sets come out sorted.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timezone
from typing import Any

Json = dict[str, Any]

# Column limits shared with models.health. A referenced document id longer than a stored
# id can be (sync.docfields allows 2000 UTF-8 bytes) names nothing and is kept as None.
ID_BYTES = 2000
SHORT = 200     # user names, kinds, states, sex, phone, ids of people outside the store
AREA = 255
TEXT = 5000     # free text

TABLES = {"household": "household", "patient": "patient", "visit": "visit", "referral": "referral",
          "campaign": "campaign", "review": "review"}

BP_SYSTOLIC_HIGH = 140      # mmHg, flag at or above
BP_DIASTOLIC_HIGH = 90      # mmHg, flag at or above
GLUCOSE_HIGH = 11.1         # mmol/L random glucose, flag at or above
MUAC_LOW = 115              # mm, flag below (severe acute malnutrition)

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "gte": lambda a, b: a >= b, "gt": lambda a, b: a > b,
    "lte": lambda a, b: a <= b, "lt": lambda a, b: a < b,
}


# ------------------------------------------------------------------------------------------------ values
def text(value: Any, limit: int = TEXT) -> str | None:
    """A string clipped to ``limit`` characters without NUL (PostgreSQL text refuses it); else None."""
    if not isinstance(value, str):
        return None
    return value.replace("\x00", "")[:limit]


def ref(value: Any) -> str | None:
    """A document id another document names, or None when it cannot be one."""
    if not isinstance(value, str) or not value or "\x00" in value or len(value.encode()) > ID_BYTES:
        return None
    return value


def number(value: Any, low: float = -math.inf, high: float = math.inf) -> float | None:
    """A JSON number (not a boolean) within [low, high], as a float; else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        result = float(value)
    except OverflowError:  # an integer beyond a double
        return None
    return result if math.isfinite(result) and low <= result <= high else None


def utc_time(value: Any) -> str | None:
    """An RFC 3339 date-time as UTC text of fixed width (so text order is time order); else None."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("t", "T").replace("z", "Z"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)  # schema-valid times carry an offset
        utc = parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None
    return (f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
            f"{utc.second:02d}.{utc.microsecond // 1000:03d}Z")


def iso_date(value: Any) -> str | None:
    """A YYYY-MM-DD date, or None."""
    if not isinstance(value, str) or len(value) != 10:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        return None


def text_set(value: Any, limit: int = SHORT) -> list[str]:
    """A list of text that is a set: the strings in it, sorted, once each."""
    if not isinstance(value, list):
        return []
    return sorted({t for t in (text(v, limit) for v in value) if t})


def _dict(value: Any) -> Json:
    return value if isinstance(value, dict) else {}


# ------------------------------------------------------------------------------------------------ flags
def _meets(observed: Any, op: Any, threshold: Any) -> bool:
    """Whether ``observed op threshold`` holds; values of different kinds never match."""
    a, b = number(observed), number(threshold)
    if op == "eq":
        if a is not None or b is not None:
            return a is not None and b is not None and a == b
        return observed is not None and type(observed) is type(threshold) and observed == threshold
    compare = _COMPARE.get(op) if isinstance(op, str) else None
    return compare is not None and a is not None and b is not None and compare(a, b)


def campaign_flags(observations: Json, campaign: Json | None) -> list[str]:
    """``campaign:<field>`` for each threshold of the campaign with ``refer`` true that the visit meets."""
    rules = (campaign or {}).get("fields")
    flags = []
    for rule in rules if isinstance(rules, list) else []:
        if not isinstance(rule, dict) or rule.get("refer") is not True or not isinstance(rule.get("field"), str):
            continue
        if _meets(observations.get(rule["field"]), rule.get("op"), rule.get("value")):
            flags.append(f"campaign:{text(rule['field'], SHORT)}")
    return flags


def risk_flags(observations: Any, campaign: Json | None = None) -> list[str]:
    """The sorted risk flags of a visit's observations, plus its campaign's referral thresholds."""
    obs = _dict(observations)
    flags = []
    systolic, diastolic = number(obs.get("bp_systolic")), number(obs.get("bp_diastolic"))
    if (systolic is not None and systolic >= BP_SYSTOLIC_HIGH) or \
            (diastolic is not None and diastolic >= BP_DIASTOLIC_HIGH):
        flags.append("bp_high")
    glucose = number(obs.get("glucose_mmol_l"))
    if glucose is not None and glucose >= GLUCOSE_HIGH:
        flags.append("glucose_high")
    if obs.get("malaria_rdt") == "positive":
        flags.append("malaria_positive")
    muac = number(obs.get("muac_mm"))
    if muac is not None and muac < MUAC_LOW:
        flags.append("muac_low")
    return sorted(set(flags + campaign_flags(obs, campaign)))


def campaign_positive(flags: Iterable[str]) -> bool:
    """Whether risk flags hold a campaign threshold flag (``campaign:<field>``): the visit counts as positive."""
    return any(flag.startswith("campaign:") for flag in flags)


# ------------------------------------------------------------------------------------------------ rows
def _household(b: Json, campaign: Json | None) -> Json:
    gps = _dict(b.get("gps"))
    return {"area": text(b.get("area"), AREA), "name": text(b.get("name")), "landmark": text(b.get("landmark")),
            "gps_lat": number(gps.get("lat"), -90, 90), "gps_lon": number(gps.get("lon"), -180, 180),
            "head_patient_id": ref(b.get("head_patient_id")), "updated_at": utc_time(b.get("updated_at"))}


def _patient(b: Json, campaign: Json | None) -> Json:
    return {"area": text(b.get("area"), AREA), "household_id": ref(b.get("household_id")),
            "given_name": text(b.get("given_name")), "family_name": text(b.get("family_name")),
            "sex": text(b.get("sex"), SHORT), "birth_date": iso_date(b.get("birth_date")),
            "estimated_age_years": number(b.get("estimated_age_years"), 0, 130),
            "phone": text(b.get("phone"), SHORT), "national_id": text(b.get("national_id"), SHORT),
            # No recorded consent means no sharing.
            "share_with_partners": _dict(b.get("consent")).get("share_with_partners") is True,
            "chronic_conditions": text_set(b.get("chronic_conditions"), TEXT),
            "merged_into": ref(b.get("merged_into")), "updated_at": utc_time(b.get("updated_at"))}


def _photos(attachments: Any) -> int:
    return sum(1 for a in _dict(attachments).values()
               if isinstance(a, dict) and str(a.get("content_type", "")).startswith("image/"))


def _visit(b: Json, campaign: Json | None) -> Json:
    observations = _dict(b.get("observations"))
    flags = risk_flags(observations, campaign)
    return {"patient_doc_id": ref(b.get("patient_id")), "chw": text(b.get("chw"), SHORT),
            "area": text(b.get("area"), AREA), "campaign_id": ref(b.get("campaign_id")),
            "household_id": ref(b.get("household_id")), "kind": text(b.get("kind"), SHORT),
            "visited_at": utc_time(b.get("visited_at")), "observations": observations,
            "risk_flags": flags, "campaign_positive": campaign_positive(flags),
            "photo_count": _photos(b.get("_attachments"))}


def _referral(b: Json, campaign: Json | None) -> Json:
    return {"patient_doc_id": ref(b.get("patient_id")), "visit_id": ref(b.get("visit_id")),
            "from_chw": text(b.get("from_chw"), SHORT), "to_facility": text(b.get("to_facility"), SHORT),
            "reason": text(b.get("reason")), "urgency": text(b.get("urgency"), SHORT),
            "status": text(b.get("status"), SHORT), "created_at": utc_time(b.get("created_at")),
            "updated_at": utc_time(b.get("updated_at")), "area": text(b.get("area"), AREA)}


def _campaign(b: Json, campaign: Json | None) -> Json:
    fields = b.get("fields")
    return {"name": text(b.get("name")), "condition": text(b.get("condition")),
            "start_date": iso_date(b.get("start_date")), "end_date": iso_date(b.get("end_date")),
            "areas": text_set(b.get("areas"), AREA), "fields": fields if isinstance(fields, list) else [],
            "eligibility": _dict(b.get("eligibility")), "targets": _dict(b.get("targets"))}


def _review(b: Json, campaign: Json | None) -> Json:
    return {"visit_id": ref(b.get("visit_id")), "chw": text(b.get("chw"), SHORT),
            "state": text(b.get("state"), SHORT), "comment": text(b.get("comment")),
            "reviewer": text(b.get("reviewer"), SHORT), "reviewed_at": utc_time(b.get("reviewed_at"))}


_PROJECT: dict[str, Callable[[Json, Json | None], Json]] = {
    "household": _household, "patient": _patient, "visit": _visit, "referral": _referral,
    "campaign": _campaign, "review": _review}


def table_of(body: Any) -> str | None:
    """The central table a body belongs in, or None for a document that is not a record."""
    kind = body.get("type") if isinstance(body, dict) else None
    return TABLES.get(kind) if isinstance(kind, str) else None


def project(body: Json, campaign: Json | None = None) -> Json:
    """The column values of a record body (``campaign``: the body of a visit's campaign, if any).

    :raise ValueError: ``body`` is not a record (see ``table_of``).
    """
    table = table_of(body)
    if table is None:
        raise ValueError("not a record document")
    return _PROJECT[table](body, campaign)


# ------------------------------------------------------------------------------------------------ patients
def survivor(patient_id: str, redirects: Mapping[str, str]) -> str:
    """The patient a record of ``patient_id`` counts for, following ``merged_into`` links.

    A chain that loops back on itself leaves the record with the patient it names.
    """
    seen, current = {patient_id}, patient_id
    while current in redirects:
        current = redirects[current]
        if current in seen:
            return patient_id
        seen.add(current)
    return current


def redirected(old: Mapping[str, str], new: Mapping[str, str]) -> set[str]:
    """Patient ids whose survivor may differ between two redirect maps.

    Only an id whose chain, in either map, passes through a changed link can move.
    """
    changed = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
    moved = set(changed)
    for links in (old, new):
        for start in links:
            seen, current = {start}, start
            while current in links and current not in changed:
                current = links[current]
                if current in seen:
                    break
                seen.add(current)
            if current in changed:
                moved.add(start)
    return moved


def derive_patient(visits: Iterable[tuple[str | None, str, Json, list[str]]],
                   referrals: Iterable[tuple[str | None, str | None, str | None]]) -> Json:
    """A patient's derived fields from its live visits and referrals.

    ``visits``: (visited_at, doc_id, observations, risk_flags); ``referrals``: (created_at,
    visit_id, status). The latest visit is the one with the greatest (visited_at, doc_id);
    a referral is needed when it has risk flags and no referral other than a cancelled one
    names it or was made at or after it.
    """
    ordered = sorted(visits, key=lambda v: (v[0] or "", v[1]))
    latest: Json = {}
    for _, _, observations, _ in ordered:
        latest.update({k: v for k, v in _dict(observations).items() if v is not None})
    if not ordered:
        return {"visit_count": 0, "last_visit_at": None, "latest_observations": {}, "risk_flags": [],
                "referral_needed": False}
    when, visit_id, _, flags = ordered[-1]
    referred = any(status != "cancelled" and (ref_visit == visit_id or (made or "") >= (when or ""))
                   for made, ref_visit, status in referrals)
    return {"visit_count": len(ordered), "last_visit_at": when, "latest_observations": latest,
            "risk_flags": list(flags), "referral_needed": bool(flags) and not referred}
