"""`wasl worker` and `wasl rebuild`: the central records, from the shell; and the worker beside `wasl serve`."""
from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

DB_HELP = "The records database (default: $WASL_RECORDS_DB or wasl)."
RESTART_PAUSE_S = 5.0  # a worker that keeps dying is restarted at most this often
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _app_db(db_name: str | None) -> tuple[Any, str]:
    """The app and the database name to work on."""
    from api import create_app
    app = create_app()
    return app, db_name or app.config["WASL_RECORDS_DB"]


def _plainly(fn: Callable[[], Any], name: str) -> Any:
    """Run ``fn``; a missing database or an unreachable one becomes one plain line."""
    from sqlalchemy.exc import SQLAlchemyError

    from sync.errors import CouchError, DatabaseNotFound
    try:
        return fn()
    except DatabaseNotFound:
        raise click.ClickException(f"no database named {name!r} (create it with: wasl init --db {name})") from None
    except CouchError as exc:
        raise click.ClickException(exc.reason) from None
    except SQLAlchemyError:
        # The driver's message may hold the database URL and its password: never print it.
        raise click.ClickException("cannot read the central records: is the database reachable, "
                                   "and has `wasl init` created the tables?") from None


@contextmanager
def _closing(db: Any) -> Iterator[None]:
    """Give every connection back when the command ends (the app's pool outlives it otherwise)."""
    try:
        yield
    finally:
        db.session.remove()
        db.engine.dispose()


def _counts_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {table}{'s' if n != 1 else ''}" for table, n in counts.items())


def register(main: click.Group) -> None:
    """Add this module's commands to ``main``."""

    @main.command("worker")
    @click.option("--db", "db_name", default=None, help=DB_HELP)
    @click.option("--once", is_flag=True, help="Project what is pending, then exit.")
    @click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10000))
    @click.option("--poll", default=0.2, show_default=True, type=click.FloatRange(0.01, 60),
                  help="Seconds between looks for new changes made by other processes.")
    def worker(db_name: str | None, once: bool, batch_size: int, poll: float) -> None:
        """Keep the central records up to date from the change feed (wasl serve runs this too)."""
        from tqdm import tqdm

        from models import db
        from sync.records import worker as records
        app, name = _app_db(db_name)
        with app.app_context(), _closing(db):
            if once:
                state = _plainly(lambda: records.status(name), name)
                with tqdm(total=state["pending"], unit="change", desc="projecting") as bar:
                    done = _plainly(lambda: records.run_once(
                        name, batch_size=batch_size, progress=lambda n: bar.update(n - bar.n)), name)
                state = _plainly(lambda: records.status(name), name)
                click.echo(f"projected {done} change(s) of '{name}'; checkpoint {state['checkpoint']}, "
                           f"update_seq {state['update_seq']}")
                return
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
            click.echo(f"worker: projecting '{name}' into the central records (Ctrl-C stops)", err=True)
            try:
                records.run_forever(name, poll=poll, stop=stop, batch_size=batch_size)
            except KeyboardInterrupt:
                pass

    @main.command("rebuild")
    @click.option("--db", "db_name", default=None, help=DB_HELP)
    def rebuild(db_name: str | None) -> None:
        """Empty the central records of a database and project every document again."""
        from models import db
        app, name = _app_db(db_name)
        with app.app_context(), _closing(db):
            rebuild_with_bar(name)


def rebuild_with_bar(name: str) -> None:
    """Rebuild the central records of ``name`` (inside an app context), a progress bar showing."""
    from tqdm import tqdm

    from sync.records import worker as records
    with tqdm(unit="doc", desc="rebuilding") as bar:
        def progress(done: int, total: int) -> None:
            bar.total = max(total, done)
            bar.update(done - bar.n)
        done = _plainly(lambda: records.rebuild(name, progress), name)
        counts = _plainly(lambda: records.counts(name), name)
    click.echo(f"rebuilt '{name}' from {done} change(s): {_counts_line(counts)} (not deleted)")


# ------------------------------------------------------------------------------------------------ serve
def worker_command() -> list[str]:
    """The command line of ``wasl worker`` in this environment."""
    script = shutil.which("wasl", path=os.path.dirname(sys.executable)) or shutil.which("wasl")
    if script is not None:
        return [script, "worker"]
    return [sys.executable, "-c", "from wasl_cli import main; main()", "worker"]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a child and wait for it; kill it if it has not ended within 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when ``wasl serve`` dies.

    Without it a SIGKILLed ``wasl serve`` would leave gunicorn and the worker running,
    holding the port and the database. Elsewhere (no prctl) this does nothing.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def supervise(server: list[str], cwd: str, *, with_worker: bool = True,
              on_worker: Callable[[subprocess.Popen[bytes]], None] | None = None) -> int:
    """Run ``server`` and, unless ``with_worker`` is false, ``wasl worker`` beside it; return the server's code.

    SIGTERM is passed on to the server. A worker that dies is started again; when the
    server ends, the worker is terminated and waited for. ``on_worker`` sees each worker started.
    """
    def start_worker() -> subprocess.Popen[bytes]:
        child = subprocess.Popen(worker_command(), cwd=cwd, preexec_fn=_die_with_parent)
        if on_worker is not None:
            on_worker(child)
        return child

    child = start_worker() if with_worker else None
    started = time.monotonic()
    previous = signal.getsignal(signal.SIGTERM)
    try:
        proc = subprocess.Popen(server, cwd=cwd, preexec_fn=_die_with_parent)
        signal.signal(signal.SIGTERM, lambda signum, frame: proc.send_signal(signum))
        while True:
            try:
                return proc.wait(1)
            except subprocess.TimeoutExpired:
                if child is not None and child.poll() is not None and time.monotonic() - started > RESTART_PAUSE_S:
                    click.echo(f"worker exited with {child.returncode}; starting it again", err=True)
                    child, started = start_worker(), time.monotonic()
            except KeyboardInterrupt:
                continue  # Ctrl-C reached the server too: wait for it to finish
    finally:
        signal.signal(signal.SIGTERM, previous)
        if child is not None:
            _stop(child)
