"""Design-document views, run in Node as CouchDB runs them in couchjs."""
from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.pouch import require_peer

MAP_BY_AREA = "function (doc) { if (doc.type === 'visit') { emit([doc.area, doc.day], doc.n); } }"


@pytest.fixture
def db(client: FlaskClient) -> str:
    require_peer()  # the same Node the peer tests need
    client.put("/couch/db")
    visits = [("north", 1, 2), ("north", 2, 3), ("south", 1, 5), ("east", 3, 1)]
    docs: list[dict[str, Any]] = [{"_id": f"v{i}", "type": "visit", "area": a, "day": d, "n": n}
                                  for i, (a, d, n) in enumerate(visits)]
    docs.append({"_id": "p1", "type": "patient"})
    docs.append({"_id": "_design/stats", "views": {
        "by_area": {"map": MAP_BY_AREA, "reduce": "_sum"},
        "js_max": {"map": MAP_BY_AREA, "reduce": "function (keys, values) { return Math.max.apply(null, values); }"},
        "conflicted": {"map": "function (doc) { if (doc._conflicts) emit(doc._id, doc._conflicts.length); }"}}})
    assert client.post("/couch/db/_bulk_docs", json={"docs": docs}).status_code == 201
    return "/couch/db/_design/stats/_view"


def test_map_rows_are_sorted_by_key_with_ranges(client: FlaskClient, db: str) -> None:
    body = client.get(f"{db}/by_area?reduce=false").get_json()
    assert [r["key"] for r in body["rows"]] == [["east", 3], ["north", 1], ["north", 2], ["south", 1]]
    assert body["total_rows"] == 4 and body["offset"] == 0
    ranged = client.get(f'{db}/by_area?reduce=false&startkey=["north"]&endkey=["north",{{}}]').get_json()
    assert [r["id"] for r in ranged["rows"]] == ["v0", "v1"] and ranged["offset"] == 1
    desc = client.get(f"{db}/by_area?reduce=false&descending=true&limit=1&include_docs=true").get_json()
    assert desc["rows"][0]["doc"]["area"] == "south"


def test_builtin_and_javascript_reduce_with_grouping(client: FlaskClient, db: str) -> None:
    assert client.get(f"{db}/by_area").get_json() == {"rows": [{"key": None, "value": 11}]}
    grouped = client.get(f"{db}/by_area?group_level=1").get_json()["rows"]
    assert grouped == [{"key": ["east"], "value": 1}, {"key": ["north"], "value": 5}, {"key": ["south"], "value": 5}]
    assert client.get(f"{db}/js_max").get_json() == {"rows": [{"key": None, "value": 5}]}


def test_map_functions_see_conflicts(client: FlaskClient, db: str) -> None:
    client.post("/couch/db/_bulk_docs", json={"new_edits": False, "docs": [
        {"_id": "c", "_rev": "1-a", "v": 1}, {"_id": "c", "_rev": "1-b", "v": 2}]})
    rows = client.get(f"{db}/conflicted").get_json()["rows"]
    assert rows == [{"id": "c", "key": "c", "value": 1}]


def test_bad_views_are_clear_errors(client: FlaskClient, db: str) -> None:
    assert client.get(f"{db}/nope").get_json() == {"error": "not_found", "reason": "missing_named_view"}
    client.put("/couch/db/_design/broken", json={"views": {"v": {"map": "function (doc) { emit(("}}})
    broken = client.get("/couch/db/_design/broken/_view/v")
    assert broken.status_code == 400 and broken.get_json()["error"] == "bad_request"
    assert client.get(f"{db}/by_area?include_docs=true").status_code == 400
