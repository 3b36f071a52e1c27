"""``wasl replicate SOURCE TARGET``: the bridge between this server and any CouchDB-protocol server.

Either side is a database of this server (its name, e.g. ``wasl``) or the URL of a remote
database (``https://user:pass@couch.example.org/wasl``). The replication is CouchDB's own
algorithm (sync.replicator) with checkpoints on both sides, so an interrupted run resumes
where it stopped. ``--continuous`` repeats it until Ctrl-C, waiting ``--interval`` seconds
whenever nothing new came.
"""
from __future__ import annotations

import time
from typing import Any

import click
from tqdm import tqdm

POLL_SECONDS = 2.0


def register(main: click.Group) -> None:
    """Add ``wasl replicate`` to ``main``."""
    main.add_command(replicate)


def _is_url(name: str) -> bool:
    return name.startswith(("http://", "https://"))


def _endpoint(name: str, *, target: bool, create: bool) -> Any:
    """A RemoteDatabase for a URL, else this server's database (the records one behind its gate)."""
    from flask import current_app

    from sync.errors import FileExists, TransientError
    from sync.records.quarantine import RecordsGate
    from sync.remote import RemoteDatabase
    from sync.serverdb import ServerDatabase
    from sync.store import create_database
    if _is_url(name):
        remote = RemoteDatabase(name)
        try:
            if target and create:
                remote.create()
            else:
                remote.info()  # unreachable or missing: say so now, before anything is created
        except TransientError as exc:
            raise click.ClickException(f"cannot reach {_describe(name)}: {exc.reason}") from None
        return remote
    if target and create:
        try:
            create_database(name)
        except FileExists:
            pass
    records = name == current_app.config["WASL_RECORDS_DB"]
    return ServerDatabase(name, gate=RecordsGate(actor="bridge") if target and records else None)


def _describe(name: str) -> str:
    """A URL without its credentials, or the local database's name."""
    from sync.remote import split_credentials
    return split_credentials(name)[0] if _is_url(name) else f"this server's '{name}'"


@click.command("replicate")
@click.argument("source")
@click.argument("target")
@click.option("--continuous", is_flag=True, help="Keep replicating new changes until Ctrl-C.")
@click.option("--create-target", is_flag=True, help="Create the target database if it is missing.")
@click.option("--batch-size", default=100, show_default=True, type=click.IntRange(1, 10000))
@click.option("--retries", default=8, show_default=True, type=click.IntRange(0, 100),
              help="Retries of a failing batch, with exponential backoff, before the run stops.")
@click.option("--interval", default=POLL_SECONDS, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds to wait, in --continuous mode, when nothing new came.")
def replicate(source: str, target: str, continuous: bool, create_target: bool, batch_size: int, retries: int,
              interval: float) -> None:
    """Replicate SOURCE to TARGET (each a database name of this server or a database URL)."""
    from sync.replicator import Replicator

    from . import _in_app
    if source == target:
        raise click.UsageError("SOURCE and TARGET are the same database")

    def run() -> None:
        src = _endpoint(source, target=False, create=False)
        dst = _endpoint(target, target=True, create=create_target)
        click.echo(f"replicating {_describe(source)} -> {_describe(target)}")
        try:
            while True:
                result = _one_pass(Replicator, src, dst, batch_size=batch_size, retries=retries)
                if not continuous:
                    return
                if result.docs_read == 0:
                    time.sleep(interval)
        except KeyboardInterrupt:
            click.echo("stopped")
    _in_app(run)


def _one_pass(replicator: Any, source: Any, target: Any, **options: Any) -> Any:
    """One replication with a progress bar; a failure is one plain line."""
    bar = tqdm(desc="documents", unit="doc", leave=False, disable=None)

    def progress(done: int, pending: int) -> None:
        bar.total = done + pending
        bar.n = done
        bar.refresh()
    try:
        result = replicator(source, target, progress=progress, **options).run()
    finally:
        bar.close()
    if not result.ok:
        reason = getattr(result.failure, "reason", None) or str(result.failure)
        raise click.ClickException(f"replication failed: {reason} (run it again to resume)")
    refused = f", {result.doc_write_failures} refused (see `wasl quarantine list`)" if result.doc_write_failures else ""
    click.echo(f"read {result.docs_read}, written {result.docs_written}{refused}; up to seq {result.last_seq}")
    return result
