"""Fixtures of the replication tests: pouchdb-server 4.2.0 (bench/peer) as a real second server."""
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

from .helpers import ADMIN

PEER = Path(__file__).resolve().parents[2] / "bench" / "peer"
BINARY = PEER / "node_modules" / "pouchdb-server" / "bin" / "pouchdb-server"


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
