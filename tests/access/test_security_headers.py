"""Security headers on every response: JSON, errors, HTML pages; no-store where patient data goes."""
from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.security import CSP

COMMON = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}


def assert_common(resp: object) -> None:
    headers = resp.headers  # type: ignore[attr-defined]
    assert {name: headers.get(name) for name in COMMON} == COMMON


@pytest.fixture
def pages(app: Flask) -> Flask:
    """Two extra routes: an HTML page and a view that fails unexpectedly."""
    app.add_url_rule("/page", "page", lambda: "<!doctype html><p>Visits</p>")

    def broken() -> str:
        raise RuntimeError("patient Achieng, BP 180/110")
    app.add_url_rule("/api/v1/broken", "broken", broken)
    return app


def test_couch_json_gets_the_headers_and_keeps_its_caching(client: FlaskClient) -> None:
    resp = client.get("/couch/_up")
    assert resp.status_code == 200 and resp.get_json() == {"status": "ok"}
    assert_common(resp)
    assert "Content-Security-Policy" not in resp.headers and "no-store" not in resp.headers.get("Cache-Control", "")


def test_api_json_is_never_stored(client: FlaskClient) -> None:
    resp = client.get("/api/v1/devices")
    assert resp.status_code == 200 and resp.get_json() == {"devices": []}
    assert_common(resp)
    assert resp.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(("path", "status"), [("/api/v1/nowhere", 404), ("/couch/no-such-db", 401),
                                              ("/elsewhere", 404), ("/api/v1/devices", 401)])
def test_error_responses_get_the_headers(anon: FlaskClient, path: str, status: int) -> None:
    resp = anon.get(path)
    assert resp.status_code == status
    if path.startswith(("/api/", "/couch/")):
        assert set(resp.get_json()) == {"error", "reason"}
    else:  # pages answer in HTML, with the page policy
        assert resp.mimetype == "text/html" and "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert_common(resp)
    if not path.startswith("/couch/"):
        assert resp.headers["Cache-Control"] == "no-store"


def test_an_unexpected_failure_gets_the_headers_and_no_exception_text(pages: Flask) -> None:
    resp = pages.test_client().get("/api/v1/broken")
    assert resp.status_code == 500 and "Achieng" not in resp.get_data(as_text=True)
    assert_common(resp)
    assert resp.headers["Cache-Control"] == "no-store"


def test_html_pages_get_a_strict_policy_and_no_store(pages: Flask) -> None:
    resp = pages.test_client().get("/page")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    assert_common(resp)
    assert resp.headers["Content-Security-Policy"] == CSP and CSP.startswith("default-src 'self';")
    assert resp.headers["Cache-Control"] == "no-store"
