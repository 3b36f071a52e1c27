"""The REST API and the pages audit the records they show: one ``doc.read`` per document, ``via`` api or page."""
from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from models import db
from models.audit import AuditEntry
from tests.web.test_visit_log import DB, TEAM, World, fresh_world

world = pytest.fixture(fresh_world, name="world")


def reads(app: Flask) -> list[tuple[str, str, str, dict[str, Any]]]:
    """The ``doc.read`` entries, then forget them: (actor, db, doc id, detail)."""
    with app.app_context():
        found = db.session.scalars(db.select(AuditEntry).where(AuditEntry.action == "doc.read")
                                   .order_by(AuditEntry.id)).all()
        out = [(e.actor, e.db_name, e.doc_id, e.detail) for e in found]
        assert all(e.device_id is None for e in found)
        db.session.execute(db.delete(AuditEntry).where(AuditEntry.action == "doc.read"))
        db.session.commit()
        return out


def test_the_visit_log_and_a_visit_are_audited_on_the_page_and_in_the_api(world: World) -> None:
    reads(world.app)
    patients = {"vs-a1": "pt-1", "vs-a2": "pt-1", "vs-a3": "pt-2", "vs-b1": "pt-3", "vs-b2": "pt-3"}
    for via, get in (("api", lambda p: world.api("sara").get(f"/api/v1{p}")), ("page", world.browser().get)):
        assert get("/visits").status_code == 200
        log = reads(world.app)
        assert sorted(e[2] for e in log) == sorted(TEAM + sorted(set(patients.values())))
        assert {e[0] for e in log} == {"sara"} and {e[1] for e in log} == {DB}
        assert ("sara", DB, "vs-a1", {"via": via, "rev": world.revs["vs-a1"]}) in log
        assert ("sara", DB, "pt-1", {"via": via}) in log
        assert get("/visits/vs-a1").status_code == 200
        assert reads(world.app) == [("sara", DB, "vs-a1", {"via": via, "rev": world.revs["vs-a1"]}),
                                    ("sara", DB, "pt-1", {"via": via})]
        assert get("/visits/vs-a1/photos/arm.png").status_code == 200
        assert reads(world.app) == [("sara", DB, "vs-a1", {"via": via, "attachment": "arm.png"})]
        assert get("/visits/vs-z1").status_code == 404  # out of reach: nothing shown, nothing audited
        assert get("/visits?chw=nobody").status_code == 200
        assert reads(world.app) == []


def test_a_page_whose_audit_cannot_be_written_shows_nothing(world: World) -> None:
    from sqlalchemy import text
    with world.app.app_context():
        db.session.execute(text("ALTER TABLE audit_entry RENAME TO audit_entry_away"))
        db.session.commit()
    try:
        for resp in (world.api("sara").get("/api/v1/visits/vs-a1"), world.api("sara").get("/api/v1/visits")):
            assert resp.status_code == 500 and b"Okello" not in resp.get_data()
    finally:
        with world.app.app_context():
            db.session.rollback()
            db.session.execute(text("ALTER TABLE audit_entry_away RENAME TO audit_entry"))
            db.session.commit()
