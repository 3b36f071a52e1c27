"""Rate limits: per device token, and per client address for everything else."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from models import db
from sync.devices import create_code, enrol
from tests.api.helpers import assert_couch_error
from tests.conftest import AUTH, make_app


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Flask]:
    app = make_app(f"sqlite:///{tmp_path}/limits.sqlite", WASL_RATE_LIMIT_DEVICE="3 per minute",
                   WASL_RATE_LIMIT_ADDRESS="5 per minute")
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _token(app: Flask, name: str) -> str:
    with app.app_context():
        from sync.access import add_user
        add_user(name, "password1", ["chw"], actor="admin")
        return enrol(create_code(name), f"{name}'s tablet")[1]


def test_a_device_over_its_limit_gets_429_and_others_go_on(limited: Flask) -> None:
    client = limited.test_client()
    first, second = _token(limited, "amina"), _token(limited, "baraka")
    for _ in range(3):
        assert client.get("/couch/", headers={"Authorization": f"Bearer {first}"}).status_code == 200
    refused = client.get("/couch/", headers={"Authorization": f"Bearer {first}"})
    assert_couch_error(refused, 429, "too_many_requests")
    assert 1 <= int(refused.headers["Retry-After"]) <= 61  # the window, rounded up
    # Another tablet, and a browser at the same address, are not held back by it.
    assert client.get("/couch/", headers={"Authorization": f"Bearer {second}"}).status_code == 200
    assert client.get("/couch/", headers=AUTH).status_code == 200


def test_requests_without_a_device_token_count_per_address(limited: Flask) -> None:
    client = limited.test_client()
    statuses = [client.get("/couch/", headers=AUTH).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    other = client.get("/couch/", headers=AUTH, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 200


def test_an_empty_limit_turns_it_off(tmp_path: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path}/off.sqlite", WASL_RATE_LIMIT_DEVICE="", WASL_RATE_LIMIT_ADDRESS="")
    client = app.test_client()
    assert {client.get("/couch/").status_code for _ in range(50)} == {200}
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
