"""The ``wasl`` command: every command a user runs.

User mistakes become one plain line (``click.ClickException``), never a traceback.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import click

from api import create_app


def _app():  # type: ignore[no-untyped-def]
    return create_app()


@click.group()
def main() -> None:
    """Wasl: an offline-first backend for community health workers."""


@main.command()
@click.option("--db", "db_name", default="wasl", show_default=True, help="Database to create if missing.")
def init(db_name: str) -> None:
    """Create the tables, the server identity, the admin account and a database."""
    from models import init_db
    from sync.errors import FileExists, IllegalDatabaseName
    from sync.store import DB_NAME, create_database

    if not DB_NAME.match(db_name):  # before anything is created: bad input changes nothing
        raise click.BadParameter(IllegalDatabaseName.reason, param_hint="'--db'")
    app = _app()
    with app.app_context():
        generated = init_db()
        try:
            create_database(db_name)
        except FileExists:
            pass
    click.echo(f"database ready: {app.config['SQLALCHEMY_DATABASE_URI'].split('://')[0]}, db '{db_name}'")
    if generated:
        click.echo(f"admin password (generated, shown once): {generated}")
    elif not app.config.get("WASL_ADMIN_PASSWORD"):
        click.echo("admin account exists; to reset its password, run with WASL_ADMIN_PASSWORD set")


def _snippet(host: str, port: int) -> str:
    url = f"http://admin:PASSWORD@{host}:{port}/couch/wasl"
    return ("Replicate with PouchDB:\n"
            "  const local = new PouchDB('tablet');\n"
            f"  local.sync(new PouchDB('{url}'), {{live: true, retry: true}});")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=lambda: int(os.environ.get("PORT", "5000")), type=int,
              show_default="$PORT or 5000")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=32, show_default=True, type=click.IntRange(1, 512),
              help="Threads per worker; each held long-poll feed occupies one.")
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the app with gunicorn (threaded, so long-poll feeds do not block others)."""
    gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable)) or shutil.which("gunicorn")
    if gunicorn is None:
        raise click.ClickException("gunicorn is not installed in this environment")
    click.echo(f"Wasl serving on http://{host}:{port}/  (CouchDB root: http://{host}:{port}/couch/)")
    click.echo(_snippet(host, port))
    cmd = [gunicorn, "-k", "gthread", "-w", str(workers), "--threads", str(threads),
           "-b", f"{host}:{port}", "--timeout", "120", "--graceful-timeout", "5", "wsgi:app"]
    raise SystemExit(subprocess.call(cmd, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
