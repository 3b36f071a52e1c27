"""Mango selector matching, case by case, as CouchDB's mango_selector tests state it."""
from __future__ import annotations

from typing import Any

import pytest

from sync.errors import BadRequest
from sync.selector import collate, matches, validate

DOC: dict[str, Any] = {"_id": "p1", "type": "patient", "age": 34, "sex": "f", "name": {"given": "Fatima"},
                       "conditions": ["diabetes", "hypertension"], "bp": [150, 95], "visits": 3,
                       "a.b": 1, "flag": None, "ok": True}

CASES = [
    ({"type": "patient"}, True),
    ({"type": "visit"}, False),
    ({"age": {"$gt": 30, "$lt": 40}}, True),
    ({"age": {"$gte": 35}}, False),
    ({"age": {"$ne": 34}}, False),
    ({"missing": {"$ne": 1}}, False),  # a missing field matches nothing but $exists: false
    ({"missing": {"$exists": False}}, True),
    ({"age": {"$exists": True}}, True),
    ({"name.given": "Fatima"}, True),
    ({"name": {"given": "Fatima"}}, True),
    ({"a\\.b": 1}, True),
    ({"sex": {"$in": ["f", "x"]}}, True),
    ({"sex": {"$nin": ["f"]}}, False),
    ({"conditions": {"$all": ["hypertension", "diabetes"]}}, True),
    ({"conditions": {"$size": 2}}, True),
    ({"conditions": {"$elemMatch": {"$eq": "diabetes"}}}, True),
    ({"bp": {"$allMatch": {"$gt": 90}}}, True),
    ({"bp": {"$elemMatch": {"$gte": 140}}}, True),
    ({"visits": {"$mod": [2, 1]}}, True),
    ({"name.given": {"$regex": "^Fat"}}, True),
    ({"flag": {"$type": "null"}}, True),
    ({"ok": {"$type": "boolean"}}, True),
    ({"age": {"$type": "string"}}, False),
    ({"$or": [{"age": {"$lt": 5}}, {"sex": "f"}]}, True),
    ({"$and": [{"age": {"$lt": 5}}, {"sex": "f"}]}, False),
    ({"$nor": [{"age": {"$lt": 5}}, {"sex": "m"}]}, True),
    ({"$not": {"type": "patient"}}, False),
    ({"age": {"$not": {"$lt": 18}}}, True),
    ({"_id": {"$gt": "p0"}}, True),
    ({}, True),
]


@pytest.mark.parametrize("selector,expected", CASES)
def test_selector_matches_like_couchdb(selector: dict[str, Any], expected: bool) -> None:
    validate(selector)
    assert matches(selector, DOC) is expected


@pytest.mark.parametrize("selector", [
    [], {"age": {"$bogus": 1}}, {"$or": {"a": 1}}, {"a": {"$in": 3}}, {"a": {"$size": "2"}},
    {"a": {"$mod": [0, 1]}}, {"a": {"$regex": "("}}, {"a": {"$type": "date"}}, {"a": {"$exists": "yes"}},
])
def test_malformed_selectors_are_refused(selector: Any) -> None:
    with pytest.raises(BadRequest):
        validate(selector)


def test_collation_orders_types_as_couchdb() -> None:
    ordered = [None, False, True, -1, 0, 2.5, "", "a", "b", [], [1], {}, {"a": 1}]
    for i, low in enumerate(ordered):
        for high in ordered[i + 1:]:
            assert collate(low, high) == -1 and collate(high, low) == 1
        assert collate(low, low) == 0
