"""The drop protocol's server side: ``/me`` tells the scope's fingerprint, ``/me/held`` answers what to drop,
and admins and supervisors see what each device still holds."""
from __future__ import annotations

from typing import Any

import pytest

from sync import access
from sync.devices import create_code
from tests.api.helpers import assert_couch_error

from .test_scoped_index import DB, SEES, V1, V2, World, world

__all__ = ["world"]
HELD = "/api/v1/devices/me/held"


def enrol(world: World, user: str) -> dict[str, Any]:
    with world.app.app_context():
        code = create_code(user)
    resp = world.app.test_client().post("/api/v1/devices/enrol", json={"code": code, "name": f"{user}'s tablet"})
    assert resp.status_code == 201
    return resp.get_json()  # type: ignore[no-any-return]


def bearer(device: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {device['token']}"}


def report(world: World, device: dict[str, Any], doc_ids: list[str], pending: int = 0, db: str = DB) -> Any:
    return world.app.test_client().post(HELD, json={"db": db, "doc_ids": doc_ids, "pending": pending},
                                        headers=bearer(device))


def test_held_answers_what_left_the_scope(world: World) -> None:
    device = enrol(world, "amina")
    held = sorted(SEES["amina"]) + ["never-on-the-server"]
    assert report(world, device, held, pending=2).get_json() == {"drop": []}
    with world.app.app_context():
        access.unassign("amina", V1, actor="admin")
        access.assign("amina", V2, "works_in", actor="admin")
    answer = report(world, device, held, pending=0).get_json()
    # Gone: the records of V1. Kept: the review of her own visit, the campaign of her district, the
    # design document, and a document the server does not hold (an unpushed one is never dropped).
    assert answer == {"drop": ["hh-1", "pt-1", "pt-2", "rf-1", "rf-2", "vs-1"]}
    [listed] = world.admin.get("/api/v1/devices").get_json()["devices"]
    [held_report] = listed["held"]
    assert (held_report["db"], held_report["held"], held_report["out_of_scope"], held_report["pending"]) == \
        (DB, len(held), 6, 0)


def test_the_scope_fingerprint_changes_with_the_scope(world: World) -> None:
    device = enrol(world, "amina")
    me = world.app.test_client().get("/api/v1/devices/me", headers=bearer(device)).get_json()
    with world.app.app_context():
        access.assign("amina", V2, "works_in", actor="admin")
    again = world.app.test_client().get("/api/v1/devices/me", headers=bearer(device)).get_json()
    assert len(me["scope"]) == 32 and again["scope"] != me["scope"]
    admin_device = enrol(world, "admin")
    assert world.app.test_client().get("/api/v1/devices/me", headers=bearer(admin_device)).get_json()["scope"] == "all"
    assert report(world, admin_device, ["hh-1", "misc-1"]).get_json() == {"drop": []}


@pytest.mark.parametrize("body, reason", [
    ({"doc_ids": ["a"], "pending": 0}, "`db` must name the database the device replicates"),
    ({"db": DB, "doc_ids": "a", "pending": 0}, "`doc_ids` must be a list of document ids"),
    ({"db": DB, "doc_ids": [1], "pending": 0}, "`doc_ids` must be a list of document ids"),
    ({"db": DB, "doc_ids": [], "pending": -1}, "`pending` must be the number of local edits not pushed yet"),
    ({"db": DB, "doc_ids": [], "pending": True}, "`pending` must be the number of local edits not pushed yet"),
])
def test_bad_reports_are_refused_and_recorded_nowhere(world: World, body: dict[str, Any], reason: str) -> None:
    device = enrol(world, "amina")
    resp = world.app.test_client().post(HELD, json=body, headers=bearer(device))
    assert_couch_error(resp, 400, "bad_request", reason)
    assert world.admin.get("/api/v1/devices").get_json()["devices"][0]["held"] == []


def test_only_an_active_device_of_the_records_database_reports(world: World) -> None:
    device = enrol(world, "amina")
    world.admin.put("/couch/other")
    assert_couch_error(report(world, device, ["x"], db="other"), 403, "forbidden", "Only admins use this database.")
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic YW1pbmE6cHctYW1pbmEtbG9uZw=="}):
        resp = world.app.test_client().post(HELD, json={"db": DB, "doc_ids": [], "pending": 0}, headers=headers)
        assert_couch_error(resp, 401, "unauthorized")
    world.admin.post(f"/api/v1/devices/{device['device_id']}/revoke")
    assert_couch_error(report(world, device, ["hh-1"]), 401, "unauthorized",
                       "This device has been revoked; wipe its copy.")


def test_a_supervisor_sees_the_devices_of_their_team(world: World) -> None:
    amina, bashir = enrol(world, "amina"), enrol(world, "bashir")
    enrol(world, "clara")
    report(world, amina, ["hh-1", "hh-2"], pending=3)
    team = world.client("sara").get("/api/v1/devices/team").get_json()["devices"]
    assert sorted(d["user"] for d in team) == ["amina", "bashir"]
    mine = {d["device_id"]: d["held"] for d in team}
    assert [(h["held"], h["out_of_scope"], h["pending"]) for h in mine[amina["device_id"]]] == [(2, 1, 3)]
    assert mine[bashir["device_id"]] == []
    assert_couch_error(world.client("amina").get("/api/v1/devices/team"), 403, "forbidden")
    assert_couch_error(world.client("amina").get("/api/v1/devices"), 403, "forbidden")
