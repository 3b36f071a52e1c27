"""Field types and rules the record schemas (sync.records.schemas) are built from.

Values are checked as JSON sends them: a number as a string, or ``1`` for ``true``, is
refused rather than converted, because the stored document is the one the tablet sent.

marshmallow only: no Flask, no database.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Any

from marshmallow import ValidationError, fields, validate

Errors = dict[str, list[str]]

AREA = re.compile(r"^[a-z0-9][a-z0-9-]*(/[a-z0-9][a-z0-9-]*){0,3}$")
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PHONE = re.compile(r"^\+[0-9 -]+$")
SEXES = ("female", "male", "other", "unknown")
PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp")
OBSERVATIONS = ("bp_systolic", "bp_diastolic", "glucose_mmol_l", "weight_kg", "muac_mm", "temperature_c",
                "malaria_rdt", "symptoms")


def is_given(data: dict[str, Any], key: str) -> bool:
    """Whether ``key`` holds a value (not missing, null or blank text)."""
    value = data.get(key)
    return value is not None and not (isinstance(value, str) and not value.strip())


def not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be empty.")


def not_future(born: date) -> None:
    # A day of slack: the tablet's today may already be tomorrow in UTC.
    if born > datetime.now(timezone.utc).date() + timedelta(days=1):
        raise ValidationError("Must not be in the future.")


def phone_rule(value: str) -> None:
    digits = sum(c.isdigit() for c in value)
    if not PHONE.match(value) or not 6 <= digits <= 20:
        raise ValidationError("Must be + and 6 to 20 digits (spaces and dashes allowed).")


class Number(fields.Float):
    """A JSON number: a numeric string or a boolean is refused, not converted."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Bool(fields.Field):
    """A JSON ``true`` or ``false`` (marshmallow's Boolean would take ``"yes"`` and ``1``)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("Not a valid boolean (true or false).")
        return value


class Parsed(fields.String):
    """Text in a fixed format, parsed so that rules can compare it (dates with dates)."""

    pattern = DATE
    message = "Not a valid date (YYYY-MM-DD)."

    def parse(self, text: str) -> Any:
        return date.fromisoformat(text)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            if not self.pattern.match(text):
                raise ValueError(text)
            return self.parse(text)
        except ValueError:
            raise ValidationError(self.message) from None


class DateText(Parsed):
    """A calendar date written ``YYYY-MM-DD``."""


class DateTimeText(Parsed):
    """An RFC 3339 date-time with an offset, such as ``2026-11-20T09:15:00+03:00``."""

    pattern = DATE_TIME
    message = "Not a valid RFC 3339 date-time with an offset."

    def parse(self, text: str) -> Any:
        return datetime.fromisoformat(text.upper().replace(" ", "T"))


class Targets(fields.Field):
    """``{area path: count}`` with counts ≥ 0; errors are keyed by the area path."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, int]:
        if not isinstance(value, dict):
            raise ValidationError("Not a valid mapping of area paths to counts.")
        errors: dict[str, list[str]] = {}
        for key, count in value.items():
            if not AREA.match(key):
                errors[key] = [AREA_MESSAGE]
            elif isinstance(count, bool) or not isinstance(count, int) or count < 0:
                errors[key] = ["Must be a whole number greater than or equal to 0."]
        if errors:
            raise ValidationError(errors)
        return value


class Photos(fields.Field):
    """A visit's ``_attachments``: photos. A stub without a type refers to one already stored."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValidationError("Not a valid attachments object.")
        errors = {}
        for name, entry in value.items():
            ctype = entry.get("content_type") if isinstance(entry, dict) else None
            if ctype is None and isinstance(entry, dict) and entry.get("stub"):
                continue
            if ctype not in PHOTO_TYPES:
                errors[name] = {"content_type": [f"Must be one of: {', '.join(PHOTO_TYPES)}."]}
        if errors:
            raise ValidationError(errors)
        return value


AREA_MESSAGE = "Not a valid area path (1 to 4 segments of a-z, 0-9 and -, joined by /)."


def text(required: bool = False, max_len: int | None = None) -> fields.String:
    """A text field; a required one must not be blank."""
    rules: list[Any] = [not_blank] if required else []
    if max_len is not None:
        rules.append(validate.Length(max=max_len))
    return fields.String(required=required, allow_none=not required, validate=rules)


def one_of(choices: tuple[str, ...], required: bool = False) -> fields.String:
    """A text field that must be one of ``choices``."""
    return fields.String(required=required, allow_none=not required, validate=validate.OneOf(choices))


def number(low: float, high: float | None = None) -> Number:
    """An optional number within ``low``..``high``."""
    return Number(allow_none=True, validate=validate.Range(min=low, max=high))


def text_list(item: fields.Field | None = None, required: bool = False, min_len: int = 0) -> fields.List:
    """A list of text (or of ``item``)."""
    rules = [validate.Length(min=min_len, error="Must hold at least {min} item.")] if min_len else []
    return fields.List(item or fields.String(), required=required, allow_none=not required, validate=rules)


def area_path(required: bool = False) -> fields.String:
    return fields.String(required=required, allow_none=not required,
                         validate=validate.Regexp(AREA, error=AREA_MESSAGE))
