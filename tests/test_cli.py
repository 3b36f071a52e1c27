"""The ``wasl`` command: plain messages, no tracebacks, nothing half-done."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from wasl_cli import main


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WASL_DATABASE_URL", f"sqlite:///{tmp_path}/cli.sqlite")
    monkeypatch.setenv("WASL_INSTANCE", str(tmp_path / "instance"))
    monkeypatch.delenv("WASL_ADMIN_PASSWORD", raising=False)
    return tmp_path


def test_init_creates_the_database_and_shows_a_generated_password_once(env: Path) -> None:
    first = CliRunner().invoke(main, ["init"])
    assert first.exit_code == 0, first.output
    assert "db 'wasl'" in first.output and "admin password (generated, shown once):" in first.output
    password = first.output.split("shown once):")[1].split()[0]
    again = CliRunner().invoke(main, ["init"])
    assert again.exit_code == 0 and password not in again.output and "WASL_ADMIN_PASSWORD" in again.output

    from api import create_app
    from crypto import verify_password
    from models import User, db
    app = create_app()
    with app.app_context():
        admin = db.session.scalar(db.select(User).where(User.name == "admin"))
        assert admin is not None and verify_password(password, admin.password_hash)
        db.engine.dispose()


def test_init_upgrades_an_older_installs_central_tables_and_refills_them(env: Path) -> None:
    import sqlite3

    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    with sqlite3.connect(env / "cli.sqlite") as conn:  # as an older version left it
        conn.execute("DROP INDEX ix_health_visit_campaign_cover")
        conn.execute("ALTER TABLE health_visit DROP COLUMN campaign_positive")
    again = CliRunner().invoke(main, ["init"])
    assert again.exit_code == 0, again.output
    assert "central tables upgraded: column health_visit.campaign_positive" in again.output
    assert "rebuilt 'wasl'" in again.output
    with sqlite3.connect(env / "cli.sqlite") as conn:
        assert "campaign_positive" in {row[1] for row in conn.execute("PRAGMA table_info(health_visit)")}
    third = CliRunner().invoke(main, ["init"])
    assert third.exit_code == 0 and "upgraded" not in third.output and "rebuilt" not in third.output


def test_init_with_an_illegal_database_name_is_a_plain_error(env: Path) -> None:
    result = CliRunner().invoke(main, ["init", "--db", "Bad Name"])
    assert result.exit_code == 2 and result.exception is not None and isinstance(result.exception, SystemExit)
    assert "Invalid value for '--db'" in result.output and "Only lowercase" in result.output
    assert not (env / "cli.sqlite").exists()  # refused before anything was created


def test_serve_refuses_bad_options_plainly(env: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--workers", "0"])
    assert result.exit_code == 2 and "Invalid value for '--workers'" in result.output
