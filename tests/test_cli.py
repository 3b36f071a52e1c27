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


def test_init_with_an_illegal_database_name_is_a_plain_error(env: Path) -> None:
    result = CliRunner().invoke(main, ["init", "--db", "Bad Name"])
    assert result.exit_code == 2 and result.exception is not None and isinstance(result.exception, SystemExit)
    assert "Invalid value for '--db'" in result.output and "Only lowercase" in result.output
    assert not (env / "cli.sqlite").exists()  # refused before anything was created


def test_serve_refuses_bad_options_plainly(env: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--workers", "0"])
    assert result.exit_code == 2 and "Invalid value for '--workers'" in result.output
