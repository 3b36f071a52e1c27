"""Signing in to the pages: session cookie, CSRF on every form, safe redirects, HTML errors."""
from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sync.access import add_user

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def web(app: Flask) -> FlaskClient:
    """A browser-like client (no Authorization header) with a supervisor account to sign in as."""
    app.config["WTF_CSRF_ENABLED"] = True
    with app.app_context():
        add_user("sara", "password1", ["supervisor"], actor="admin")
    return app.test_client()


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    match = CSRF.search(client.get(path).get_data(as_text=True))
    assert match, "the form carries a CSRF token"
    return match.group(1)


def sign_in(client: FlaskClient, password: str = "password1", next_path: str | None = None) -> object:
    query = {"next": next_path} if next_path else {}
    return client.post("/login", query_string=query,
                       data={"name": "sara", "password": password, "csrf_token": csrf_token(client)})


def test_signing_in_sets_the_session_and_signing_out_ends_it(web: FlaskClient) -> None:
    assert web.get("/home").status_code == 302  # not signed in: sent to the sign-in page
    resp = sign_in(web)
    assert resp.status_code == 302
    home = web.get("/home")
    assert home.status_code == 200 and "sara" in home.get_data(as_text=True)
    assert home.headers["Cache-Control"] == "no-store" and "default-src 'self'" in home.headers[
        "Content-Security-Policy"]
    token = csrf_token(web, "/home")
    assert web.post("/logout", data={"csrf_token": token}).status_code == 302
    assert web.get("/home").status_code == 302


def test_a_wrong_password_is_refused_on_the_page(web: FlaskClient) -> None:
    resp = sign_in(web, password="wrong-one")
    assert resp.status_code == 401 and "Wrong name or password." in resp.get_data(as_text=True)
    assert web.get("/home").status_code == 302


def test_a_form_without_its_csrf_token_changes_nothing(web: FlaskClient) -> None:
    resp = web.post("/login", data={"name": "sara", "password": "password1"})
    assert resp.status_code == 400 and resp.mimetype == "text/html"
    assert web.get("/home").status_code == 302  # not signed in


@pytest.mark.parametrize("target, lands", [("/home?x=1", "/home?x=1"), ("https://evil.example/", "/visits"),
                                           ("//evil.example/", "/visits")])
def test_only_same_site_paths_are_followed_after_sign_in(web: FlaskClient, target: str, lands: str) -> None:
    assert sign_in(web, next_path=target).headers["Location"] == lands


def test_page_errors_are_html_and_api_errors_json(web: FlaskClient) -> None:
    page = web.get("/no-such-page")
    assert page.status_code == 404 and page.mimetype == "text/html" and "There is no such page." in page.get_data(
        as_text=True)
    api = web.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and api.get_json() == {"error": "not_found", "reason": "missing"}


def test_the_openapi_document_is_served(web: FlaskClient) -> None:
    doc = web.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.") and doc["info"]["title"] == "Wasl REST API"
