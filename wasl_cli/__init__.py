"""The ``wasl`` command: every command a user runs.

User mistakes become one plain line (``click.ClickException``), never a traceback.
"""
from __future__ import annotations

import os
import shutil
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
        _upgrade_central(app.config["WASL_RECORDS_DB"])
    click.echo(f"database ready: {app.config['SQLALCHEMY_DATABASE_URI'].split('://')[0]}, db '{db_name}'")
    if generated:
        click.echo(f"admin password (generated, shown once): {generated}")
    elif not app.config.get("WASL_ADMIN_PASSWORD"):
        click.echo("admin account exists; to reset its password, run with WASL_ADMIN_PASSWORD set")


def _upgrade_central(records_db: str) -> None:
    """Bring the central tables of an older install to this version's shape, and refill them.

    They are derived from the records database, so a new column is filled by rebuilding
    rather than by a data migration; a fresh install has nothing to change.
    """
    from models import Database, db
    from sync.records.upgrade import upgrade

    changes = upgrade()
    if changes and db.session.scalar(db.select(Database.id).where(Database.name == records_db)) is not None:
        click.echo("central tables upgraded: " + ", ".join(changes))
        from .worker import rebuild_with_bar
        rebuild_with_bar(records_db)


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
@click.option("--no-worker", is_flag=True,
              help="Do not start `wasl worker` beside the server (run it elsewhere to keep the central records).")
def serve(host: str, port: int, workers: int, threads: int, no_worker: bool) -> None:
    """Serve the app with gunicorn (threaded, so long-poll feeds do not block others), and the records worker.

    `wasl worker` runs as a child process that keeps the central records up to date; it is
    stopped when the server exits. --no-worker leaves it out.
    """
    from .serve import gunicorn_command
    from .worker import supervise
    gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable)) or shutil.which("gunicorn")
    if gunicorn is None:
        raise click.ClickException("gunicorn is not installed in this environment")
    click.echo(f"Wasl serving on http://{host}:{port}/  (CouchDB root: http://{host}:{port}/couch/)")
    click.echo(_snippet(host, port))
    cmd = gunicorn_command(gunicorn, host, port, workers=workers, threads=threads)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    raise SystemExit(supervise(cmd, root, with_worker=not no_worker))


def _in_app(fn):  # type: ignore[no-untyped-def]
    """Run ``fn`` inside the app, turning the store's refusals into one plain line.

    Every connection is given back when the command ends: the app's pool would outlive it.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from models import db
    from sync.errors import CouchError
    app = _app()
    with app.app_context():
        try:
            return fn()
        except CouchError as exc:
            raise click.ClickException(exc.reason) from None
        except SQLAlchemyError:
            # The driver's message may hold the database URL and its password: never print it.
            raise click.ClickException("the database refused the command: is it reachable, and has "
                                       "`wasl init` created the tables?") from None
        finally:
            db.session.remove()
            db.engine.dispose()


@main.group()
def user() -> None:
    """Accounts (the full access model comes with roles and areas)."""


@user.command("add")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True,
              help="chw, supervisor, organiser, clinician or admin (repeatable).")
@click.password_option(envvar="WASL_USER_PASSWORD", help="The password (prompted, or $WASL_USER_PASSWORD).")
def user_add(name: str, roles: tuple[str, ...], password: str) -> None:
    """Create an account (the name, roles and password are checked; the audit log records it)."""
    from sync.access import add_user

    from .access import cli_actor
    _in_app(lambda: add_user(name, password, roles, actor=cli_actor()))
    click.echo(f"user {name} created")


@main.group()
def device() -> None:
    """Tablets: enrolment codes, status, retire and revoke."""


@device.command("code")
@click.option("--user", "user_name", required=True, help="The account the tablet will sync as.")
@click.option("--hours", default=24, show_default=True, type=click.IntRange(1, 24 * 14))
def device_code(user_name: str, hours: int) -> None:
    """Create a one-time enrolment code for a user's tablet."""
    from sync.devices import create_code
    code = _in_app(lambda: create_code(user_name, hours * 3600))
    click.echo(f"enrolment code for {user_name} (valid {hours} h, single use): {code}")


@device.command("list")
def device_list() -> None:
    """List enrolled devices."""
    from sync.devices import list_devices
    for info in _in_app(list_devices):
        click.echo(f"{info.device_id}  {info.user:<16} {info.status:<8} {info.name}")


@device.command("retire")
@click.argument("device_id")
def device_retire(device_id: str) -> None:
    """Retire a tablet: it pushes what it has not synced, then wipes its copy."""
    from sync.devices import set_status
    _in_app(lambda: set_status(device_id, "retired"))
    click.echo(f"device {device_id} retired: it will push its unsynced work, then wipe")


@device.command("revoke")
@click.argument("device_id")
def device_revoke(device_id: str) -> None:
    """Revoke a lost or stolen tablet: refused at once, told to wipe."""
    from sync.devices import set_status
    _in_app(lambda: set_status(device_id, "revoked"))
    click.echo(f"device {device_id} revoked: refused from now on, and told to wipe")


from .tablet import register as _register_device_commands  # noqa: E402

_register_device_commands(device)

from . import conflicts as _conflicts, duplicates as _duplicates, quarantine as _quarantine  # noqa: E402
from . import access as _access, audit as _audit, demo as _demo, replicate as _replicate  # noqa: E402
from . import scope as _scope, worker as _worker  # noqa: E402

for _module in (_quarantine, _conflicts, _worker, _duplicates, _access, _audit, _demo, _replicate, _scope):
    _module.register(main)
