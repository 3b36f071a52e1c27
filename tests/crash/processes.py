"""The two processes the crash tests kill: a gunicorn Wasl server and ``wasl worker``, on any database URL."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bench.groups import stop_group
from bench.replication import ROOT, VENV_BIN, free_port

DB_NAME = "records"
START_TIMEOUT_S = 60


def wasl_env(workdir: Path, url: str, password: str) -> dict[str, str]:
    """The environment of a Wasl server or worker on ``url`` whose records database is ``records``."""
    return {**os.environ, "WASL_DATABASE_URL": url, "WASL_ADMIN_PASSWORD": password,
            "WASL_INSTANCE": str(workdir / "instance"), "WASL_SECRET_KEY": "test-only", "WASL_RECORDS_DB": DB_NAME}


class Server:
    """Wasl under gunicorn (gthread, 1 worker) in its own process group, with a fresh one waiting to take over.

    After a SIGKILL the waiting server takes the proxy's traffic at once and another one boots
    in the background: clients retry against a new process on the state the killed one left,
    without waiting a second or two for gunicorn to import the app.
    """

    def __init__(self, workdir: Path, url: str, password: str) -> None:
        self.env = wasl_env(workdir, url, password)
        self.log = workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.on_switch: Callable[[int], None] = lambda port: None
        self.starts = 0
        self._next: list[tuple[subprocess.Popen[bytes], int] | BaseException] = []
        self._procs: list[subprocess.Popen[bytes]] = []  # every gunicorn started, booting ones included
        self._booting: threading.Thread | None = None

    def _spawn(self) -> tuple[subprocess.Popen[bytes], int]:
        """Start gunicorn on a free port; return it once the CouchDB root answers 200."""
        port = free_port()
        cmd = [str(VENV_BIN / "gunicorn"), "-k", "gthread", "--threads", "8", "-w", "1",
               "-b", f"127.0.0.1:{port}", "--timeout", "120", "wsgi:app"]
        with open(self.log, "ab") as out:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self._procs.append(proc)
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/couch/", timeout=2) as resp:
                    if resp.status == 200:
                        return proc, port
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                stop_group(proc, signal.SIGKILL)
                raise RuntimeError(f"gunicorn did not answer in {START_TIMEOUT_S} s:\n{self.log_tail()}")
            time.sleep(0.05)

    def _boot_next(self) -> None:
        def boot() -> None:
            try:
                self._next.append(self._spawn())
            except BaseException as exc:
                self._next.append(exc)
        self._booting = threading.Thread(target=boot, daemon=True)
        self._booting.start()

    def wait_standby(self) -> None:
        """Block until the server waiting to take over answers (it boots in the background)."""
        if self._booting is not None:
            self._booting.join(START_TIMEOUT_S + 5)

    def _take_next(self) -> None:
        """Make the waiting server the serving one, and boot the next."""
        assert self._booting is not None
        self._booting.join(START_TIMEOUT_S + 5)
        item = self._next.pop()
        if isinstance(item, BaseException):
            raise item
        self.proc, self.port = item
        self.on_switch(self.port)
        self._boot_next()

    def start(self) -> None:
        """Start the serving server, and one waiting behind it."""
        self.proc, self.port = self._spawn()
        self.on_switch(self.port)
        self._boot_next()

    def kill(self) -> None:
        """SIGKILL the serving master and its worker at once (the whole process group); the next takes over."""
        assert self.proc is not None
        stop_group(self.proc, signal.SIGKILL)
        assert self.proc.returncode == -signal.SIGKILL, self.proc.returncode
        self._take_next()

    def stop(self) -> None:
        """Stop every server started, a booting one too (idempotent).

        SIGKILL: nothing is in flight any more, and gunicorn's quick shutdown (SIGINT) was seen to take
        over 10 s under load.
        """
        for proc in self._procs:
            if proc.poll() is None:
                stop_group(proc, signal.SIGKILL)
        if self._booting is not None:
            self._booting.join(START_TIMEOUT_S + 5)

    def log_tail(self) -> str:
        """The end of the server log, for a failure message."""
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no log)"


class Worker:
    """``wasl worker`` as a real process on the same database."""

    def __init__(self, workdir: Path, url: str, password: str) -> None:
        self.env = wasl_env(workdir, url, password)
        self.log = workdir / "worker.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log_at = 0

    def start(self, batch_size: int) -> None:
        """Start the worker (it needs a second or two to import before it projects anything)."""
        # A worker killed while it still imported wrote nothing: look for the start line after this point only.
        self._log_at = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([str(VENV_BIN / "wasl"), "worker", "--batch-size", str(batch_size),
                                          "--poll", "0.05"], cwd=ROOT, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT)
        self.starts += 1

    def ready(self) -> bool:
        """Whether the worker started last has imported the app and begun projecting (its start line is out)."""
        with open(self.log, "rb") as log:
            log.seek(self._log_at)
            return b"worker: projecting" in log.read()

    def kill(self) -> None:
        """SIGKILL the worker and reap it."""
        assert self.proc is not None
        self.proc.kill()
        assert self.proc.wait(15) == -signal.SIGKILL

    def stop(self) -> int | None:
        """SIGTERM the worker and return its exit code (None when it was not running)."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        self.proc.terminate()
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise

    def log_tail(self) -> str:
        """The end of the worker log."""
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no log)"
