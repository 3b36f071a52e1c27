"""Sign-in throttling and rate limits count across processes: two servers on one database allow the limit once.

In-process: two apps on one database (SQLite, then PostgreSQL), each with its own
rate limiter and its own sign-in counter object. Across processes: two gunicorn servers on
one SQLite database, requests alternating between them.
"""
from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.pool import NullPool

from api.ratelimit import SqlStorage, default_storage
from bench.replication import free_port
from models import db
from models.limits import SignInFailure
from sync.access import add_user
from tests.conftest import make_app
from tests.device.helpers import gunicorn, wasl_init

RIGHT = {"Authorization": "Basic " + base64.b64encode(b"amina:password1").decode()}


@pytest.fixture
def twins(app: Flask) -> Iterator[tuple[Flask, Flask]]:
    """Two apps on the ``app`` fixture's database: 6 requests a minute per address, 3 failed sign-ins."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    pair = tuple(make_app(url, WASL_RATE_LIMIT_ADDRESS="6 per minute", WASL_SIGNIN_MAX_FAILURES=3,
                          SQLALCHEMY_ENGINE_OPTIONS={"poolclass": NullPool}) for _ in range(2))
    with app.app_context():
        add_user("amina", "password1", ["chw"], actor="test")
    yield pair  # type: ignore[misc]
    for twin in pair:
        with twin.app_context():
            db.session.remove()
            db.engine.dispose()


def test_two_apps_on_one_database_share_their_rate_limit(twins: tuple[Flask, Flask]) -> None:
    a, b = (t.test_client() for t in twins)
    assert [c.get("/couch/_up").status_code for c in (a, b, a, b, a, b)] == [200] * 6
    for client in (a, b):
        over = client.get("/couch/_up")
        assert over.status_code == 429 and over.get_json()["error"] == "too_many_requests"
        assert 1 <= int(over.headers["Retry-After"]) <= 61  # the reset is rounded up to a whole second


def test_two_apps_on_one_database_share_their_sign_in_failures(twins: tuple[Flask, Flask]) -> None:
    a, b = (t.test_client() for t in twins)

    def wrong(client: FlaskClient) -> int:
        return client.post("/couch/_session", json={"name": "amina", "password": "wrong-one"}).status_code
    assert b.get("/couch/_all_dbs", headers=RIGHT).status_code == 200
    assert [wrong(a), wrong(b), wrong(a)] == [401, 401, 401]
    # Three failures in two apps: locked in both. (Six requests: the rate limit allows no more.)
    locked = a.get("/couch/_all_dbs", headers=RIGHT)
    assert locked.status_code == 429 and locked.get_json()["error"] == "too_many_requests"
    # The password b verified within the minute still works there: a guesser cannot lock out a
    # tablet that is syncing, only keep passwords from being tried.
    assert b.get("/couch/_all_dbs", headers=RIGHT).status_code == 200
    with twins[0].app_context():
        keys = db.session.scalars(db.select(SignInFailure.key)).all()
        assert len(keys) == 6 and len(set(keys)) == 2  # per failure: the name and the address
        assert not any("amina" in k or "127.0.0.1" in k for k in keys)  # stored hashed


def test_the_default_store_sits_beside_a_sqlite_database_or_in_postgresql(tmp_path: Path) -> None:
    def store(url: str) -> str:
        app = Flask("limits-url")
        app.config["SQLALCHEMY_DATABASE_URI"] = url
        return default_storage(app)

    assert store(f"sqlite:///{tmp_path}/w.sqlite") == f"sql+sqlite:///{tmp_path}/w-ratelimit.sqlite"
    assert store("postgresql+psycopg://u:p@h:5/db") == "sql+postgresql+psycopg://u:p@h:5/db"
    assert store("sqlite://") == "memory://"
    counter = SqlStorage(f"sql+sqlite:///{tmp_path}/c.sqlite")
    assert [counter.incr("k", 60) for _ in range(3)] == [1, 2, 3] and counter.get("k") == 3
    assert counter.incr("gone", -1) == 1 and counter.get("gone") == 0  # an expired window counts from 1 again
    assert counter.incr("gone", 60) == 1
    counter.clear("k")
    assert counter.get("k") == 0 and counter.check()


def test_two_gunicorn_servers_on_one_database_hold_the_limits_together(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-process counters would let each server take 5 failures and 10 requests; shared ones, 5 and 10 in all."""
    monkeypatch.setenv("WASL_RATE_LIMIT_ADDRESS", "10 per hour")  # no window ends mid-test, however slow
    wasl_init(tmp_path, "wasl")
    one, two = free_port(), free_port()
    with gunicorn(tmp_path, one), gunicorn(tmp_path, two):
        roots = [f"http://127.0.0.1:{p}/couch" for p in (one, two)]
        # Each server's readiness probe was at least one request: at most 8 are left in this hour.
        tries = [requests.post(f"{roots[i % 2]}/_session", json={"name": "admin", "password": "wrong"},
                               timeout=30) for i in range(6)]
        assert [r.status_code for r in tries] == [401] * 5 + [429]  # the fifth failure locked the name on both
        assert "Too many failed sign-in attempts" in tries[-1].json()["reason"]
        served = [requests.get(f"{roots[i % 2]}/_up", timeout=30).status_code for i in range(12)]
        # At most 10 - 2 probes - 6 sign-ins are left (each server's own counter would leave 6 each).
        assert served.count(200) <= 2 and served[-4:] == [429] * 4, served
