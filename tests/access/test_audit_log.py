"""The audit log is queryable by admins (API and CLI) and by nobody else."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from models import db
from models.audit import AuditEntry
from sync import audit
from sync.access import add_user
from tests.api.helpers import assert_couch_error


@pytest.fixture
def logged(app: Flask) -> Flask:
    """Three entries an hour apart, the newest last; and a CHW account."""
    with app.app_context():
        add_user("amina", "password1", ["chw"], actor="admin")
        db.session.execute(db.delete(AuditEntry))
        base = time.time() - 7200
        made = [("amina", "auth.sign_in", None), ("supervisor1", "patient.merge", "patient-2"),
                ("amina", "auth.sign_in_failed", None)]
        for i, (actor, action, doc) in enumerate(made):
            db.session.add(AuditEntry(at=base + 3600 * i, actor=actor, action=action,
                                      db_name="records" if doc else None, doc_id=doc, device_id=None,
                                      detail={"n": i}))
        db.session.commit()
    return app


def test_admins_read_entries_newest_first_with_filters(logged: Flask, client: FlaskClient) -> None:
    everything = client.get("/api/v1/audit").get_json()["entries"]
    # The newest is this very request's sign-in: the admin's password was checked for it.
    assert [(e["actor"], e["action"]) for e in everything] == [
        ("admin", "auth.sign_in"), ("amina", "auth.sign_in_failed"), ("supervisor1", "patient.merge"),
        ("amina", "auth.sign_in")]
    assert everything[2] == {**everything[2], "db": "records", "doc_id": "patient-2", "detail": {"n": 1}}
    family = client.get("/api/v1/audit?action=auth.&actor=amina").get_json()["entries"]
    assert [e["action"] for e in family] == ["auth.sign_in_failed", "auth.sign_in"]
    one_doc = client.get("/api/v1/audit?doc_id=patient-2").get_json()["entries"]
    assert [e["action"] for e in one_doc] == ["patient.merge"]
    recent = client.get("/api/v1/audit", query_string={"since": time.time() - 1800}).get_json()["entries"]
    assert [(e["actor"], e["action"]) for e in recent] == [("admin", "auth.sign_in"), ("amina", "auth.sign_in_failed")]
    paged = client.get("/api/v1/audit?limit=1&offset=2").get_json()
    assert [e["action"] for e in paged["entries"]] == ["patient.merge"] and paged["limit"] == 1


@pytest.mark.parametrize("query", ["limit=0", "limit=x", "limit=%C2%B2", "offset=%D9%A3", "since=yesterday",
                                   "since=2026-01-01T00:00:00", "colour=blue"])
def test_a_bad_filter_is_a_clear_400(logged: Flask, client: FlaskClient, query: str) -> None:
    assert_couch_error(client.get(f"/api/v1/audit?{query}"), 400, "bad_request")


def test_only_admins_read_it(logged: Flask, anon: FlaskClient) -> None:
    assert_couch_error(anon.get("/api/v1/audit"), 401, "unauthorized")
    chw = anon.get("/api/v1/audit", headers={"Authorization": "Basic YW1pbmE6cGFzc3dvcmQx"})  # amina:password1
    assert_couch_error(chw, 403, "forbidden")


def test_the_application_offers_no_way_to_change_an_entry(logged: Flask, client: FlaskClient) -> None:
    for method in ("put", "post", "patch", "delete"):
        assert getattr(client, method)("/api/v1/audit").status_code == 405
    with logged.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(AuditEntry)) == 3  # 405s sign no one in
        assert not [name for name in dir(audit) if name.startswith(("update", "delete", "remove", "edit"))]


def test_cli_lists_entries(logged: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wasl_cli import main
    monkeypatch.setenv("WASL_DATABASE_URL", logged.config["SQLALCHEMY_DATABASE_URI"])
    monkeypatch.setenv("WASL_INSTANCE", str(tmp_path))
    result = CliRunner().invoke(main, ["audit", "--actor", "amina", "--json"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["action"] for line in result.output.splitlines()] == ["auth.sign_in_failed",
                                                                                   "auth.sign_in"]
    table = CliRunner().invoke(main, ["audit", "--doc", "patient-2"])
    assert table.exit_code == 0 and "supervisor1" in table.output and "records/patient-2" in table.output
