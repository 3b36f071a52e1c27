"""Shared fixtures: an app on a throwaway SQLite file, a test client, a live server."""
from __future__ import annotations

import base64
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.pool import NullPool

from api import create_app
from bench.serve import serve_in_thread as serving
from models import db, init_db

pytest_plugins = ["tests.pg"]

ADMIN = ("admin", "secret")
AUTH = {"Authorization": "Basic " + base64.b64encode(b"admin:secret").decode()}


def make_app(database_url: str, **config: Any) -> Flask:
    """Create an app on ``database_url`` with its tables and the admin account."""
    # Protocol tests write arbitrary documents to "wasl"; only the records tests use the checked database.
    config.setdefault("WASL_RECORDS_DB", "records")
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url,
                      "WASL_ADMIN_PASSWORD": ADMIN[1], **config})
    with app.app_context():
        init_db()
    return app


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    """The app on SQLite, then again on a fresh database of the throwaway PostgreSQL cluster."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/wasl.sqlite"
    else:
        url = request.getfixturevalue("pg_fresh_url")
    # Without a pool every connection closes when it is given back: a request thread
    # that finishes after teardown cannot leave an open connection behind.
    application = make_app(url, SQLALCHEMY_ENGINE_OPTIONS={"poolclass": NullPool})
    yield application
    with application.app_context():
        # Close pooled connections now: dozens of test apps would otherwise exhaust
        # PostgreSQL's connection limit before the garbage collector ran.
        db.session.remove()
        db.engine.dispose()
    gc.collect()  # report a leaked connection against the test that leaked it


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client that signs every request in as the admin (Basic auth)."""
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = AUTH["Authorization"]
    return c


@pytest.fixture
def anon(app: Flask) -> FlaskClient:
    """A test client with no credentials."""
    return app.test_client()


def serve_in_thread(app: Flask) -> Iterator[str]:
    """Serve ``app`` on a free loopback port; yield its base URL (a generator, for fixtures)."""
    with serving(app) as url:
        yield url


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """Base URL of the app served on loopback; the CouchDB root is ``<url>/couch``."""
    yield from serve_in_thread(app)


@pytest.fixture
def couch_url(live_server: str) -> str:
    """The CouchDB root with the admin's credentials in it, as PouchDB is given it."""
    return live_server.replace("http://", f"http://{ADMIN[0]}:{ADMIN[1]}@") + "/couch"
