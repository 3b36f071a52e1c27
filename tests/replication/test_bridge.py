"""``wasl replicate``: this server's databases to and from pouchdb-server, resumable, continuous."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask import Flask

from models import db
from models.quarantine import QuarantinedRevision
from sync.errors import NotFound
from sync.reads import ReadOptions, get_doc
from sync.store import create_database, list_databases
from sync.writes import put_doc

from .helpers import ADMIN, Db, inline, new_db

ROOT = Path(__file__).resolve().parents[2]
RECORDS_VISIT = {"type": "visit", "area": "north/d1/v1", "patient_id": "p1", "chw": "amina", "kind": "routine",
                 "visited_at": "2026-11-01T09:00:00Z", "updated_at": "2026-11-01T09:00:00Z", "updated_by": "amina"}


@pytest.fixture
def cli_env(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment under which `wasl` reaches the same database as ``app``."""
    env = {"WASL_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "WASL_INSTANCE": str(tmp_path / "instance"),
           "WASL_RECORDS_DB": app.config["WASL_RECORDS_DB"]}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def theirs(pouchdb_server: str) -> Iterator[Db]:
    """A fresh database on pouchdb-server (standing in for an Apache CouchDB cluster)."""
    remote_db = new_db(pouchdb_server)
    yield remote_db
    remote_db.close()


def url_of(db_: Db) -> str:
    return db_.url.replace("http://", f"http://{ADMIN[0]}:{ADMIN[1]}@")


def wasl(*args: str) -> Result:
    from wasl_cli import main
    return CliRunner().invoke(main, ["replicate", *args])


def local_doc(app: Flask, name: str, doc_id: str) -> dict[str, object] | None:
    """The winning revision in this server's database ``name``, attachments inline; None if absent."""
    with app.app_context():
        try:
            return get_doc(name, doc_id, None, ReadOptions(attachments=True))
        except NotFound:
            return None
        finally:
            db.session.remove()


def test_pull_from_a_couchdb_server_then_resume_then_push_back(app: Flask, cli_env: dict[str, str],
                                                               theirs: Db) -> None:
    theirs.put({"_id": "a", "v": 1})
    theirs.put({"_id": "b", "v": 1})
    theirs.update("b", v=2)
    theirs.put({"_id": "gone", "v": 1})
    theirs.delete("gone")
    theirs.put({"_id": "photo", "_attachments": {"p.bin": inline(bytes(range(256)) * 8)}})

    first = wasl(url_of(theirs), "copy", "--create-target")
    assert first.exit_code == 0, first.output
    assert "read 4, written 4" in first.output and ADMIN[1] not in first.output
    for doc_id in ("a", "b", "photo"):
        assert local_doc(app, "copy", doc_id) == theirs.get(doc_id, attachments="true"), doc_id
    assert local_doc(app, "copy", "gone") is None  # the deletion arrived as a deletion

    again = wasl(url_of(theirs), "copy")  # resumes from its checkpoint: nothing left to read
    assert again.exit_code == 0 and "read 0, written 0" in again.output, again.output

    with app.app_context():
        put_doc("copy", {"_id": "c", "v": 3})
        db.session.remove()
    back = wasl("copy", url_of(theirs))
    assert back.exit_code == 0, back.output
    assert theirs.get("c")["v"] == 3 and theirs.get("b")["v"] == 2


def test_documents_the_records_schema_refuses_go_to_the_quarantine(
        app: Flask, cli_env: dict[str, str], theirs: Db) -> None:
    records = app.config["WASL_RECORDS_DB"]
    with app.app_context():
        create_database(records)
        db.session.remove()
    theirs.put({"_id": "good", **RECORDS_VISIT})
    theirs.put({"_id": "bad", **RECORDS_VISIT, "kind": "house-party"})
    result = wasl(url_of(theirs), records)
    assert result.exit_code == 0, result.output
    assert "written 1, 1 refused" in result.output
    good = local_doc(app, records, "good")
    assert good is not None and good["kind"] == "routine"
    assert local_doc(app, records, "bad") is None
    with app.app_context():
        held = db.session.scalars(db.select(QuarantinedRevision)).all()
        assert [(h.doc_id, h.actor, h.state) for h in held] == [("bad", "bridge", "held")]
        assert "kind" in held[0].fields
        db.session.remove()


def test_continuous_replication_follows_new_changes_until_interrupted(
        app: Flask, cli_env: dict[str, str], theirs: Db) -> None:
    theirs.put({"_id": "first", "v": 1})
    proc = subprocess.Popen([sys.executable, "-c", "from wasl_cli import main; main()", "replicate", url_of(theirs),
                             "live", "--create-target", "--continuous", "--interval", "0.2"],
                            cwd=ROOT, env={**os.environ, **cli_env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert _appears(app, "live", "first")
        theirs.put({"_id": "later", "v": 2})
        assert _appears(app, "live", "later")
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0 and "stopped" in output, output


def _appears(app: Flask, name: str, doc_id: str, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if local_doc(app, name, doc_id) is not None:
                return True
        except Exception:  # the database may not exist yet
            pass
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("args, message", [
    (["nowhere", "http://admin:secret@127.0.0.1:9/x"], "Database does not exist."),
    (["http://127.0.0.1:9/x", "made", "--create-target"], "cannot reach http://127.0.0.1:9/x"),
    (["copy", "http://127.0.0.1:9/x", "--retries", "0"], "Database does not exist."),
    (["same", "same"], "SOURCE and TARGET are the same database"),
])
def test_bad_input_is_one_plain_line(app: Flask, cli_env: dict[str, str], args: list[str], message: str) -> None:
    result = wasl(*args)
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output, result.output
    with app.app_context():
        assert not {"nowhere", "same", "made"} & set(list_databases())
        db.session.remove()
