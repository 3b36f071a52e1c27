"""``wasl scope rebuild``: the scope index recomputed after a load that bypassed the write path."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient

from models import db
from models.access import ScopeKey
from sync import scopeindex
from sync.store import create_database, get_database
from tests.village import chw_in_village, patient, visit


def rows(app: Flask) -> list[tuple[int, str, int]]:
    with app.app_context():
        return sorted(db.session.execute(db.select(ScopeKey.document_id, ScopeKey.key, ScopeKey.seq)).tuples())


def wasl(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    from wasl_cli import main
    monkeypatch.setenv("WASL_DATABASE_URL", app.config["SQLALCHEMY_DATABASE_URI"])
    monkeypatch.setenv("WASL_INSTANCE", str(tmp_path))
    monkeypatch.setenv("WASL_RECORDS_DB", "records")
    return CliRunner().invoke(main, list(args))


def test_rebuild_restores_the_rows_a_bulk_load_left_out(app: Flask, client: FlaskClient, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with app.app_context():
        chw_in_village()
        create_database("records")
        scopeindex.enable("records")
    docs = [patient("patient-9"), *(visit(f"visit-{i}") for i in range(5))]
    assert client.post("/couch/records/_bulk_docs", json={"docs": docs}).status_code == 201
    kept = rows(app)
    assert len(kept) > len(docs)
    with app.app_context():  # as a load straight into the tables would leave it
        db.session.execute(db.delete(ScopeKey).where(ScopeKey.key != "area:north"))
        db.session.commit()
    result = wasl(app, tmp_path, monkeypatch, "scope", "rebuild")
    assert result.exit_code == 0, result.output
    assert f"scope index of 'records' rebuilt: {len(kept)} key rows for 6 documents" in result.output
    assert "indexing records" in result.output and "100%" in result.output  # the progress bar
    assert rows(app) == kept


def test_rebuild_of_a_records_database_not_indexed_yet_enables_it(app: Flask, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with app.app_context():
        chw_in_village()
        create_database("records")
        assert not scopeindex.is_indexed(get_database("records").id)
    result = wasl(app, tmp_path, monkeypatch, "scope", "rebuild", "--db", "records")
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert scopeindex.is_indexed(get_database("records").id)


@pytest.mark.parametrize("args, message", [
    (["--db", "nowhere"], "Error: Database does not exist."),
    (["--db", "other"], "Error: 'other' has no scope index: only the records database ('records') is indexed"),
])
def test_rebuild_refuses_plainly(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
                                 message: str) -> None:
    with app.app_context():
        create_database("other")
    result = wasl(app, tmp_path, monkeypatch, "scope", "rebuild", *args)
    assert result.exit_code == 1 and result.output.strip().splitlines()[-1] == message
    assert "Traceback" not in result.output
    with app.app_context():
        assert not scopeindex.is_indexed(get_database("other").id)
