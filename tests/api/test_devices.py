"""Device enrolment, bearer tokens, retire and revoke, over HTTP and the CLI."""
from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sync.devices import create_code
from tests.village import chw_in_village, visit


@pytest.fixture
def code(app: Flask) -> str:
    with app.app_context():
        chw_in_village("amina", "pw-amina")
        return create_code("amina")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def enrol(anon: FlaskClient, code: str) -> dict[str, Any]:
    resp = anon.post("/api/v1/devices/enrol", json={"code": code, "name": "tablet 7"})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()  # type: ignore[no-any-return]


def test_a_code_enrols_one_device_once(anon: FlaskClient, client: FlaskClient, code: str) -> None:
    body = enrol(anon, code.lower().replace("-", " "))  # typed loosely, still accepted
    assert body["user"] == "amina" and body["status"] == "active" and len(body["token"]) > 30
    again = anon.post("/api/v1/devices/enrol", json={"code": code, "name": "second"})
    assert again.status_code == 403 and again.get_json()["error"] == "forbidden"
    listed = client.get("/api/v1/devices").get_json()["devices"]
    assert [d["device_id"] for d in listed] == [body["device_id"]]


def test_bad_enrolments_are_clear_and_change_nothing(anon: FlaskClient, client: FlaskClient, code: str) -> None:
    for payload, status in (({"code": "NOPE-NOPE-NOPE", "name": "x"}, 403), ({"code": code}, 400),
                            ({"code": 7, "name": "x"}, 400)):
        resp = anon.post("/api/v1/devices/enrol", json=payload)
        assert resp.status_code == status and set(resp.get_json()) == {"error", "reason"}
    assert client.get("/api/v1/devices").get_json()["devices"] == []
    assert anon.post("/api/v1/devices/enrol", json={"code": code, "name": "ok"}).status_code == 201


def test_a_device_token_replicates_until_revoked(anon: FlaskClient, client: FlaskClient, code: str) -> None:
    device = enrol(anon, code)
    client.put("/couch/records")
    assert anon.put("/couch/records/v1", json=visit("v1"), headers=bearer(device["token"])).status_code == 201
    me = anon.get("/api/v1/devices/me", headers=bearer(device["token"])).get_json()
    assert me["status"] == "active" and me["action"] == "none" and me["last_seen_at"] is not None

    assert client.post(f"/api/v1/devices/{device['device_id']}/retire").get_json()["action"] == "push_then_wipe"
    assert anon.put("/couch/records/v2", json=visit("v2"), headers=bearer(device["token"])).status_code == 201

    client.post(f"/api/v1/devices/{device['device_id']}/revoke")
    refused = anon.get("/couch/records/v1", headers=bearer(device["token"]))
    assert refused.status_code == 401
    assert refused.get_json() == {"error": "unauthorized", "reason": "This device has been revoked; wipe its copy."}
    assert anon.get("/api/v1/devices/me", headers=bearer(device["token"])).get_json()["action"] == "wipe"
    assert client.post(f"/api/v1/devices/{device['device_id']}/retire").status_code == 400  # revocation is final


def test_only_admins_manage_devices(anon: FlaskClient, code: str) -> None:
    chw = {"Authorization": "Basic YW1pbmE6cHctYW1pbmE="}  # amina:pw-amina
    assert anon.get("/api/v1/devices", headers=chw).status_code == 403
    assert anon.post("/api/v1/devices/codes", json={"user": "amina"}, headers=chw).status_code == 403
    assert anon.get("/api/v1/devices").status_code == 401


def test_cli_creates_codes_and_revokes(app: Flask, code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    import wasl_cli
    monkeypatch.setattr(wasl_cli, "_app", lambda: app)
    runner = CliRunner()
    made = runner.invoke(wasl_cli.main, ["device", "code", "--user", "amina"])
    assert made.exit_code == 0 and "single use" in made.output
    missing = runner.invoke(wasl_cli.main, ["device", "code", "--user", "nobody"])
    assert missing.exit_code == 1 and "No enabled user named 'nobody'" in missing.output
    unknown = runner.invoke(wasl_cli.main, ["device", "revoke", "no-such-id"])
    assert unknown.exit_code == 1 and "No such device" in unknown.output
