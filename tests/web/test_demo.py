"""``wasl demo``: a schema-valid demo data set with every kind of content, loaded once (SQLite, small size)."""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from models import User, db
from models.access import Area
from models.audit import AuditEntry
from models.conflicts import ConflictRecord
from models.duplicates import DuplicateCandidate
from models.quarantine import QuarantinedRevision
from sync.local import get_local, put_local
from sync.records import demo as demo_module
from sync.records.demo import MARKER, load_demo
from sync.records.schemas import check_document
from sync.records.worker import counts, status
from sync.rows import bodies_of, docs_after
from sync.store import get_database
from wasl_cli import main


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WASL_DATABASE_URL", f"sqlite:///{tmp_path}/demo.sqlite")
    monkeypatch.setenv("WASL_INSTANCE", str(tmp_path / "instance"))
    monkeypatch.setenv("WASL_ADMIN_PASSWORD", "admin-secret")
    monkeypatch.delenv("WASL_RECORDS_DB", raising=False)
    return tmp_path


def _state(db_name: str = "wasl") -> dict[str, Any]:
    """Everything a demo run could change."""
    database = get_database(db_name)
    tables = {model.__name__: db.session.scalar(select(func.count()).select_from(model))
              for model in (User, Area, AuditEntry, ConflictRecord, DuplicateCandidate, QuarantinedRevision)}
    return {"update_seq": database.update_seq, "docs": database.doc_count, "deleted": database.doc_del_count,
            "central": counts(db_name), "marker": get_local(db_name, MARKER), **tables}


def test_the_demo_loads_once_with_every_kind_of_content(env: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["init"]).exit_code == 0
    first = runner.invoke(main, ["demo", "--households", "12"])
    assert first.exit_code == 0, first.output
    assert "demo loaded into 'wasl'" in first.output and "households 12," in first.output
    assert "organiser   organiser" in first.output and "demo-organiser" in first.output
    assert "supervisor-dunya" in first.output and "chw-amara-tessa" in first.output

    from api import create_app
    app = create_app()
    with app.app_context():
        state = _state()
        assert status("wasl")["pending"] == 0
        central = state["central"]
        assert central["household"] == 12 and central["campaign"] == 1 and central["visit"] > 12
        assert central["patient"] > 24 and central["referral"] > 0 and central["review"] > 0
        assert state["ConflictRecord"] >= 1 and state["DuplicateCandidate"] >= 1
        assert state["QuarantinedRevision"] == 5 and state["marker"]["state"] == "loaded"
        # Every live document is valid (the five invalid ones are held in the quarantine, not stored).
        rows = [r for r in docs_after(get_database("wasl").id, 0, None) if not r.deleted]
        bodies = bodies_of([(r.id, r.winning_rev) for r in rows])
        assert len(bodies) == len(rows) == state["docs"]
        assert [k for k, body in bodies.items() if check_document(body)] == []
        db.engine.dispose()

    again = runner.invoke(main, ["demo", "--households", "40"])
    assert again.exit_code == 0 and "the demo is already loaded in 'wasl'; nothing changed" in again.output
    assert "demo-clinician" in again.output
    with app.app_context():
        assert _state() == state
        db.engine.dispose()


def test_a_demo_stopped_halfway_finishes_like_a_clean_one(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from api import create_app
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    app = create_app()
    with app.app_context():
        clean = load_demo("clean", households=6, seed=5, today=date(2026, 3, 1))
        put_local("wasl", MARKER, {"state": "loading", "base_date": "2026-03-01", "households": 6, "seed": 5})

        def crash(db_name: str, progress: object) -> None:
            raise RuntimeError("power cut")
        monkeypatch.setattr(demo_module, "_project", crash)
        with pytest.raises(RuntimeError):
            load_demo("wasl", households=99)
        monkeypatch.undo()
        resumed = load_demo("wasl", households=99)
        assert resumed.loaded and resumed.counts == clean.counts and resumed.counts["households"] == 6
        mine, theirs = _state("wasl"), _state("clean")
        for key in ("update_seq", "docs", "deleted", "central"):
            assert mine[key] == theirs[key], key
        db.engine.dispose()


def test_a_bad_size_is_one_plain_line(env: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--households", "0"])
    assert result.exit_code == 2 and "Invalid value for '--households'" in result.output
