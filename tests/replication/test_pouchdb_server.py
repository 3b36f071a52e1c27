"""The replicator between Wasl and pouchdb-server 4.2.0 (bench/peer), both ways."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bench.replication import stop_process
from sync.replicator import replicate, sync_both

from .helpers import ADMIN, Db, inline, new_db, remote

PEER = Path(__file__).resolve().parents[2] / "bench" / "peer"
BINARY = PEER / "node_modules" / "pouchdb-server" / "bin" / "pouchdb-server"
NO_SLEEP = {"sleep": lambda s: None}


def require_pouchdb_server() -> None:
    """Skip when pouchdb-server is not installed; fail instead under CI=true (STYLE.md 5.6)."""
    reason = None
    if shutil.which("node") is None:
        reason = "node is not on PATH"
    elif not BINARY.exists():
        reason = "bench/peer/node_modules is missing (run: npm ci --prefix bench/peer)"
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"pouchdb-server required in CI: {reason}", pytrace=False)
    pytest.skip(f"pouchdb-server unavailable: {reason}")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def pouchdb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """pouchdb-server 4.2.0 on a temp dir with the tests' admin account; yield its root URL."""
    require_pouchdb_server()
    workdir, port = tmp_path_factory.mktemp("pouchdb-server"), free_port()
    cmd = ["node", str(BINARY), "--port", str(port), "--dir", str(workdir), "--config", str(workdir / "config.json"),
           "--no-stdout-logs"]
    with open(workdir / "server.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (workdir / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "pouchdb-server did not start in 60 s"
            try:
                if requests.get(url + "/", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        # Leave "admin party": authenticate every request, as Wasl does.
        requests.put(f"{url}/_config/admins/{ADMIN[0]}", json=ADMIN[1], timeout=10).raise_for_status()
        yield url
    finally:
        stop_process(proc)


@pytest.fixture
def wasl_and_pouch(live_server: str, pouchdb_server: str) -> Iterator[tuple[Db, Db]]:
    """A fresh database on each server."""
    ours, theirs = new_db(live_server + "/couch"), new_db(pouchdb_server)
    yield ours, theirs
    ours.close()
    theirs.close()


def fill(db: Db, prefix: str) -> None:
    """Docs, an edited doc, a deleted doc and an attachment."""
    db.put({"_id": f"{prefix}-1", "v": 1})
    db.put({"_id": f"{prefix}-2", "v": 1})
    db.update(f"{prefix}-2", v=2)
    db.put({"_id": f"{prefix}-3", "v": 1})
    db.delete(f"{prefix}-3")
    db.put({"_id": f"{prefix}-att", "_attachments": {"a.bin": inline(bytes(range(256)) * 40)}})


@pytest.mark.parametrize("direction", ["push", "pull", "sync"])
def test_replicator_works_with_pouchdb_server(wasl_and_pouch: tuple[Db, Db], direction: str) -> None:
    ours, theirs = wasl_and_pouch
    if direction in ("push", "sync"):
        fill(ours, "w")
    if direction in ("pull", "sync"):
        fill(theirs, "p")
    with remote(ours) as a, remote(theirs) as b:
        runs = {"push": lambda: [replicate(a, b, **NO_SLEEP)], "pull": lambda: [replicate(b, a, **NO_SLEEP)],
                "sync": lambda: list(sync_both(a, b, **NO_SLEEP))}[direction]()
        assert all(r.ok and not r.errors for r in runs), runs
        again = sync_both(a, b, **NO_SLEEP)
        assert [r.docs_read for r in again] == [0, 0]
    assert ours.snapshot() == theirs.snapshot()
    prefix = "w" if direction == "push" else "p"
    assert ours.attachment(f"{prefix}-att", "a.bin") == theirs.attachment(f"{prefix}-att", "a.bin")


def test_conflicts_converge_between_wasl_and_pouchdb_server(wasl_and_pouch: tuple[Db, Db]) -> None:
    ours, theirs = wasl_and_pouch
    ours.put({"_id": "hh-1", "head": "Banda"})
    with remote(ours) as a, remote(theirs) as b:
        assert replicate(a, b, **NO_SLEEP).ok
        ours.update("hh-1", head="Banda J.")
        theirs.update("hh-1", head="Phiri")
        theirs.update("hh-1", gps=[-13.9, 33.7])
        assert all(r.ok for r in sync_both(a, b, **NO_SLEEP))
    snap = ours.snapshot()
    assert snap == theirs.snapshot()
    assert len(snap["hh-1"]["leaves"]) == 2 and snap["hh-1"]["winner"].startswith("3-")
