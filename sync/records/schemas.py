"""The schema of each record type (docs/records.md), checked on every write to the records database.

``check_document(doc)`` returns None for a valid document, or the errors keyed by dotted field
path (``"observations.bp_systolic"``); ``reason_of(errors)`` makes the one-line reason a
tablet and a supervisor read. Fields the schema does not name are kept and never checked
(``unknown = INCLUDE``): a tablet on another form version must not lose what it recorded.
Values are checked as JSON sends them: a number as a string, or ``1`` for ``true``, is refused
rather than converted, because the stored document is the one the tablet sent. An optional
field may be ``null`` (not recorded); a required one may not, nor be an empty string.

marshmallow only: no Flask, no database (the module is pure apart from marshmallow).
"""
from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from .schemafields import (OBSERVATIONS, SEXES, Bool, DateText, DateTimeText, Errors, Number, Photos, Targets,
                           is_given, not_future, phone_rule, area_path, number, one_of, text, text_list)

__all__ = ["Errors", "check_document", "reason_of"]


class Open(Schema):
    """Every schema keeps the fields it does not name."""

    class Meta:
        unknown = INCLUDE


class Shared(Open):
    """Records devices edit: scoped by area, stamped with the last edit."""

    area = area_path(required=True)
    updated_at = DateTimeText(required=True)
    updated_by = text(required=True)


class Gps(Open):
    lat = Number(required=True, validate=validate.Range(min=-90, max=90))
    lon = Number(required=True, validate=validate.Range(min=-180, max=180))
    accuracy_m = number(0)


class Household(Shared):
    name = text(max_len=200)
    landmark = text(max_len=200)
    gps = fields.Nested(Gps, allow_none=True)
    head_patient_id = text()

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def name_or_landmark(self, data: Any, original_data: Any, **kwargs: Any) -> None:
        if isinstance(original_data, dict) and not (is_given(original_data, "name")
                                                    or is_given(original_data, "landmark")):
            raise ValidationError("A household needs a name or a landmark.", field_name="name")


class Consent(Open):
    share_with_partners = Bool(required=True)


class Patient(Shared):
    household_id = text()
    given_name = text(required=True, max_len=100)
    family_name = text(max_len=100)
    sex = one_of(SEXES, required=True)
    birth_date = DateText(allow_none=True, validate=not_future)
    estimated_age_years = number(0, 130)
    phone = fields.String(allow_none=True, validate=phone_rule)
    national_id = text(max_len=50)
    consent = fields.Nested(Consent, allow_none=True)
    chronic_conditions = text_list()
    merged_into = text()
    merged_from = text_list()

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def age_known(self, data: Any, original_data: Any, **kwargs: Any) -> None:
        if not isinstance(original_data, dict):
            return
        if not (is_given(original_data, "birth_date") or is_given(original_data, "estimated_age_years")):
            raise ValidationError("A patient needs a birth_date or an estimated_age_years.",
                                  field_name="birth_date")


class Observations(Open):
    bp_systolic = number(50, 300)
    bp_diastolic = number(20, 200)
    glucose_mmol_l = number(0.5, 50)
    weight_kg = number(0.2, 400)
    muac_mm = number(50, 400)
    temperature_c = number(30, 45)
    malaria_rdt = one_of(("positive", "negative", "invalid", "not_done"))
    symptoms = text_list()

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def both_pressures(self, data: Any, original_data: Any, **kwargs: Any) -> None:
        if not isinstance(original_data, dict):
            return
        systolic, diastolic = is_given(original_data, "bp_systolic"), is_given(original_data, "bp_diastolic")
        if systolic != diastolic:
            missing = "bp_diastolic" if systolic else "bp_systolic"
            raise ValidationError("Blood pressure needs both bp_systolic and bp_diastolic.", field_name=missing)


class Visit(Shared):
    patient_id = text(required=True)
    chw = text(required=True)
    visited_at = DateTimeText(required=True)
    kind = one_of(("routine", "antenatal", "chronic_follow_up", "screening"), required=True)
    household_id = text()
    campaign_id = text()
    notes = text(max_len=5000)
    observations = fields.Nested(Observations, allow_none=True)
    attachments = Photos(data_key="_attachments", allow_none=True)


class Referral(Shared):
    patient_id = text(required=True)
    visit_id = text()
    from_chw = text(required=True)
    to_facility = text(required=True)
    reason = text(required=True, max_len=500)
    urgency = one_of(("routine", "urgent", "emergency"))
    status = one_of(("open", "received", "completed", "cancelled"), required=True)
    created_at = DateTimeText(required=True)
    status_note = text()


class Eligibility(Open):
    min_age = number(0, 130)
    max_age = number(0, 130)
    sex = text_list(fields.String(validate=validate.OneOf(SEXES)))

    @validates_schema(skip_on_field_errors=False)
    def age_order(self, data: Any, **kwargs: Any) -> None:
        low, high = data.get("min_age"), data.get("max_age")
        if low is not None and high is not None and low > high:
            raise ValidationError("Must be greater than or equal to min_age.", field_name="max_age")


class Threshold(Open):
    field = one_of(OBSERVATIONS, required=True)
    op = one_of(("gte", "gt", "lte", "lt", "eq"), required=True)
    value = fields.Raw(required=True)
    refer = Bool(allow_none=True)

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def comparable(self, data: Any, original_data: Any, **kwargs: Any) -> None:
        if not isinstance(original_data, dict) or original_data.get("op") not in ("gte", "gt", "lte", "lt"):
            return
        value = original_data.get("value")
        if "value" in original_data and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValidationError("Must be a number for gte, gt, lte and lt.", field_name="value")


class Campaign(Open):
    name = text()
    condition = text(required=True)
    areas = text_list(area_path(), required=True, min_len=1)
    start_date = DateText(allow_none=True)
    end_date = DateText(allow_none=True)
    eligibility = fields.Nested(Eligibility, allow_none=True)
    fields_ = fields.List(fields.Nested(Threshold), data_key="fields", allow_none=True)
    targets = Targets(allow_none=True)
    organiser = text()
    chws = text_list()

    @validates_schema(skip_on_field_errors=False)
    def date_order(self, data: Any, **kwargs: Any) -> None:
        start, end = data.get("start_date"), data.get("end_date")
        if start is not None and end is not None and start > end:
            raise ValidationError("Must not be before start_date.", field_name="end_date")


class Review(Open):
    visit_id = text(required=True)
    chw = text(required=True)
    state = one_of(("approved", "has_issues", "rejected"), required=True)
    comment = text(max_len=2000)
    reviewer = text(required=True)
    reviewed_at = DateTimeText(required=True)


SCHEMAS: dict[str, Schema] = {"household": Household(), "patient": Patient(), "visit": Visit(),
                              "referral": Referral(), "campaign": Campaign(), "review": Review()}


def _flatten(messages: dict[Any, Any], prefix: str = "") -> Errors:
    """marshmallow's nested messages as ``{"a.b.0.c": [...]}``."""
    out: Errors = {}
    for key, value in messages.items():
        path = prefix if key == "_schema" else f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            for sub, found in _flatten(value, path).items():
                out.setdefault(sub, []).extend(found)
        else:
            out.setdefault(path or "document", []).extend(str(m) for m in value)
    return out


def check_document(doc: dict[str, Any]) -> Errors | None:
    """Errors of ``doc`` by dotted field path, or None when it is valid (or is not checked)."""
    doc_id = doc.get("_id")
    if isinstance(doc_id, str) and doc_id.startswith(("_design/", "_local/")):
        return None
    if doc.get("_deleted") is True:
        return None
    kind = doc.get("type")
    schema = SCHEMAS.get(kind) if isinstance(kind, str) else None
    if schema is None:
        given = "none given" if kind is None else repr(kind)[:60]
        return {"type": [f"Unknown document type ({given}); expected one of {', '.join(sorted(SCHEMAS))}."]}
    body = {k: v for k, v in doc.items() if not k.startswith("_") or k == "_attachments"}
    return _flatten(schema.validate(body)) or None


def reason_of(errors: Errors) -> str:
    """One line naming every invalid field and what is wrong with it, in a fixed order."""
    return "Invalid fields: " + "; ".join(f"{path}: {' '.join(errors[path])}" for path in sorted(errors))
