"""sync.records.project: rows, risk flags at their thresholds, campaign thresholds, redirects, derived fields."""
from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.records.project import (derive_patient, iso_date, project, redirected, risk_flags, survivor, table_of,
                                  utc_time)


@pytest.mark.parametrize(("observations", "flags"), [
    ({}, []),
    ({"bp_systolic": 139, "bp_diastolic": 89}, []),
    ({"bp_systolic": 140, "bp_diastolic": 80}, ["bp_high"]),
    ({"bp_systolic": 120, "bp_diastolic": 90}, ["bp_high"]),
    ({"bp_systolic": 139.9, "bp_diastolic": 89.9}, []),
    ({"glucose_mmol_l": 11.0}, []),
    ({"glucose_mmol_l": 11.1}, ["glucose_high"]),
    ({"glucose_mmol_l": 25}, ["glucose_high"]),
    ({"malaria_rdt": "positive"}, ["malaria_positive"]),
    ({"malaria_rdt": "negative"}, []),
    ({"malaria_rdt": "invalid"}, []),
    ({"malaria_rdt": "not_done"}, []),
    ({"muac_mm": 115}, []),
    ({"muac_mm": 114.9}, ["muac_low"]),
    ({"muac_mm": 114}, ["muac_low"]),
    ({"bp_systolic": 180, "bp_diastolic": 110, "glucose_mmol_l": 12, "malaria_rdt": "positive", "muac_mm": 100},
     ["bp_high", "glucose_high", "malaria_positive", "muac_low"]),
    # Wrong kinds never flag: a boolean or a string is not a measurement.
    ({"bp_systolic": True, "glucose_mmol_l": "12", "muac_mm": None, "malaria_rdt": True}, []),
])
def test_risk_flags_at_their_threshold_edges(observations: dict[str, Any], flags: list[str]) -> None:
    assert risk_flags(observations) == flags


def campaign(op: str, value: Any, *, field: str = "bp_systolic", refer: bool = True) -> dict[str, Any]:
    return {"type": "campaign", "fields": [{"field": field, "op": op, "value": value, "refer": refer}]}


@pytest.mark.parametrize(("op", "threshold", "observed", "flagged"), [
    ("gte", 160, 160, True), ("gte", 160, 159, False),
    ("gt", 160, 161, True), ("gt", 160, 160, False),
    ("lte", 100, 100, True), ("lte", 100, 101, False),
    ("lt", 100, 99, True), ("lt", 100, 100, False),
    ("eq", 150, 150, True), ("eq", 150, 150.0, True), ("eq", 150, 151, False),
    ("between", 150, 150, False),  # unknown operator
    ("gte", "160", 170, False),    # a threshold that is not a number never compares
])
def test_campaign_thresholds_flag_at_their_edges(op: str, threshold: Any, observed: Any, flagged: bool) -> None:
    obs = {"bp_systolic": observed, "bp_diastolic": 70}
    expected = ["campaign:bp_systolic"] if flagged else []
    assert risk_flags(obs, campaign(op, threshold)) == sorted(expected + (["bp_high"] if observed >= 140 else []))


@pytest.mark.parametrize(("rule", "observations", "flags"), [
    (campaign("eq", "positive", field="malaria_rdt"), {"malaria_rdt": "positive"},
     ["campaign:malaria_rdt", "malaria_positive"]),
    (campaign("eq", "positive", field="malaria_rdt"), {"malaria_rdt": "negative"}, []),
    (campaign("eq", True, field="referred_before"), {"referred_before": 1}, []),  # 1 is not true
    (campaign("eq", True, field="referred_before"), {"referred_before": True}, ["campaign:referred_before"]),
    (campaign("gte", 7, field="glucose_mmol_l", refer=False), {"glucose_mmol_l": 8}, []),  # no referral asked
    (campaign("gte", 7, field="glucose_mmol_l"), {}, []),  # not measured
    ({"fields": [{"field": "muac_mm", "op": "lt", "value": 125, "refer": True},
                 {"field": "glucose_mmol_l", "op": "gte", "value": 7.0, "refer": True},
                 "not a rule", {"op": "gte", "value": 1, "refer": True}]},
     {"muac_mm": 120, "glucose_mmol_l": 7.0}, ["campaign:glucose_mmol_l", "campaign:muac_mm"]),
    (None, {"muac_mm": 120}, []),
    ({"fields": "not a list"}, {"muac_mm": 120}, []),
])
def test_campaign_rules(rule: dict[str, Any] | None, observations: dict[str, Any], flags: list[str]) -> None:
    assert risk_flags(observations, rule) == flags


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-11-20T09:15:00+03:00", "2026-11-20T06:15:00.000Z"),
    ("2026-11-20T06:15:00Z", "2026-11-20T06:15:00.000Z"),
    ("2026-11-20t06:15:00.1234567z", "2026-11-20T06:15:00.123Z"),
    ("2026-01-01T01:00:00+02:00", "2025-12-31T23:00:00.000Z"),
    ("2026-11-20 06:15:00-01:30", "2026-11-20T07:45:00.000Z"),
    ("2026-11-20T06:15:00", "2026-11-20T06:15:00.000Z"),  # no offset: read as UTC
    ("yesterday", None), ("2026-13-01T00:00:00Z", None), (1700000000, None), (None, None),
])
def test_times_become_fixed_width_utc_text(value: Any, expected: str | None) -> None:
    assert utc_time(value) == expected


def test_utc_text_sorts_as_time_does() -> None:
    times = ["2026-11-20T06:15:00.5+00:00", "2026-11-20T06:15:00Z", "2026-11-20T08:14:59+02:00"]
    assert sorted(times, key=lambda t: utc_time(t) or "") == [times[2], times[1], times[0]]


@pytest.mark.parametrize(("value", "expected"), [
    ("2020-02-29", "2020-02-29"), ("2021-02-29", None), ("2020-2-9", None), ("20200229", None), (20200229, None)])
def test_dates(value: Any, expected: str | None) -> None:
    assert iso_date(value) == expected


@pytest.mark.parametrize(("body", "expected"), [
    ({"type": "household", "area": "north/d1", "name": "Banda", "landmark": "by the well",
      "gps": {"lat": -13.9, "lon": 33.7, "accuracy_m": 5}, "head_patient_id": "pt-1",
      "updated_at": "2026-03-01T10:00:00+02:00"},
     {"area": "north/d1", "name": "Banda", "landmark": "by the well", "gps_lat": -13.9, "gps_lon": 33.7,
      "head_patient_id": "pt-1", "updated_at": "2026-03-01T08:00:00.000Z"}),
    ({"type": "household", "gps": {"lat": 91, "lon": "33"}},
     {"area": None, "name": None, "landmark": None, "gps_lat": None, "gps_lon": None, "head_patient_id": None,
      "updated_at": None}),
    ({"type": "patient", "area": "north/d1", "household_id": "hh-1", "given_name": "Amina", "family_name": "Phiri",
      "sex": "female", "birth_date": "1990-05-04", "phone": "+265 999 123 456", "national_id": "MW-1",
      "consent": {"share_with_partners": True}, "chronic_conditions": ["hiv", "diabetes", "hiv"],
      "updated_at": "2026-03-01T08:00:00Z"},
     {"area": "north/d1", "household_id": "hh-1", "given_name": "Amina", "family_name": "Phiri", "sex": "female",
      "birth_date": "1990-05-04", "estimated_age_years": None, "phone": "+265 999 123 456", "national_id": "MW-1",
      "share_with_partners": True, "chronic_conditions": ["diabetes", "hiv"], "merged_into": None,
      "updated_at": "2026-03-01T08:00:00.000Z"}),
    ({"type": "patient", "given_name": "X\x00Y", "estimated_age_years": 40.5, "consent": {"share_with_partners": 1},
      "merged_into": "pt-2"},
     {"area": None, "household_id": None, "given_name": "XY", "family_name": None, "sex": None, "birth_date": None,
      "estimated_age_years": 40.5, "phone": None, "national_id": None, "share_with_partners": False,
      "chronic_conditions": [], "merged_into": "pt-2", "updated_at": None}),
    ({"type": "visit", "patient_id": "pt-1", "chw": "amina", "area": "north/d1", "campaign_id": "cp-1",
      "household_id": "hh-1", "kind": "screening", "visited_at": "2026-03-02T12:00:00+02:00",
      "observations": {"bp_systolic": 150, "bp_diastolic": 95},
      "_attachments": {"a.jpg": {"content_type": "image/jpeg"}, "b.png": {"content_type": "image/png"},
                       "n.txt": {"content_type": "text/plain"}}},
     {"patient_doc_id": "pt-1", "chw": "amina", "area": "north/d1", "campaign_id": "cp-1", "household_id": "hh-1",
      "kind": "screening", "visited_at": "2026-03-02T10:00:00.000Z",
      "observations": {"bp_systolic": 150, "bp_diastolic": 95}, "risk_flags": ["bp_high"], "campaign_positive": False,
      "photo_count": 2}),
    ({"type": "visit", "patient_id": ["not", "an", "id"], "observations": "none"},
     {"patient_doc_id": None, "chw": None, "area": None, "campaign_id": None, "household_id": None, "kind": None,
      "visited_at": None, "observations": {}, "risk_flags": [], "campaign_positive": False,
      "photo_count": 0}),
    ({"type": "referral", "patient_id": "pt-1", "visit_id": "vi-1", "from_chw": "amina", "to_facility": "Dowa DH",
      "reason": "BP 180/110", "urgency": "urgent", "status": "open", "created_at": "2026-03-02T10:00:00Z",
      "updated_at": "2026-03-03T10:00:00Z", "area": "north/d1"},
     {"patient_doc_id": "pt-1", "visit_id": "vi-1", "from_chw": "amina", "to_facility": "Dowa DH",
      "reason": "BP 180/110", "urgency": "urgent", "status": "open", "created_at": "2026-03-02T10:00:00.000Z",
      "updated_at": "2026-03-03T10:00:00.000Z", "area": "north/d1"}),
    ({"type": "campaign", "name": "HTN", "condition": "hypertension", "areas": ["south", "north", "north"],
      "start_date": "2026-01-01", "end_date": "2026-06-30", "eligibility": {"min_age": 18},
      "fields": [{"field": "bp_systolic", "op": "gte", "value": 160, "refer": True}], "targets": {"north": 100}},
     {"name": "HTN", "condition": "hypertension", "start_date": "2026-01-01", "end_date": "2026-06-30",
      "areas": ["north", "south"], "fields": [{"field": "bp_systolic", "op": "gte", "value": 160, "refer": True}],
      "eligibility": {"min_age": 18}, "targets": {"north": 100}}),
    ({"type": "review", "visit_id": "vi-1", "chw": "amina", "state": "has_issues", "comment": "no BP",
      "reviewer": "sup", "reviewed_at": "2026-03-04T09:00:00+01:00"},
     {"visit_id": "vi-1", "chw": "amina", "state": "has_issues", "comment": "no BP", "reviewer": "sup",
      "reviewed_at": "2026-03-04T08:00:00.000Z"}),
])
def test_project_each_type(body: dict[str, Any], expected: dict[str, Any]) -> None:
    assert project(body) == expected


def test_a_visit_takes_its_campaign_thresholds() -> None:
    body = {"type": "visit", "observations": {"bp_systolic": 165, "bp_diastolic": 70}}
    flagged, plain = project(body, campaign("gte", 160)), project(body)
    assert flagged["risk_flags"] == ["bp_high", "campaign:bp_systolic"] and flagged["campaign_positive"] is True
    assert plain["risk_flags"] == ["bp_high"] and plain["campaign_positive"] is False


@pytest.mark.parametrize("body", [None, {}, {"type": "thing"}, {"type": 3}, {"type": ["visit"]}, "visit"])
def test_non_records_have_no_table(body: Any) -> None:
    assert table_of(body) is None
    with pytest.raises(ValueError):
        project(body)


def test_an_id_too_long_to_be_a_document_names_nothing() -> None:
    assert project({"type": "visit", "patient_id": "é" * 1001})["patient_doc_id"] is None
    assert project({"type": "visit", "patient_id": "é" * 1000})["patient_doc_id"] == "é" * 1000


@pytest.mark.parametrize(("start", "links", "expected"), [
    ("a", {}, "a"),
    ("a", {"a": "b"}, "b"),
    ("a", {"a": "b", "b": "c"}, "c"),
    ("a", {"a": "b", "b": "a"}, "a"),          # a loop keeps the record where it was sent
    ("a", {"a": "b", "b": "c", "c": "b"}, "a"),
    ("a", {"a": "a"}, "a"),
])
def test_survivor_follows_chains_and_stops_at_loops(start: str, links: dict[str, str], expected: str) -> None:
    assert survivor(start, links) == expected


@pytest.mark.parametrize(("old", "new", "moved"), [
    ({}, {}, set()),
    ({}, {"b": "c"}, {"b"}),
    ({"a": "b"}, {"a": "b", "b": "c"}, {"a", "b"}),   # a's survivor moves from b to c
    ({"a": "b", "b": "c"}, {"a": "b"}, {"a", "b"}),   # the undo moves both back
    ({"a": "b", "x": "y"}, {"a": "b", "x": "z"}, {"x"}),
])
def test_redirected_finds_every_id_whose_survivor_can_move(old: dict[str, str], new: dict[str, str],
                                                           moved: set[str]) -> None:
    assert redirected(old, new) == moved
    every = set(old) | set(new) | set(old.values()) | set(new.values())
    assert {p for p in every if survivor(p, old) != survivor(p, new)} <= moved


def test_derive_patient_takes_each_observations_latest_value() -> None:
    visits = [("2026-03-01T10:00:00.000Z", "v1", {"bp_systolic": 150, "bp_diastolic": 95, "weight_kg": 60},
               ["bp_high"]),
              ("2026-03-05T10:00:00.000Z", "v3", {"weight_kg": 58, "muac_mm": None}, []),
              ("2026-03-03T10:00:00.000Z", "v2", {"bp_systolic": 130, "bp_diastolic": 80, "muac_mm": 120}, [])]
    assert derive_patient(visits, []) == {
        "visit_count": 3, "last_visit_at": "2026-03-05T10:00:00.000Z",
        "latest_observations": {"bp_systolic": 130, "bp_diastolic": 80, "weight_kg": 58, "muac_mm": 120},
        "risk_flags": [], "referral_needed": False}


@pytest.mark.parametrize(("referrals", "needed"), [
    ([], True),
    ([("2026-03-05T10:00:00.000Z", None, "open")], False),          # made at the visit
    ([("2026-03-04T10:00:00.000Z", "v2", "completed")], False),     # names the visit
    ([("2026-03-04T10:00:00.000Z", "v1", "open")], True),           # an older visit's referral
    ([("2026-03-06T10:00:00.000Z", "v2", "cancelled")], True),
])
def test_referral_needed_until_the_latest_flagged_visit_is_referred(referrals: list[Any], needed: bool) -> None:
    visits = [("2026-03-01T10:00:00.000Z", "v1", {}, ["bp_high"]), ("2026-03-05T10:00:00.000Z", "v2", {}, ["muac_low"])]
    derived = derive_patient(visits, referrals)
    assert derived["referral_needed"] is needed and derived["risk_flags"] == ["muac_low"]


def test_ties_on_time_are_broken_by_doc_id() -> None:
    when = "2026-03-01T10:00:00.000Z"
    derived = derive_patient([(when, "b", {"x": 2}, ["bp_high"]), (when, "a", {"x": 1}, [])], [])
    assert derived["latest_observations"] == {"x": 2} and derived["risk_flags"] == ["bp_high"]
    assert derive_patient([], []) == {"visit_count": 0, "last_visit_at": None, "latest_observations": {},
                                      "risk_flags": [], "referral_needed": False}


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
FIELDS = ["area", "name", "gps", "patient_id", "given_name", "birth_date", "consent", "chronic_conditions",
          "observations", "visited_at", "_attachments", "fields", "areas", "merged_into", "campaign_id", "status"]


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(["household", "patient", "visit", "referral", "campaign", "review"]),
       values=st.dictionaries(st.sampled_from(FIELDS), JSON),
       rule=st.none() | st.fixed_dictionaries({"fields": JSON | st.lists(st.dictionaries(
           st.sampled_from(["field", "op", "value", "refer"]), JSON | st.sampled_from(["gte", "eq", "observations"])),
           max_size=3)}))
def test_projection_never_raises_on_odd_values(kind: str, values: dict[str, Any], rule: Any) -> None:
    row = project({**values, "type": kind}, rule)
    assert isinstance(row, dict) and all(isinstance(k, str) for k in row)


def test_the_module_is_pure() -> None:
    import ast
    import sys
    from pathlib import Path

    import sync.records.project as module
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names} == set()
