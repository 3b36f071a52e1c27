"""The visit log page and ``GET /api/v1/visits``: the team's visits only, every filter, paging, bad filters.

Also the world the supervisor tests share (``build``): two villages under the supervisor's
district and one village elsewhere, whose visits must never show.
"""
from __future__ import annotations

import base64
import gc
import re
import struct
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sqlalchemy.pool import NullPool

from models import db
from sync import access
from sync.records import reviews
from sync.records.worker import run_once
from tests.conftest import AUTH, make_app
from tests.pg import create_database

DB = "records"
V1, V2, V9 = "north/d1/v1", "north/d1/v2", "south/d9/v9"
AREAS = [("north", "region"), ("north/d1", "district"), (V1, "village"), (V2, "village"),
         ("south", "region"), ("south/d9", "district"), (V9, "village")]
USERS = {"amina": ("chw", V1, "works_in"), "bashir": ("chw", V2, "works_in"), "zed": ("chw", V9, "works_in"),
         "sara": ("supervisor", "north/d1", "supervises")}
TODAY = datetime.now(timezone.utc).date()


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real PNG of one colour (the browser test shows it)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


PHOTO = png(48, 32, (11, 93, 75))
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ROW_LINK = re.compile(r'href="/visits/([^"/?]+)"')


def day(n: int) -> str:
    """The date ``n`` days before today (UTC)."""
    return (TODAY - timedelta(days=n)).isoformat()


def at(n: int, hour: int = 8) -> str:
    return f"{day(n)}T{hour:02d}:00:00Z"


def password(name: str) -> str:
    return f"pw-{name}-long"


def basic(name: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password(name)}".encode()).decode()}


def stamp(area: str, by: str) -> dict[str, Any]:
    return {"area": area, "updated_at": at(40), "updated_by": by}


def patient(doc_id: str, area: str, by: str, given: str, family: str, **extra: Any) -> dict[str, Any]:
    return {"_id": doc_id, "type": "patient", **stamp(area, by), "given_name": given, "family_name": family,
            "sex": "female", "birth_date": "1990-04-01", **extra}


def visit(doc_id: str, area: str, patient_id: str, chw: str, when: int, kind: str = "routine",
          **extra: Any) -> dict[str, Any]:
    return {"_id": doc_id, "type": "visit", **stamp(area, chw), "patient_id": patient_id, "chw": chw,
            "visited_at": at(when), "kind": kind, **extra}


PATIENTS = [patient("pt-1", V1, "amina", "Aisha", "Okello"), patient("pt-2", V1, "amina", "Grace", "Phiri"),
            patient("pt-3", V2, "bashir", "Halima", "Said"), patient("pt-9", V9, "zed", "Zawadi", "Mwangi")]
CAMPAIGN = {"_id": "cp-1", "type": "campaign", "name": "Diabetes screening", "condition": "diabetes",
            "areas": ["north/d1"], "start_date": day(30), "end_date": day(-30), "organiser": "omar"}
VISITS = [
    visit("vs-a1", V1, "pt-1", "amina", 1, observations={"bp_systolic": 150, "bp_diastolic": 95}),
    visit("vs-a2", V1, "pt-1", "amina", 3, "screening", campaign_id="cp-1", observations={"glucose_mmol_l": 12.5}),
    visit("vs-a3", V1, "pt-2", "amina", 20, "chronic_follow_up", observations={"weight_kg": 60}),
    visit("vs-b1", V2, "pt-3", "bashir", 2, "antenatal", observations={"muac_mm": 100}, notes="Tired, eats little"),
    visit("vs-b2", V2, "pt-3", "bashir", 5, observations={"temperature_c": 37.0}),
    visit("vs-z1", V9, "pt-9", "zed", 1, observations={"bp_systolic": 160, "bp_diastolic": 100}),
]
# Newest first, as the log lists them.
TEAM = ["vs-a1", "vs-b1", "vs-a2", "vs-b2", "vs-a3"]


@dataclass
class World:
    """The app with the shared records, and helpers to sign in."""

    app: Flask
    revs: dict[str, str]
    signed: dict[str, FlaskClient] = field(default_factory=dict)

    def api(self, name: str) -> FlaskClient:
        """A client sending Basic auth as ``name`` ("admin": the admin)."""
        c = self.app.test_client()
        c.environ_base["HTTP_AUTHORIZATION"] = AUTH["Authorization"] if name == "admin" else basic(name)[
            "Authorization"]
        return c

    def browser(self, name: str = "sara") -> FlaskClient:
        """A cookie client signed in through the page, as a browser would be (one per user)."""
        if name not in self.signed:
            self.app.config["WTF_CSRF_ENABLED"] = True
            c = self.app.test_client()
            resp = c.post("/login", data={"name": name, "password": password(name),
                                          "csrf_token": token(c, "/login")})
            assert resp.status_code == 302, resp.get_data(as_text=True)
            self.signed[name] = c
        return self.signed[name]

    def project(self) -> None:
        """Run the worker over what was written."""
        with self.app.app_context():
            run_once(DB)


def token(client: FlaskClient, path: str) -> str:
    """The CSRF token of the form on ``path``."""
    match = CSRF.search(client.get(path).get_data(as_text=True))
    assert match, f"{path} carries a CSRF token"
    return match.group(1)


def build(app: Flask, extra: list[dict[str, Any]] | None = None) -> World:
    """Areas, users, the records database with PATIENTS, CAMPAIGN and VISITS (vs-a1 with a photo), projected."""
    with app.app_context():
        for path, kind in AREAS:
            access.add_area(path, kind, path.rsplit("/", 1)[-1], actor="admin")
        for name, (role, area, kind) in USERS.items():
            access.add_user(name, password(name), [role], actor="admin")
            access.assign(name, area, kind, actor="admin")
    admin = app.test_client()
    admin.environ_base["HTTP_AUTHORIZATION"] = AUTH["Authorization"]
    assert admin.put(f"/couch/{DB}").status_code == 201
    written = admin.post(f"/couch/{DB}/_bulk_docs", json={"docs": [*PATIENTS, CAMPAIGN, *VISITS, *(extra or [])]})
    revs = {item["id"]: item["rev"] for item in written.get_json()}
    assert all("error" not in item for item in written.get_json()), written.get_json()
    doc = admin.get(f"/couch/{DB}/vs-a1").get_json()
    photo = {"arm.png": {"content_type": "image/png", "data": base64.b64encode(PHOTO).decode()}}
    done = admin.put(f"/couch/{DB}/vs-a1", json={**doc, "_attachments": photo})
    assert done.status_code == 201, done.get_json()
    revs["vs-a1"] = done.get_json()["rev"]
    world = World(app, revs)
    world.project()
    return world


def fresh_world(app: Flask) -> World:
    """A fresh world, for tests that change it (the ``world`` fixture)."""
    return build(app)


ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def shared_world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One world per module and engine, for tests that only read (the ``shared`` fixture; building one
    costs half a second, a second on PostgreSQL)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('world')}/wasl.sqlite"
    else:
        base = request.getfixturevalue("pg_url")
        name = f"t_{uuid.uuid4().hex[:16]}"
        create_database(int(base.rsplit(":", 1)[1].split("/", 1)[0]), name)
        url = base.rsplit("/", 1)[0] + "/" + name
    app = make_app(url, SQLALCHEMY_ENGINE_OPTIONS={"poolclass": NullPool})
    yield build(app)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    gc.collect()


# Other modules declare the same two fixtures from these functions.
world = pytest.fixture(fresh_world, name="world")
shared = pytest.fixture(shared_world, scope="module", params=ENGINES, name="shared")


def api_ids(world: World, name: str = "sara", **query: Any) -> tuple[list[str], int]:
    resp = world.api(name).get("/api/v1/visits", query_string=query)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    return [item["doc_id"] for item in body["items"]], body["total"]


def page_ids(client: FlaskClient, **query: Any) -> tuple[list[str], str]:
    resp = client.get("/visits", query_string=query)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    html = resp.get_data(as_text=True)
    return ROW_LINK.findall(html), html


def test_a_supervisor_sees_the_visits_of_their_villages_only(shared: World) -> None:
    world = shared
    ids, total = api_ids(world)
    assert ids == TEAM and total == 5
    item = world.api("sara").get("/api/v1/visits", query_string={"limit": 1}).get_json()["items"][0]
    assert item == {"doc_id": "vs-a1", "rev": world.revs["vs-a1"], "visited_at": f"{day(1)}T08:00:00.000Z",
                    "chw": "amina", "area": V1, "kind": "routine", "campaign_id": None, "campaign_name": None,
                    "patient_id": "pt-1", "patient_name": "Aisha Okello", "risk_flags": ["bp_high"],
                    "photo_count": 1, "review_state": None}
    rows, html = page_ids(world.browser())
    assert rows == TEAM and "5 visits" in html and "Aisha Okello" in html and "Zawadi" not in html
    assert api_ids(world, "admin") == (["vs-z1", *TEAM], 6)  # same time: the higher id first


@pytest.mark.parametrize("query, expected", [
    ({"chw": "amina"}, ["vs-a1", "vs-a2", "vs-a3"]),
    ({"chw": "zed"}, []),  # a CHW outside the team: nothing, not their visits
    ({"area": V2}, ["vs-b1", "vs-b2"]),
    ({"area": "north/d1"}, TEAM),
    ({"area": "south"}, []),
    ({"from": day(3), "to": day(2)}, ["vs-b1", "vs-a2"]),
    ({"from": day(2)}, ["vs-a1", "vs-b1"]),
    ({"to": day(5)}, ["vs-b2", "vs-a3"]),
    ({"from": "0001-01-01", "to": "9999-12-31"}, TEAM),
    ({"kind": "screening"}, ["vs-a2"]),
    ({"campaign_id": "cp-1"}, ["vs-a2"]),
    ({"flag": "bp_high"}, ["vs-a1"]),
    ({"flag": "muac_low"}, ["vs-b1"]),
    ({"flag": "any"}, ["vs-a1", "vs-b1", "vs-a2"]),
    ({"patient": "pt-3"}, ["vs-b1", "vs-b2"]),
    ({"chw": "amina", "kind": "routine", "flag": "bp_high"}, ["vs-a1"]),
])
def test_each_filter_narrows_the_log_on_the_page_and_in_the_api(shared: World, query: dict[str, str],
                                                                expected: list[str]) -> None:
    world = shared
    assert api_ids(world, **query) == (expected, len(expected))
    rows, html = page_ids(world.browser(), **query)
    assert rows == expected
    assert f"{len(expected)} visit" in html


def test_the_review_filter_follows_the_newest_review_of_each_visit(world: World) -> None:
    with world.app.app_context():
        reviews.write_review(DB, "vs-a1", "has_issues", "BP cuff size?", "sara")
        reviews.write_review(DB, "vs-a1", "approved", None, "sara")  # a second review replaces the first
        reviews.write_review(DB, "vs-b1", "rejected", "Wrong patient", "sara")
    world.project()
    assert api_ids(world, review="approved") == (["vs-a1"], 1)
    assert api_ids(world, review="rejected") == (["vs-b1"], 1)
    assert api_ids(world, review="has_issues") == ([], 0)
    assert api_ids(world, review="none") == (["vs-a2", "vs-b2", "vs-a3"], 3)
    rows, html = page_ids(world.browser(), review="approved")
    assert rows == ["vs-a1"] and "Approved" in html


def test_paging_counts_every_matching_visit(app: Flask) -> None:
    many = [visit(f"vs-m{n:02d}", V2, "pt-3", "bashir", 30 + n) for n in range(60)]
    world = build(app, many)
    first, total = api_ids(world)
    assert total == 65 and first[:5] == TEAM and len(first) == 50
    second, total = api_ids(world, offset=50)
    assert total == 65 and second == [f"vs-m{n:02d}" for n in range(45, 60)]
    assert api_ids(world, limit=10, offset=60, chw="bashir") == ([f"vs-m{n:02d}" for n in range(58, 60)], 62)
    client = world.browser()
    rows, html = page_ids(client)
    assert len(rows) == 50 and "65 visits" in html and "Page 1 of 2" in html and "page=2" in html
    rows, html = page_ids(client, page=2)
    assert rows == second and "Page 2 of 2" in html


@pytest.mark.parametrize("query, reason", [
    ({"from": "2026-13-01"}, "from must be a date YYYY-MM-DD"),
    ({"to": "yesterday"}, "to must be a date YYYY-MM-DD"),
    ({"from": day(1), "to": day(3)}, "from must not be after to"),
    ({"kind": "walk"}, "kind must be one of routine, antenatal, chronic_follow_up, screening"),
    ({"review": "maybe"}, "review must be one of none, approved, has_issues, rejected"),
    ({"area": "North!"}, "area must be an area path such as north/district-3"),
    ({"flag": "bp_%"}, "flag must be any, one of bp_high, glucose_high, malaria_positive, muac_low, "
                       "or campaign:<observation>"),
])
def test_a_bad_filter_is_refused_plainly(shared: World, query: dict[str, str], reason: str) -> None:
    world = shared
    resp = world.api("sara").get("/api/v1/visits", query_string=query)
    assert resp.status_code == 400 and resp.get_json() == {"error": "bad_request", "reason": reason}
    page = world.browser().get("/visits", query_string=query)
    html = page.get_data(as_text=True)
    assert page.status_code == 400 and reason.replace("<", "&lt;").replace(">", "&gt;") in html
    assert ROW_LINK.findall(html) == [] and "Zawadi" not in html


@pytest.mark.parametrize("query, reason", [
    ({"colour": "red"}, "Unknown parameter 'colour'"),
    ({"limit": "0"}, "limit must be a whole number from 1 to 500"),
    ({"offset": "\u00b2"}, "offset must be a whole number from 0 to 1000000000"),
    ({"chw": ""}, "chw must not be empty"),  # the page's forms send "" for "any"; the API says what it wants
])
def test_the_api_refuses_unknown_parameters_and_bad_paging(shared: World, query: dict[str, str],
                                                           reason: str) -> None:
    resp = shared.api("sara").get("/api/v1/visits", query_string=query)
    assert resp.status_code == 400 and resp.get_json()["reason"].startswith(reason)


def test_only_supervisors_and_admins_read_the_log(shared: World) -> None:
    world = shared
    assert world.api("amina").get("/api/v1/visits").status_code == 403
    assert world.app.test_client().get("/api/v1/visits").status_code == 401
    assert world.browser("amina").get("/visits").status_code == 403
    home = world.browser("sara").get("/")
    assert home.headers["Location"] == "/visits"
