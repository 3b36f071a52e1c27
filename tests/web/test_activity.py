"""CHW activity (``/activity``, ``/activity/visits.svg`` and ``GET /api/v1/activity``)."""
from __future__ import annotations

import time

import pytest
from flask import Flask

from models import Device, db
from sync.devices import create_code, enrol, report_held

from .test_supervise import refused_visit
from .test_visit_log import DB, ENGINES, V1, V2, World, build, day, shared_world

DAYS = 86400
shared = pytest.fixture(shared_world, scope="module", params=ENGINES, name="shared")


@pytest.fixture
def team(app: Flask) -> World:
    """The shared world, plus: amina's tablet last seen five days ago and reporting 4 edits waiting,
    bashir's seen just now, zed's (outside the team) never; one refused visit from amina."""
    world = build(app)
    now = time.time()
    with app.app_context():
        for user, seen in (("amina", now - 5 * DAYS), ("bashir", now - 60), ("zed", None)):
            info, _ = enrol(create_code(user), f"{user}-tablet")
            device = db.session.get(Device, info.device_id)
            device.last_seen_at, device.enrolled_at = seen, now - 30 * DAYS
            db.session.commit()
            if user == "amina":
                report_held(info.device_id, DB, ["pt-1", "vs-a1"], 4, None)
    refused_visit(world, "amina", V1)
    return world


def test_the_api_reports_each_chw_of_the_team(team: World) -> None:
    body = team.api("sara").get("/api/v1/activity").get_json()
    assert (body["days"], body["stale_days"]) == (14, 3)
    chws = {c["name"]: c for c in body["chws"]}
    assert set(chws) == {"amina", "bashir"}  # zed works elsewhere
    amina, bashir = chws["amina"], chws["bashir"]
    assert amina["villages"] == [V1] and bashir["villages"] == [V2]
    assert len(amina["visits_per_day"]) == 14 and list(amina["visits_per_day"])[-1] == day(0)
    assert {d: n for d, n in amina["visits_per_day"].items() if n} == {day(1): 1, day(3): 1}  # day 20 is too old
    assert {d: n for d, n in bashir["visits_per_day"].items() if n} == {day(2): 1, day(5): 1}
    assert (amina["visits_total"], amina["refused_held"], amina["refused_total"], amina["pending"]) == (2, 1, 1, 4)
    assert (bashir["refused_held"], bashir["pending"]) == (0, None)
    [tablet] = amina["devices"]
    assert tablet["name"] == "amina-tablet" and tablet["stale"] is True and tablet["held"] == 2
    assert amina["stale"] is True and bashir["stale"] is False
    assert abs(amina["last_sync"] - (time.time() - 5 * DAYS)) < 60
    relaxed = {c["name"]: c["stale"] for c in team.api("sara").get(
        "/api/v1/activity", query_string={"stale_days": 7}).get_json()["chws"]}
    assert relaxed == {"amina": False, "bashir": False}
    everyone = {c["name"]: c for c in team.api("admin").get("/api/v1/activity").get_json()["chws"]}
    assert set(everyone) == {"amina", "bashir", "zed"} and everyone["zed"]["devices"][0]["stale"] is True


def test_the_page_highlights_late_devices_and_draws_the_chart(team: World) -> None:
    client = team.browser()
    html = client.get("/activity").get_data(as_text=True)
    amina = html.split('id="chw-amina"')[1].split("</tr>")[0]
    bashir = html.split('id="chw-bashir"')[1].split("</tr>")[0]
    assert "not synced for 3+ days" in amina and "not synced for 3+ days" not in bashir
    assert "1 held" in amina and "<td>4</td>" in amina and 'id="chw-zed"' not in html
    assert 'src="/activity/visits.svg' in html
    svg = client.get("/activity/visits.svg")
    text = svg.get_data(as_text=True)
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml" and text.startswith("<svg")
    assert "amina" in text and "bashir" in text and "zed" not in text and "<script" not in text
    assert day(1)[5:] in text  # the x labels are the days


@pytest.mark.parametrize("query, reason", [({"days": "0"}, "days must be a whole number from 1 to 60"),
                                           ({"stale_days": "soon"}, "stale_days must be a whole number from 1 to 365")])
def test_bad_parameters_are_refused_plainly(shared: World, query: dict[str, str], reason: str) -> None:
    team = shared
    resp = team.api("sara").get("/api/v1/activity", query_string=query)
    assert resp.status_code == 400 and resp.get_json()["reason"] == reason
    page = team.browser().get("/activity", query_string=query)
    assert page.status_code == 400 and reason in page.get_data(as_text=True)
    assert team.api("amina").get("/api/v1/activity").status_code == 403
