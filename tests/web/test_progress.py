"""A campaign's progress figures on a small known data set: per area, CHW, sex and age band."""
from __future__ import annotations

import base64
from typing import Any

from flask import Flask

from sync.records.campaigns import get_campaign
from sync.records.filters import parse_filters
from sync.records.progress import progress

from .camp_data import DB, load, sign_in

OLGA = {"Authorization": "Basic " + base64.b64encode(b"olga:password1").decode()}
ZERO = {"eligible": 0, "screened": 0, "positive": 0, "referred": 0, "completed": 0}


def _figures(app: Flask, campaign_id: str, **args: str) -> dict[str, Any]:
    with app.app_context():
        return progress(DB, get_campaign(DB, campaign_id), parse_filters(args))


def _counts(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("eligible", "screened", "positive", "referred", "completed")}


def test_progress_per_area_chw_sex_and_band(app: Flask) -> None:
    campaign_id = load(app)
    data = _figures(app, campaign_id)
    assert data["reference_date"] == "2026-01-01"
    assert data["totals"] == {"eligible": 5, "screened": 6, "positive": 3, "referred": 3, "completed": 1,
                              "target": 15, "coverage_target": 0.4, "coverage_eligible": 1.2, "positivity": 0.5,
                              "completion": 0.3333}
    areas = {r["area"]: (r["target"], _counts(r)) for r in data["areas"]}
    assert areas == {
        "north/d1": (10, {"eligible": 4, "screened": 5, "positive": 2, "referred": 2, "completed": 1}),
        "north/d1/v1": (4, {"eligible": 3, "screened": 4, "positive": 2, "referred": 2, "completed": 1}),
        "north/d1/v2": (None, {"eligible": 1, "screened": 1, "positive": 0, "referred": 0, "completed": 0}),
        "north/d2/v3": (5, {"eligible": 1, "screened": 1, "positive": 1, "referred": 1, "completed": 0})}
    assert [r["area"] for r in data["areas"]] == ["north/d1", "north/d1/v1", "north/d1/v2", "north/d2/v3"]
    chws = {r["chw"]: (r["villages"], r["assigned"], _counts(r)) for r in data["chws"]}
    assert chws == {
        "c1": (["north/d1/v1"], True, {"eligible": 3, "screened": 4, "positive": 2, "referred": 2, "completed": 1}),
        "c2": (["north/d1/v2"], True, {"eligible": 1, "screened": 1, "positive": 0, "referred": 0, "completed": 0}),
        "c3": (["north/d2/v3"], False, {"eligible": 1, "screened": 1, "positive": 1, "referred": 1, "completed": 0})}
    groups = [(r["sex"], r["band"], _counts(r)) for r in data["groups"]]
    assert groups == [
        ("female", "30-44", {"eligible": 2, "screened": 2, "positive": 1, "referred": 1, "completed": 0}),
        ("female", "45-59", {"eligible": 1, "screened": 2, "positive": 1, "referred": 1, "completed": 1}),
        ("female", "60+", {"eligible": 1, "screened": 0, "positive": 0, "referred": 0, "completed": 0}),
        ("male", "15-29", {"eligible": 0, "screened": 1, "positive": 1, "referred": 1, "completed": 0}),
        ("male", "30-44", {"eligible": 1, "screened": 1, "positive": 0, "referred": 0, "completed": 0}),
        ("male", "45-59", ZERO),
        ("male", "60+", ZERO)]


FILTERED = [
    ({"sex": "female"}, {"eligible": 4, "screened": 4, "positive": 2, "referred": 2, "completed": 1}, None),
    ({"chw": "c1"}, {"eligible": 3, "screened": 4, "positive": 2, "referred": 2, "completed": 1}, None),
    ({"area": "north/d1/v1"}, {"eligible": 3, "screened": 4, "positive": 2, "referred": 2, "completed": 1}, 4),
    ({"area": "north/d1"}, {"eligible": 4, "screened": 5, "positive": 2, "referred": 2, "completed": 1}, 10),
    ({"band": "30-44"}, {"eligible": 3, "screened": 3, "positive": 1, "referred": 1, "completed": 0}, None),
    ({"from": "2026-02-02", "to": "2026-03-01"},
     {"eligible": 5, "screened": 3, "positive": 1, "referred": 1, "completed": 0}, 15),
]


def test_progress_filters(app: Flask) -> None:
    campaign_id = load(app)
    for args, totals, target in FILTERED:
        data = _figures(app, campaign_id, **args)
        assert (_counts(data["totals"]), data["totals"]["target"]) == (totals, target), args


def test_progress_api_and_page(app: Flask) -> None:
    campaign_id = load(app)
    client = app.test_client()
    reply = client.get(f"/api/v1/campaigns/{campaign_id}/progress", query_string={"sex": "male"}, headers=OLGA)
    assert reply.status_code == 200
    assert _counts(reply.get_json()["totals"]) == {"eligible": 1, "screened": 2, "positive": 1, "referred": 1,
                                                   "completed": 0}
    bad = client.get(f"/api/v1/campaigns/{campaign_id}/progress", query_string={"band": "old"}, headers=OLGA)
    assert bad.status_code == 400 and "band must be one of" in bad.get_json()["reason"]
    assert client.get("/api/v1/campaigns/nope/progress", headers=OLGA).status_code == 404
    # The same figures on the page, under a session cookie.
    sign_in(client, "olga")
    page = client.get(f"/campaigns/{campaign_id}/progress")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Screened: 6 of a target of 15 (40.0%)" in html
    assert html.count("<image href=") == 4 and "<script" not in html
    svg = client.get(f"/campaigns/{campaign_id}/charts/coverage.svg", query_string={"area": "north/d1"})
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    assert b"<script" not in svg.data and b"north/d1/v1" in svg.data and b"north/d2/v3" not in svg.data
    assert svg.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert client.get(f"/campaigns/{campaign_id}/charts/pie.svg").status_code == 404


def test_another_organisers_campaign_is_not_found(app: Flask) -> None:
    campaign_id = load(app)
    omar = {"Authorization": "Basic " + base64.b64encode(b"omar:password1").decode()}
    client = app.test_client()
    for path in ("", "/progress", "/export.csv"):
        reply = client.get(f"/api/v1/campaigns/{campaign_id}{path}", headers=omar)
        assert reply.status_code == 404 and reply.get_json()["error"] == "not_found"
    assert client.get("/api/v1/campaigns", headers=omar).get_json()["total"] == 0
