"""Sign-in throttling (429 with Retry-After) and the audit of sign-ins."""
from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from models import db
from models.audit import AuditEntry
from sync import access
from sync.devices import create_code, enrol
from tests.api.helpers import assert_couch_error

RIGHT, WRONG = "pw-amina-long", "not-her-password"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(app: Flask) -> Clock:
    fake = Clock()
    app.extensions["wasl.signin_failures"].clock = fake
    return fake


@pytest.fixture
def users(app: Flask) -> Iterator[None]:
    with app.app_context():
        access.add_user("amina", RIGHT, ["chw"], actor="admin")
        access.add_user("sam", "pw-sam-long", ["supervisor"], actor="admin")
    yield


def sign_in(client: FlaskClient, name: str, password: str, address: str = "10.0.0.7") -> Any:
    return client.post("/couch/_session", data={"name": name, "password": password},
                       environ_overrides={"REMOTE_ADDR": address})


def basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def entries(app: Flask, action: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    with app.app_context():
        query = db.select(AuditEntry).order_by(AuditEntry.id)
        if action is not None:
            query = query.where(AuditEntry.action == action)
        return [(e.actor, e.action, e.detail) for e in db.session.scalars(query)
                if e.action.startswith("auth.")]


def assert_throttled(resp: Any) -> int:
    assert_couch_error(resp, 429, "too_many_requests")
    retry_after = int(resp.headers["Retry-After"])
    assert 0 < retry_after <= 15 * 60
    assert f"try again in {retry_after} seconds" in resp.get_json()["reason"]
    return retry_after


def test_the_sixth_wrong_password_gets_429_and_so_does_the_right_one(app: Flask, anon: FlaskClient,
                                                                     users: None) -> None:
    for _ in range(5):
        assert_couch_error(sign_in(anon, "amina", WRONG), 401, "unauthorized")
    assert_throttled(sign_in(anon, "amina", WRONG))
    throttled = sign_in(anon, "amina", RIGHT)
    assert_throttled(throttled)
    assert throttled.headers["X-Content-Type-Options"] == "nosniff" and "AuthSession" not in str(throttled.headers)
    failed = entries(app, "auth.sign_in_failed")
    assert [(actor, d["reason"], d["locked"], d["via"], d["address"]) for actor, _, d in failed] == (
        [("amina", "wrong_password", False, "session", "10.0.0.7")] * 4
        + [("amina", "wrong_password", True, "session", "10.0.0.7")])
    assert entries(app, "auth.sign_in") == []
    assert all(WRONG not in repr(e) and RIGHT not in repr(e) for e in entries(app))


def test_the_lock_lasts_until_the_window_has_passed(app: Flask, anon: FlaskClient, users: None,
                                                    clock: Clock) -> None:
    for _ in range(5):
        sign_in(anon, "amina", WRONG)
        clock.now += 10
    assert assert_throttled(sign_in(anon, "amina", RIGHT)) == 15 * 60 - 50
    clock.now += 15 * 60 - 51  # the first failure is still inside the window
    assert assert_throttled(sign_in(anon, "amina", RIGHT)) == 1
    clock.now += 1  # it has left the window: four failures remain, under the limit
    ok = sign_in(anon, "amina", RIGHT)
    assert ok.status_code == 200 and ok.get_json()["name"] == "amina"
    assert [(a, d["via"]) for a, _, d in entries(app, "auth.sign_in")] == [("amina", "session")]


def test_one_address_is_locked_for_every_name(app: Flask, anon: FlaskClient, users: None) -> None:
    for name in ("a1", "a2", "a3", "a4", "sam"):
        assert sign_in(anon, name, WRONG, "10.0.0.7").status_code == 401
    assert_throttled(sign_in(anon, "amina", RIGHT, "10.0.0.7"))
    assert sign_in(anon, "amina", RIGHT, "10.0.0.8").status_code == 200
    reasons = [(a, d["reason"]) for a, _, d in entries(app, "auth.sign_in_failed")]
    assert reasons == [("a1", "unknown_user"), ("a2", "unknown_user"), ("a3", "unknown_user"),
                       ("a4", "unknown_user"), ("sam", "wrong_password")]


def test_one_name_is_locked_from_every_address(app: Flask, anon: FlaskClient, users: None) -> None:
    for i in range(5):
        assert sign_in(anon, "amina", WRONG, f"10.0.1.{i}").status_code == 401
    assert_throttled(sign_in(anon, "amina", RIGHT, "10.0.2.1"))
    assert sign_in(anon, "sam", "pw-sam-long", "10.0.2.1").status_code == 200


def test_a_right_password_clears_its_accounts_count(app: Flask, anon: FlaskClient, users: None) -> None:
    for i in range(4):
        sign_in(anon, "amina", WRONG, f"10.0.3.{i}")
    assert sign_in(anon, "amina", RIGHT, "10.0.4.1").status_code == 200
    for i in range(4):
        assert sign_in(anon, "amina", WRONG, f"10.0.5.{i}").status_code == 401
    assert sign_in(anon, "amina", RIGHT, "10.0.6.1").status_code == 200


def test_basic_auth_is_throttled_too(app: Flask, anon: FlaskClient, users: None) -> None:
    for _ in range(5):
        assert_couch_error(anon.get("/couch/_all_dbs", headers=basic("amina", WRONG)), 401, "unauthorized")
    assert_throttled(anon.get("/couch/_all_dbs", headers=basic("amina", RIGHT)))
    assert {d["via"] for _, _, d in entries(app, "auth.sign_in_failed")} == {"basic"}


def test_one_request_with_a_wrong_password_counts_one_failure(app: Flask, anon: FlaskClient, users: None) -> None:
    # GET /couch/ and /_session are open to anyone, so several layers look at the caller.
    for _ in range(2):
        assert anon.get("/couch/_session", headers=basic("amina", WRONG)).status_code in (200, 401)
        assert anon.get("/couch/", headers=basic("amina", WRONG)).status_code in (200, 401)
    assert len(entries(app, "auth.sign_in_failed")) == 4
    assert sign_in(anon, "amina", RIGHT).status_code == 200  # 4 failures: not yet locked


def test_basic_auth_is_audited_once_per_cache_period(app: Flask, anon: FlaskClient, users: None) -> None:
    assert sign_in(anon, "amina", RIGHT).status_code == 200
    for _ in range(3):
        assert anon.get("/couch/_all_dbs", headers=basic("amina", RIGHT)).status_code == 200
    assert [(a, d["via"]) for a, _, d in entries(app, "auth.sign_in")] == [("amina", "session")]
    app.extensions["wasl.verified_passwords"].clear()  # as when the minute is over
    for _ in range(3):
        assert anon.get("/couch/_all_dbs", headers=basic("amina", RIGHT)).status_code == 200
    assert [(a, d["via"]) for a, _, d in entries(app, "auth.sign_in")] == [("amina", "session"), ("amina", "basic")]


def test_a_disabled_account_fails_with_its_right_password(app: Flask, anon: FlaskClient, users: None) -> None:
    with app.app_context():
        access.disable_user("amina", actor="admin")
    assert_couch_error(sign_in(anon, "amina", RIGHT), 401, "unauthorized")
    assert [(a, d["reason"]) for a, _, d in entries(app, "auth.sign_in_failed")] == [("amina", "disabled")]


def test_devices_keep_syncing_while_their_users_name_is_locked(app: Flask, anon: FlaskClient, users: None) -> None:
    with app.app_context():
        _, token = enrol(create_code("amina"), "tablet 1")
    for _ in range(5):
        sign_in(anon, "amina", WRONG)
    assert_throttled(sign_in(anon, "amina", RIGHT))
    assert anon.get("/couch/_all_dbs", headers={"Authorization": f"Bearer {token}"},
                    environ_overrides={"REMOTE_ADDR": "10.0.0.7"}).status_code == 200


def test_absurd_names_fail_plainly(app: Flask, anon: FlaskClient, users: None) -> None:
    for name in ("x" * 5000, "nul\0name"):
        assert_couch_error(sign_in(anon, name, WRONG, "10.0.9.1"), 401, "unauthorized")
    actors = [a for a, _, _ in entries(app, "auth.sign_in_failed")]
    assert actors == ["x" * 200, "nulname"]
