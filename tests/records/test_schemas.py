"""The record schemas of docs/records.md: what passes, and the exact field paths of what does not."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sync.records.schemas import check_document, reason_of

STAMP = {"area": "north/district-3/village-12", "updated_at": "2026-11-20T09:15:00+03:00", "updated_by": "amina"}

GOOD: dict[str, dict[str, Any]] = {
    "household": {"type": "household", **STAMP, "name": "Otieno", "gps": {"lat": -1.2, "lon": 36.8, "accuracy_m": 8},
                  "head_patient_id": "patient-1"},
    "household_landmark_only": {"type": "household", **STAMP, "landmark": "behind the mosque"},
    "patient": {"type": "patient", **STAMP, "household_id": "hh-1", "given_name": "Amina", "family_name": "Otieno",
                "sex": "female", "birth_date": "1990-04-02", "phone": "+254 712-345 678", "national_id": "A123",
                "consent": {"share_with_partners": True}, "chronic_conditions": ["hypertension"],
                "merged_from": ["patient-9"]},
    "patient_estimated_age": {"type": "patient", **STAMP, "given_name": "Baraka", "sex": "male",
                              "estimated_age_years": 40, "family_name": None},
    "visit": {"type": "visit", **STAMP, "patient_id": "patient-1", "chw": "amina",
              "visited_at": "2026-11-20T09:00:00Z", "kind": "screening", "campaign_id": "campaign-htn",
              "observations": {"bp_systolic": 150, "bp_diastolic": 95, "glucose_mmol_l": 6.1, "weight_kg": 71.5,
                               "muac_mm": 260, "temperature_c": 36.8, "malaria_rdt": "negative",
                               "symptoms": ["headache"]},
              "_attachments": {"photo.jpg": {"content_type": "image/jpeg", "data": "/9j/"},
                               "old.png": {"stub": True}}},
    "referral": {"type": "referral", **STAMP, "patient_id": "patient-1", "visit_id": "visit-1", "from_chw": "amina",
                 "to_facility": "Kisumu County Hospital", "reason": "BP 150/95", "urgency": "urgent",
                 "status": "open", "created_at": "2026-11-20T09:05:00.250+03:00"},
    "campaign": {"type": "campaign", "name": "Hypertension 2026", "condition": "hypertension",
                 "areas": ["north", "north/district-3"], "start_date": "2026-11-01", "end_date": "2026-11-30",
                 "eligibility": {"min_age": 18, "max_age": 99, "sex": ["female", "male"]},
                 "fields": [{"field": "bp_systolic", "op": "gte", "value": 140, "refer": True},
                            {"field": "malaria_rdt", "op": "eq", "value": "positive"}],
                 "targets": {"north/district-3": 500}, "organiser": "otieno", "chws": ["amina"]},
    "review": {"type": "review", "visit_id": "visit-1", "chw": "amina", "state": "has_issues",
               "comment": "BP taken once only", "reviewer": "supervisor-1", "reviewed_at": "2026-11-21T10:00:00Z"},
}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_check_document_accepts_a_valid_document(name: str) -> None:
    assert check_document({"_id": name, "_rev": "1-abc", **GOOD[name]}) is None


@pytest.mark.parametrize("name", sorted(GOOD))
def test_check_document_keeps_and_ignores_unknown_fields(name: str) -> None:
    doc = {**copy.deepcopy(GOOD[name]), "form_version": 7, "extra": {"nested": [1, "x"]}}
    before = copy.deepcopy(doc)
    assert check_document(doc) is None
    assert doc == before  # checking never changes the document


def bad(base: str, /, **changes: Any) -> dict[str, Any]:
    """A copy of the good ``base`` with ``changes``; a value of ``...`` removes the field."""
    doc = copy.deepcopy(GOOD[base])
    for key, value in changes.items():
        if value is ...:
            doc.pop(key)
        else:
            doc[key] = value
    return doc


MISSING = "Missing data for required field."
NULL = "Field may not be null."
RANGE_BP = "Must be greater than or equal to 50 and less than or equal to 300."
BAD_CASES = [
    ("household_neither", bad("household", name=...), {"name": ["A household needs a name or a landmark."]}),
    ("household_blank_name", bad("household", name="  "), {"name": ["A household needs a name or a landmark."]}),
    ("household_long_name", bad("household", name="x" * 201), {"name": ["Longer than maximum length 200."]}),
    ("household_gps", bad("household", gps={"lat": 91, "lon": "36"}),
     {"gps.lat": ["Must be greater than or equal to -90 and less than or equal to 90."],
      "gps.lon": ["Not a valid number."]}),
    ("household_area", bad("household", area="North/x"),
     {"area": ["Not a valid area path (1 to 4 segments of a-z, 0-9 and -, joined by /)."]}),
    ("household_deep_area", bad("household", area="a/b/c/d/e"),
     {"area": ["Not a valid area path (1 to 4 segments of a-z, 0-9 and -, joined by /)."]}),
    ("household_stamp", bad("household", updated_at="2026-11-20T09:15:00", updated_by=...),
     {"updated_at": ["Not a valid RFC 3339 date-time with an offset."], "updated_by": [MISSING]}),
    ("patient_no_age", bad("patient", birth_date=...),
     {"birth_date": ["A patient needs a birth_date or an estimated_age_years."]}),
    ("patient_future_birth", bad("patient", birth_date="2999-01-01"), {"birth_date": ["Must not be in the future."]}),
    ("patient_bad_date", bad("patient", birth_date="02/04/1990"), {"birth_date": ["Not a valid date (YYYY-MM-DD)."]}),
    ("patient_age_range", bad("patient_estimated_age", estimated_age_years=131),
     {"estimated_age_years": ["Must be greater than or equal to 0 and less than or equal to 130."]}),
    ("patient_required", bad("patient", given_name="", sex=None),
     {"given_name": ["Must not be empty."], "sex": [NULL]}),
    ("patient_sex", bad("patient", sex="F"), {"sex": ["Must be one of: female, male, other, unknown."]}),
    ("patient_phone", bad("patient", phone="0712345678"),
     {"phone": ["Must be + and 6 to 20 digits (spaces and dashes allowed)."]}),
    ("patient_consent", bad("patient", consent={"share_with_partners": "yes"}),
     {"consent.share_with_partners": ["Not a valid boolean (true or false)."]}),
    ("patient_conditions", bad("patient", chronic_conditions=["hypertension", 3]),
     {"chronic_conditions.1": ["Not a valid string."]}),
    ("visit_bp_range", bad("visit", observations={"bp_systolic": 20, "bp_diastolic": 80}),
     {"observations.bp_systolic": [RANGE_BP]}),
    ("visit_bp_half", bad("visit", observations={"bp_systolic": 120}),
     {"observations.bp_diastolic": ["Blood pressure needs both bp_systolic and bp_diastolic."]}),
    ("visit_observations", bad("visit", observations={"temperature_c": "38", "malaria_rdt": "pos",
                                                      "symptoms": "cough"}),
     {"observations.temperature_c": ["Not a valid number."],
      "observations.malaria_rdt": ["Must be one of: positive, negative, invalid, not_done."],
      "observations.symptoms": ["Not a valid list."]}),
    ("visit_required", bad("visit", patient_id=..., kind="home", visited_at="yesterday"),
     {"patient_id": [MISSING], "kind": ["Must be one of: routine, antenatal, chronic_follow_up, screening."],
      "visited_at": ["Not a valid RFC 3339 date-time with an offset."]}),
    ("visit_photo_type", bad("visit", _attachments={"notes.pdf": {"content_type": "application/pdf", "data": "JQ=="}}),
     {"_attachments.notes.pdf.content_type": ["Must be one of: image/jpeg, image/png, image/webp."]}),
    ("referral", bad("referral", status="done", reason="x" * 501, created_at=...),
     {"status": ["Must be one of: open, received, completed, cancelled."],
      "reason": ["Longer than maximum length 500."], "created_at": [MISSING]}),
    ("campaign_dates", bad("campaign", start_date="2026-12-01"), {"end_date": ["Must not be before start_date."]}),
    ("campaign_areas", bad("campaign", areas=[]), {"areas": ["Must hold at least 1 item."]}),
    ("campaign_nested", bad("campaign", eligibility={"min_age": 60, "max_age": 40, "sex": ["f"]},
                            fields=[{"field": "bp", "op": "gte", "value": "140", "refer": 1}],
                            targets={"north": -1}),
     {"eligibility.max_age": ["Must be greater than or equal to min_age."],
      "eligibility.sex.0": ["Must be one of: female, male, other, unknown."],
      "fields.0.field": ["Must be one of: bp_systolic, bp_diastolic, glucose_mmol_l, weight_kg, muac_mm, "
                         "temperature_c, malaria_rdt, symptoms."],
      "fields.0.value": ["Must be a number for gte, gt, lte and lt."],
      "fields.0.refer": ["Not a valid boolean (true or false)."],
      "targets.north": ["Must be a whole number greater than or equal to 0."]}),
    ("review", bad("review", state="ok", reviewer=...),
     {"state": ["Must be one of: approved, has_issues, rejected."], "reviewer": [MISSING]}),
    ("no_type", bad("review", type=...),
     {"type": ["Unknown document type (none given); expected one of campaign, household, patient, referral, "
               "review, visit."]}),
    ("unknown_type", bad("review", type="memo"),
     {"type": ["Unknown document type ('memo'); expected one of campaign, household, patient, referral, "
               "review, visit."]}),
]


@pytest.mark.parametrize(("doc", "expected"), [(d, e) for _, d, e in BAD_CASES], ids=[n for n, _, _ in BAD_CASES])
def test_check_document_reports_each_invalid_field_by_path(doc: dict[str, Any], expected: dict[str, list[str]]) -> None:
    assert check_document(doc) == expected


@pytest.mark.parametrize("doc", [
    {"_id": "_design/app", "views": {}},
    {"_id": "_local/checkpoint", "type": "visit"},
    {"_id": "visit-1", "_rev": "2-a", "_deleted": True},
    {"_id": "visit-1", "_deleted": True, "type": "visit", "observations": {"bp_systolic": 1}},
])
def test_check_document_skips_design_local_and_deleted_documents(doc: dict[str, Any]) -> None:
    assert check_document(doc) is None


def test_check_document_ignores_revision_members() -> None:
    doc = {**GOOD["review"], "_id": "r", "_rev": "nonsense", "_revisions": {"start": 1, "ids": ["x"]},
           "_attachments": {"anything.bin": {"content_type": "application/octet-stream", "stub": True}}}
    assert check_document(doc) is None  # only a visit's attachments are photos


def test_reason_of_is_one_sorted_line() -> None:
    errors = {"observations.bp_systolic": [RANGE_BP], "kind": ["a.", "b."]}
    assert reason_of(errors) == f"Invalid fields: kind: a. b.; observations.bp_systolic: {RANGE_BP}"
    assert reason_of({"observations.bp_systolic": [RANGE_BP]}) == \
        "Invalid fields: observations.bp_systolic: " + RANGE_BP


def test_schemas_load_no_framework_or_database() -> None:
    code = ("import sys, sync.records.schemas\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'sqlalchemy', 'models', 'api')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
