"""SIGKILL of a real `wasl worker` process, again and again, while tablets' changes keep arriving.

After the last restart the worker catches up, and its central records equal a fresh rebuild
of a copy of the database, row for row: nothing lost, nothing counted twice.
"""
from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from api import create_app
from bench.records import make_dataset, new_rev, visit
from bench.replication import ROOT, VENV_BIN
from models import Database, db, init_db
from models.health import WorkerCheckpoint
from sync.records.worker import rebuild, snapshot
from sync.store import create_database
from sync.writes import bulk_docs

DB_NAME = "records"
KILLS = 6
CHANGES = 3000
Doc = dict[str, Any]


def make(url: str) -> Flask:
    return create_app({"SQLALCHEMY_DATABASE_URI": url, "WASL_RECORDS_DB": DB_NAME, "SECRET_KEY": "test-only",
                       "WASL_ADMIN_PASSWORD": "secret"})


def positions() -> tuple[int, int]:
    """(worker checkpoint, database update_seq), as committed now."""
    db.session.commit()
    done = db.session.scalar(select(WorkerCheckpoint.seq).where(WorkerCheckpoint.db_name == DB_NAME)) or 0
    return done, db.session.scalar(select(Database.update_seq).where(Database.name == DB_NAME)) or 0


class Worker:
    """`wasl worker` as a real process on the test's SQLite file."""

    def __init__(self, tmp: Path, url: str) -> None:
        self.env = {**os.environ, "WASL_DATABASE_URL": url, "WASL_INSTANCE": str(tmp / "instance"),
                    "WASL_RECORDS_DB": DB_NAME, "WASL_SECRET_KEY": "test-only"}
        self.log = tmp / "worker.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, batch_size: int) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([str(VENV_BIN / "wasl"), "worker", "--batch-size", str(batch_size),
                                          "--poll", "0.05"], cwd=ROOT, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT)

    def signal(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(15)


def changes(rng: random.Random) -> Iterator[list[Doc]]:
    """Batches of tablet changes: records, visits, patient edits and merges, visit edits and deletions."""
    data = make_dataset(visits=1200, patients=150, seed=11)
    latest: dict[str, Doc] = {d["_id"]: d for d in data.records}
    yield data.records
    visits = list(data.visits)
    sent = 0
    while sent < CHANGES:
        batch = []
        for _ in range(rng.randrange(5, 40)):
            roll = rng.random()
            if roll < 0.5 and visits:
                doc = visits.pop()
            elif roll < 0.6:
                doc = visit(rng, rng.choice(data.patients))
            elif roll < 0.8:
                old = latest[rng.choice(data.patients)["_id"]]
                body = {k: v for k, v in old.items() if not k.startswith("_")}
                body.pop("merged_into", None)
                if rng.random() < 0.4:  # a merge into another patient (chains and loops included)
                    body["merged_into"] = rng.choice(data.patients)["_id"]
                body["given_name"] = body["given_name"] + "a"
                doc = new_rev(rng, {"_id": old["_id"], **body}, old)
            else:
                candidates = [d for d in latest.values() if d.get("type") == "visit" or "_deleted" in d]
                if not candidates:
                    continue
                old = rng.choice(candidates)
                if old.get("_deleted") or rng.random() < 0.5:  # delete (or undelete) a visit
                    body = {"_deleted": True} if not old.get("_deleted") else dict(old["_body"])
                else:
                    body = {**{k: v for k, v in old.items() if not k.startswith("_")},
                            "observations": {"muac_mm": rng.randrange(90, 160)}}
                doc = new_rev(rng, {"_id": old["_id"], **body}, old)
                if body.get("_deleted"):
                    doc["_body"] = {k: v for k, v in old.items() if not k.startswith("_")}
            batch.append(doc)
            latest[doc["_id"]] = doc
        sent += len(batch)
        yield batch


def sent(doc: Doc) -> Doc:
    return {k: v for k, v in doc.items() if k != "_body"}


def test_worker_sigkilled_repeatedly_ends_equal_to_a_rebuild(tmp_path: Path) -> None:
    started = time.monotonic()
    rng = random.Random(2026)
    url = f"sqlite:///{tmp_path}/wasl.sqlite"
    app = make(url)
    with app.app_context():
        init_db()
        create_database(DB_NAME)
    batches = list(changes(random.Random(7)))
    size = -(-len(batches) // (KILLS + 1))
    rounds = [batches[i:i + size] for i in range(0, len(batches), size)]
    assert len(rounds) == KILLS + 1
    final = {d["_id"]: d["_rev"] for batch in batches for d in batch}
    failures: list[BaseException] = []

    def write(round_batches: list[list[Doc]]) -> None:
        """Send one round's batches, spread over about a second, as tablets would."""
        with app.app_context():
            try:
                for batch in round_batches:
                    assert bulk_docs(DB_NAME, [sent(d) for d in batch], new_edits=False) == []
                    time.sleep(0.02)
            except BaseException as exc:  # pragma: no cover - reported below
                failures.append(exc)
            finally:
                db.session.remove()

    worker = Worker(tmp_path, url)
    behind_at_kill = 0
    with app.app_context():
        worker.start(batch_size=rng.randrange(20, 80))
        for number, round_batches in enumerate(rounds):
            writer = threading.Thread(target=write, args=(round_batches,))
            writer.start()
            if number < KILLS:
                # Kill only once this worker has committed something, at a random moment after.
                mark = positions()[0]
                deadline = time.monotonic() + 20
                while positions()[0] == mark and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(rng.uniform(0, 0.2))
                done, seq = positions()
                behind_at_kill += done < seq
                assert worker.signal(signal.SIGKILL) == -signal.SIGKILL
                worker.start(batch_size=rng.randrange(20, 80))
            writer.join(60)
        assert not failures
        deadline = time.monotonic() + 30
        while positions()[0] != positions()[1] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker.signal(signal.SIGTERM) == 0, worker.log.read_text()[-3000:]
        done, seq = positions()
        assert done == seq and seq >= CHANGES
        assert behind_at_kill >= KILLS // 2, "the kills did not interrupt a worker with work to do"
        projected = snapshot(DB_NAME)
        db.session.remove()
        db.engine.dispose()

    # Every document written is there, at the revision written last.
    assert {r["doc_id"]: r["rev"] for table in projected.values() for r in table} == final

    copy = tmp_path / "copy.sqlite"
    with sqlite3.connect(tmp_path / "wasl.sqlite") as source, sqlite3.connect(copy) as target:
        source.backup(target)
    again = make(f"sqlite:///{copy}")
    with again.app_context():
        rebuild(DB_NAME)
        assert positions()[0] == seq
        assert snapshot(DB_NAME) == projected
        db.session.remove()
        db.engine.dispose()
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_worker_stops_cleanly_on_sigterm_and_ctrl_c(tmp_path: Path, sig: int) -> None:
    url = f"sqlite:///{tmp_path}/wasl.sqlite"
    app = make(url)
    with app.app_context():
        init_db()
        create_database(DB_NAME)
        data = make_dataset(visits=30, patients=5, seed=3)
        assert bulk_docs(DB_NAME, data.records + data.visits, new_edits=False) == []
        worker = Worker(tmp_path, url)
        worker.start(batch_size=500)
        deadline = time.monotonic() + 20
        while positions()[0] != positions()[1] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert positions()[0] == positions()[1] == 37
        assert worker.signal(sig) == 0
        db.session.remove()
        db.engine.dispose()


def test_serve_keeps_a_worker_beside_the_server_and_stops_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wasl_cli import worker as cli
    url = f"sqlite:///{tmp_path}/wasl.sqlite"
    for key, value in Worker(tmp_path, url).env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(cli, "RESTART_PAUSE_S", 0.2)
    app = make(url)
    with app.app_context():
        init_db()
        create_database(DB_NAME)
        data = make_dataset(visits=20, patients=5, seed=4)
        assert bulk_docs(DB_NAME, data.records, new_edits=False) == []
        db.session.remove()
    marker = tmp_path / "stop-server"
    # Stands in for gunicorn: runs until the test says so.
    server = [str(VENV_BIN / "python"), "-c", "import os, time\n"
              f"while not os.path.exists({str(marker)!r}): time.sleep(0.05)"]
    children: list[subprocess.Popen[bytes]] = []
    failures: list[BaseException] = []

    def drive() -> None:
        """Kill the first worker once it caught up; the second must carry on."""
        with app.app_context():
            try:
                deadline = time.monotonic() + 30
                while (not children or positions()[0] != 7) and time.monotonic() < deadline:
                    time.sleep(0.05)
                os.kill(children[0].pid, signal.SIGKILL)
                while len(children) < 2 and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert bulk_docs(DB_NAME, data.visits, new_edits=False) == []
                while positions()[0] != 27 and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert positions() == (27, 27)
            except BaseException as exc:  # pragma: no cover - reported below
                failures.append(exc)
            finally:
                db.session.remove()
                db.engine.dispose()
                marker.touch()

    helper = threading.Thread(target=drive)
    helper.start()
    assert cli.supervise(server, str(ROOT), on_worker=children.append) == 0
    helper.join(10)
    assert not failures, failures
    assert [c.returncode for c in children] == [-signal.SIGKILL, 0]  # the second was stopped, and waited for

    idle: list[subprocess.Popen[bytes]] = []
    marker.touch()
    assert cli.supervise(server, str(ROOT), with_worker=False, on_worker=idle.append) == 0 and idle == []


def test_children_end_when_serve_is_killed(tmp_path: Path) -> None:
    """A SIGKILLed `wasl serve` leaves no server or worker running (they get SIGTERM from the kernel)."""
    pids = tmp_path / "pids"
    # The stand-in server writes its pid and that of the supervisor, then waits forever.
    server = [str(VENV_BIN / "python"), "-c", "import os, time\n"
              f"open({str(pids)!r}, 'w').write(str(os.getpid()))\n"
              "while True: time.sleep(0.05)"]
    code = ("import sys\nfrom wasl_cli import worker\n"
            f"worker.worker_command = lambda: {server!r}\n"  # the worker: one more waiting child
            f"sys.exit(worker.supervise({server!r}, {str(ROOT)!r}))")
    supervisor = subprocess.Popen([str(VENV_BIN / "python"), "-c", code], cwd=ROOT)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not pids.exists():
            time.sleep(0.05)
        time.sleep(0.3)  # both children started
        children = [int(line.split()[1]) for line in subprocess.run(
            ["ps", "-o", "ppid=,pid=", "-A"], capture_output=True, text=True, check=True).stdout.splitlines()
            if int(line.split()[0]) == supervisor.pid]
        assert len(children) == 2
        supervisor.kill()
        supervisor.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(pid) for pid in children):
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in children)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
