"""``wasl quarantine``: the revisions the records database refused, and a supervisor's decision on each.

``show --body`` prints just the held document, ready to correct and pass to ``release --file``.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import click

STATE_CHOICES = ("held", "released", "discarded", "all")


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _run(fn: Any) -> Any:
    """Run ``fn`` inside the app; the store's refusals become one plain line."""
    from . import _in_app
    return _in_app(fn)


def _known_user(name: str) -> None:
    from models import User, db
    if db.session.scalar(db.select(User.id).where(User.name == name)) is None:
        raise click.ClickException(f"No user named {name!r} (--by names the account deciding)")


def _read_json(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise click.ClickException(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise click.ClickException(f"{path} must hold one JSON object, the corrected document")
    return doc


def register(main: click.Group) -> None:
    """Add this module's commands to ``main``."""

    @main.group()
    def quarantine() -> None:
        """Refused revisions of the records database: list, show, release, discard."""

    @quarantine.command("list")
    @click.option("--db", "db_name", default=None, help="Database  [default: the records database]")
    @click.option("--state", type=click.Choice(STATE_CHOICES), default="held", show_default=True)
    @click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100000))
    def list_items(db_name: str | None, state: str, limit: int) -> None:
        """List quarantined revisions, oldest first."""
        from flask import current_app

        from sync.records.quarantine import list_held

        def rows() -> list[str]:
            name = db_name or current_app.config["WASL_RECORDS_DB"]
            found = list_held(name, state=None if state == "all" else state, limit=limit)
            return [f"{r.id:>6}  {r.state:<9}  {_when(r.received_at)}  {r.doc_id}  {r.rev}  x{r.attempts}"
                    f"  {r.reason}" for r in found]
        lines = _run(rows)
        for line in lines:
            click.echo(line)
        if not lines:
            click.echo("no quarantined revisions" + ("" if state == "all" else f" in state {state}"))

    @quarantine.command("show")
    @click.argument("item_id", type=int)
    @click.option("--body", "body_only", is_flag=True, help="Print only the document (to correct and release).")
    def show(item_id: int, body_only: bool) -> None:
        """Show one quarantined revision: who sent it, why it was refused, and the document."""
        from sync.records.quarantine import get_item

        def lines() -> list[str]:
            r = get_item(item_id)
            doc = json.dumps(r.document, indent=2, ensure_ascii=False, sort_keys=True)
            if body_only:
                return [doc]
            sender = r.actor + (f" (device {r.device_id})" if r.device_id else "")
            head = [f"quarantined revision {r.id} in {r.db_name}: {r.state}",
                    f"document: {r.doc_id} rev {r.rev}" + (" (replicated)" if r.replicated
                                                           else f" (edit of {r.parent_rev or 'nothing'})"),
                    f"sent by: {sender}, first {_when(r.received_at)}, last {_when(r.last_seen_at)},"
                    f" {r.attempts} attempt(s)",
                    f"reason: {r.reason}"]
            if r.state != "held":
                head.append(f"decided: {r.state} by {r.decided_by} at {_when(r.decided_at)}"
                            + (f" as rev {r.released_rev}" if r.released_rev else "")
                            + (f"; note: {r.decision_note}" if r.decision_note else ""))
            return head + [doc]
        for line in _run(lines):
            click.echo(line)

    @quarantine.command("release")
    @click.argument("item_id", type=int)
    @click.option("--file", "path", required=True, type=click.Path(dir_okay=False),
                  help="The corrected document (JSON), e.g. from 'show --body', edited.")
    @click.option("--by", "actor", required=True, help="The account taking the decision.")
    def release_item(item_id: int, path: str, actor: str) -> None:
        """Store a corrected version of a held revision; devices converge to it on their next pull."""
        from sync.records.quarantine import get_item, release
        corrected = _read_json(path)

        def run() -> tuple[str, str]:
            _known_user(actor)
            winner = release(item_id, corrected, actor)
            return get_item(item_id).doc_id, winner
        doc_id, winner = _run(run)
        click.echo(f"released quarantined revision {item_id}: {doc_id} is now at rev {winner}")

    @quarantine.command("discard")
    @click.argument("item_id", type=int)
    @click.option("--note", required=True, help="Why it is discarded (kept in the audit log).")
    @click.option("--by", "actor", required=True, help="The account taking the decision.")
    def discard_item(item_id: int, note: str, actor: str) -> None:
        """Close a held revision without storing it."""
        from sync.records.quarantine import discard

        def run() -> None:
            _known_user(actor)
            discard(item_id, actor, note)
        _run(run)
        click.echo(f"discarded quarantined revision {item_id}")
