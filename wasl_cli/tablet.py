"""The tablet's side of ``wasl device``: enrol, sync, status, PIN and key changes.

Every failure a CHW can meet is one plain line: a wrong PIN, no network, a refused
document, a retired or revoked device. Nothing here prints a traceback.

After a sync whose push went through, the tablet reports what it holds when its user's
scope changed (the fingerprint in ``GET /api/v1/devices/me``) or a day has passed, and
drops what the server says it may no longer see (docs/access.md, the drop protocol).
"""
from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm


def store_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--store", "store_path", required=True, type=click.Path(dir_okay=False),
                        help="The device's encrypted store (a SQLite file).")(fn)


def read_pin(confirm: bool = False, prompt: str = "PIN") -> str:
    pin = os.environ.get("WASL_PIN")
    if pin:
        return pin
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


@contextmanager
def opened(store_path: str, pin: str | None = None) -> Iterator[Any]:
    """Open the store with the PIN; a wrong PIN or a missing file is one plain line."""
    from crypto import DecryptionError
    from sync.device import DeviceStore
    if not Path(store_path).exists():
        raise click.ClickException(f"no store at {store_path}: enrol this device first")
    try:
        store = DeviceStore.open(store_path, pin if pin is not None else read_pin())
    except DecryptionError:
        raise click.ClickException("wrong PIN") from None
    try:
        yield store
    finally:
        store.close()


@contextmanager
def plain_errors(server: str) -> Iterator[None]:
    """Turn network and protocol failures into one line each."""
    from sync.errors import CouchError, TransientError
    try:
        yield
    except TransientError:
        raise click.ClickException(f"cannot reach {server} now; your work is safe on this tablet") from None
    except CouchError as exc:
        raise click.ClickException(exc.reason) from None


def register(group: click.Group) -> None:
    """Add the device-side commands to ``wasl device``."""
    group.add_command(enrol)
    group.add_command(sync)
    group.add_command(status)
    group.add_command(change_pin)
    group.add_command(rotate_key)
    group.add_command(export_recovery)


@click.command()
@click.option("--server", required=True, help="The server's base URL, e.g. https://wasl.example.org")
@click.option("--code", required=True, help="The one-time code an admin gave you.")
@store_option
@click.option("--name", default=socket.gethostname, show_default="this machine's name", help="A name for this device.")
@click.option("--db", "db_name", default="wasl", show_default=True)
@click.option("--recovery-key", type=click.Path(exists=True, dir_okay=False),
              help="The organisation's recovery public key (raw or PEM).")
def enrol(server: str, code: str, store_path: str, name: str, db_name: str, recovery_key: str | None) -> None:
    """Register this tablet with the server and create its encrypted store.

    The PIN is read from $WASL_PIN, or asked for (twice).
    """
    from crypto import load_recovery_public_key
    from sync.device import DeviceStore
    from sync.remote import enrol_device
    if Path(store_path).exists():
        raise click.ClickException(f"a store already exists at {store_path}")
    recovery = load_recovery_public_key(Path(recovery_key).read_bytes()) if recovery_key else None
    pin = read_pin(confirm=True, prompt="Choose a PIN")
    with plain_errors(server):
        answer = enrol_device(server, code, name)
    store = DeviceStore.create(store_path, pin, recovery_public_key=recovery, db_name=db_name)
    try:
        store.set_server(server.rstrip("/"), answer["device_id"],
                         {"token": answer["token"], "server_uuid": answer.get("server_uuid"), "db": db_name})
    finally:
        store.close()
    click.echo(f"enrolled as {answer['user']} (device {answer['device_id']}); store at {store_path}")


def _remote(store: Any) -> tuple[Any, dict[str, Any]]:
    from sync.remote import RemoteDatabase
    server = store.server()
    if server is None:
        raise click.ClickException("this store is not enrolled with a server")
    creds = server["credentials"]
    return RemoteDatabase(f"{server['server_url']}/couch/{creds['db']}", auth=creds["token"],
                          compress_requests=True), server


def _bar(label: str) -> tuple[tqdm, Callable[[int, int], None]]:
    bar = tqdm(desc=label, unit="doc", leave=False, disable=None)

    def progress(done: int, pending: int) -> None:
        bar.total = done + pending
        bar.n = done
        bar.refresh()
    return bar, progress


def _report(direction: str, result: Any) -> None:
    for item in result.errors:
        click.echo(f"refused by the server: {item.get('id')} ({item.get('error')}: {item.get('reason')})")
    if not result.ok:
        reason = result.failure.reason if result.failure is not None else "stopped"
        raise click.ClickException(f"{direction} did not finish: {reason}; run sync again")
    click.echo(f"{direction}: {result.docs_written} documents written, {len(result.errors)} refused")


HELD_INTERVAL = 24 * 3600  # report what the tablet holds at least this often (seconds)


def _drop_out_of_scope(store: Any, server: dict[str, Any], scope: str | None, pushed: Any) -> None:
    """Report the held documents and drop those outside the scope (pushed ones only)."""
    from sync.device.drop import report_held
    last_scope, last_at = store.note("held.scope"), store.note("held.at")
    if scope == last_scope and last_at is not None and time.time() - last_at < HELD_INTERVAL:
        return
    creds = server["credentials"]
    through = pushed.last_seq if isinstance(pushed.last_seq, int) else 0
    drop = report_held(server["server_url"], creds["token"], creds["db"], store.held_ids(), store.unpushed(through))
    dropped = store.drop(drop, pushed_through=through)
    if len(dropped) == len(drop):
        # Done for this scope; a document kept for its unpushed edit makes the next sync ask again.
        store.set_note("held.scope", scope)
        store.set_note("held.at", time.time())
    if dropped:
        click.echo(f"dropped {len(dropped)} documents no longer in your scope")


def _replicate(direction: str, source: Any, target: Any) -> Any:
    from sync.replicator import Replicator
    bar, progress = _bar(direction)
    try:
        return Replicator(source, target, progress=progress).run()
    finally:
        bar.close()


@click.command()
@store_option
def sync(store_path: str) -> None:
    """Push this tablet's work, then pull what is new.

    The PIN is read from $WASL_PIN, or asked for.
    """
    from sync.device import wipe
    from sync.remote import device_status
    with opened(store_path) as store:
        remote, server = _remote(store)
        with remote, plain_errors(server["server_url"]):
            told = device_status(server["server_url"], server["credentials"]["token"])
            action = told["action"]
            if action == "wipe":
                store.close()
                wipe(store_path)
                raise click.ClickException("this device was revoked; its copy has been wiped")
            pushed = _replicate("push", store, remote)
            _report("push", pushed)
            if action == "push_then_wipe":
                if pushed.errors:
                    # Wiping now would lose the refused documents with the copy.
                    raise click.ClickException("this device was retired, but the server refused "
                                               f"{len(pushed.errors)} documents; not wiping until they are resolved")
                store.close()
                wipe(store_path)
                click.echo("this device was retired: its work is on the server and its copy has been wiped")
                return
            pulled = _replicate("pull", remote, store)
            _report("pull", pulled)
            if pulled.docs_written:
                # What was just pulled sits after the push checkpoint; a push that finds it all
                # on the server moves the checkpoint past it, so "waiting to push" stays true.
                pushed = _replicate("push", store, remote)
            if pushed.ok:
                _drop_out_of_scope(store, server, told.get("scope"), pushed)


@click.command()
@store_option
def status(store_path: str) -> None:
    """Show the server, the documents held and how many changes wait to be pushed.

    The PIN is read from $WASL_PIN, or asked for.
    """
    from sync.checkpoint import replication_id
    with opened(store_path) as store:
        server = store.server() or {}
        creds = server.get("credentials") or {}
        target_id = f"{creds.get('server_uuid')}{creds.get('db')}"
        checkpoint = store.get_local(replication_id(store.identifier(), target_id)) or {}
        waiting = store.changes(checkpoint.get("last_seq", 0), 10**9).results
        click.echo(f"server: {server.get('server_url', 'not enrolled')}  device: {server.get('device_id', '-')}")
        click.echo(f"documents: {len(store.all_docs())}  waiting to push: {len(waiting)}")


@click.command("change-pin")
@store_option
def change_pin(store_path: str) -> None:
    """Change the PIN (the data stays as it is; only its key is wrapped again)."""
    old = read_pin(prompt="Current PIN")
    new = os.environ.get("WASL_NEW_PIN") or str(click.prompt("New PIN", hide_input=True, confirmation_prompt=True))
    with opened(store_path, old) as store:
        store.change_pin(old, new)
    click.echo("PIN changed")


@click.command("rotate-key")
@store_option
def rotate_key(store_path: str) -> None:
    """Re-encrypt everything under a new data key (resumes if it was interrupted).

    The PIN is read from $WASL_PIN, or asked for.
    """
    pin = read_pin()
    with opened(store_path, pin) as store:
        bar, progress = _bar("re-encrypting")
        try:
            if store.rotation_in_progress:
                store.resume_rotation(pin, progress)
            else:
                store.rotate_key(pin, progress)
        finally:
            bar.close()
    click.echo("data key rotated")


@click.command("export-recovery")
@store_option
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Where to write the recovery file.")
def export_recovery(store_path: str, out: str) -> None:
    """Write what an admin needs to recover this tablet's unsynced work with the organisation's key."""
    import json
    with opened(store_path) as store:
        try:
            material = store.export_recovery()
        except ValueError:
            raise click.ClickException("this store has no recovery key; enrol with --recovery-key") from None
    Path(out).write_text(json.dumps(material, indent=2))
    click.echo(f"recovery material written to {out}; it holds no secret readable without the organisation's key")
