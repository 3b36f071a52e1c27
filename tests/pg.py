"""A throwaway PostgreSQL 15 cluster for tests, and the session fixture ``pg_url``.

Load it as a plugin (``pytest_plugins = ["tests.pg"]``). Tests that take ``pg_url``
are marked ``postgres`` automatically, so ``-m "not postgres"`` deselects them.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg
import pytest

PG_BIN = Path(os.environ.get("WASL_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_TOOLS = ("initdb", "pg_ctl", "postgres")
PG_USER = "postgres"
DB_NAME = "wasl"
START_ATTEMPTS = 3
READY_TIMEOUT = 30.0
CI_SETUP_HINT = ("on a clean Debian machine .ci/run must first run "
                 "`apt-get install -y postgresql-15` (the package also creates the `postgres` user)")


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL 15 server binaries are not installed."""


def missing_tools() -> list[str]:
    """Names of the server binaries absent from ``PG_BIN``."""
    return [tool for tool in PG_TOOLS if not os.access(PG_BIN / tool, os.X_OK)]


def is_root() -> bool:
    """True when the tests run as root (initdb and postgres then need another user)."""
    return os.geteuid() == 0


def check_postgres_user() -> pwd.struct_passwd:
    """The ``postgres`` OS account; fail clearly when it does not exist."""
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        raise RuntimeError(
            f"running as root, PostgreSQL must run as the OS user `{PG_USER}`, which does not exist; "
            f"{CI_SETUP_HINT} (or `useradd --system --home-dir /var/lib/postgresql {PG_USER}`)"
        ) from None


def traversable_by_others(path: Path) -> bool:
    """True when every directory from / down to ``path`` lets other users pass through."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


def make_base_dir() -> Path:
    """A fresh private directory that will hold the data directory, socket and log."""
    if not is_root():
        return Path(tempfile.mkdtemp(prefix="wasl-pg-"))
    # pytest's own tmp dirs (and a TMPDIR under /root) are 0700: postgres could not reach them.
    for parent in (Path(tempfile.gettempdir()), Path("/tmp"), Path("/var/tmp")):
        if parent.is_dir() and traversable_by_others(parent):
            base = Path(tempfile.mkdtemp(prefix="wasl-pg-", dir=parent))
            user = check_postgres_user()
            os.chown(base, user.pw_uid, user.pw_gid)
            return base
    raise RuntimeError("no temporary directory that the postgres user can reach"
                       " (tried $TMPDIR, /tmp, /var/tmp)")


def pg_command(tool: str, *args: str) -> list[str]:
    """Command line for a PostgreSQL tool, run as ``postgres`` when we are root."""
    command = [str(PG_BIN / tool), *args]
    # The server refuses to run as root, and initdb refuses to create a cluster for root.
    return ["runuser", "-u", PG_USER, "--", *command] if is_root() else command


def run_pg(tool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL tool; raise with its output when it fails."""
    result = subprocess.run(pg_command(tool, *args), cwd=cwd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{tool} {' '.join(args)} failed ({result.returncode}):\n"
                           f"{result.stdout}{result.stderr}")
    return result


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(log: Path, lines: int = 20) -> str:
    """The last lines of the server log, to explain a failed start."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


def start_server(base: Path, data: Path, log: Path) -> int:
    """Start the cluster on a free port and return the port; retry when a port was taken meanwhile."""
    error = ""
    for _ in range(START_ATTEMPTS):
        port = free_port()
        options = f"-k {base} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off"
        try:
            run_pg("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start",
                   cwd=base)
            return port
        except RuntimeError as exc:
            error = f"{exc}\nserver log:\n{log_tail(log)}"
    raise RuntimeError(f"PostgreSQL did not start after {START_ATTEMPTS} attempts: {error}")


def connect(port: int, **kwargs: Any) -> psycopg.Connection[Any]:
    """A connection to the maintenance database ``postgres`` over TCP."""
    return psycopg.connect(host="127.0.0.1", port=port, user=PG_USER, dbname="postgres", **kwargs)


def wait_ready(port: int) -> None:
    """Block until the server accepts TCP connections as ``postgres``."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            connect(port, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def create_database(port: int, name: str) -> None:
    """CREATE DATABASE outside a transaction, as PostgreSQL requires."""
    with connect(port, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def stop_server(base: Path, data: Path) -> None:
    """Stop the cluster at once; kill the postmaster we started if pg_ctl cannot."""
    try:
        run_pg("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop", cwd=base)
    except (RuntimeError, subprocess.TimeoutExpired):
        pid_file = data / "postmaster.pid"
        if pid_file.exists():
            # SIGQUIT is PostgreSQL's immediate shutdown; the pid is our own postmaster's.
            with suppress(ProcessLookupError, ValueError, IndexError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)


@contextmanager
def pg_cluster() -> Iterator[str]:
    """Run a throwaway PostgreSQL 15 cluster; yield an SQLAlchemy URL of its database ``wasl``."""
    absent = missing_tools()
    if absent:
        raise PostgresUnavailable(f"PostgreSQL 15 server binaries missing from {PG_BIN}:"
                                  f" {', '.join(absent)}; {CI_SETUP_HINT}")
    if is_root():
        check_postgres_user()
    base = make_base_dir()
    data, log = base / "data", base / "server.log"
    try:
        run_pg("initdb", "-D", str(data), "-A", "trust", "-U", PG_USER, "-E", "UTF8", "--locale=C",
               "--no-sync", cwd=base)
        port = start_server(base, data, log)
        try:
            wait_ready(port)
            create_database(port, DB_NAME)
            yield f"postgresql+psycopg://{PG_USER}@127.0.0.1:{port}/{DB_NAME}"
        finally:
            stop_server(base, data)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def in_ci() -> bool:
    """True on CI, where a missing PostgreSQL is a failure rather than a skip."""
    return os.environ.get("CI", "").lower() in {"true", "1"}


def require_binaries() -> None:
    """Skip the calling test when PostgreSQL is not installed; fail instead on CI."""
    absent = missing_tools()
    if absent:
        reason = f"PostgreSQL 15 binaries missing from {PG_BIN} ({', '.join(absent)})"
        if in_ci():
            pytest.fail(f"{reason}; {CI_SETUP_HINT}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """SQLAlchemy URL of an empty database ``wasl`` on a throwaway cluster shared by the session."""
    require_binaries()
    with pg_cluster() as url:
        yield url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses ``pg_url`` as ``postgres``, so ``-m`` can select or drop them."""
    for item in items:
        if "pg_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture
def pg_fresh_url(pg_url: str) -> str:
    """SQLAlchemy URL of a new, empty database on the session's cluster (one per test)."""
    port = int(pg_url.rsplit(":", 1)[1].split("/", 1)[0])
    name = f"t_{uuid.uuid4().hex[:16]}"
    create_database(port, name)
    return pg_url.rsplit("/", 1)[0] + "/" + name
