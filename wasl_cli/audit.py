"""``wasl audit``: read the audit log (newest first) from the command line."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import click


def register(main: click.Group) -> None:
    """Add ``wasl audit`` to ``main``."""
    main.add_command(audit_log)


@click.command("audit")
@click.option("--actor", help="Only this user (or cli:<login>, or server).")
@click.option("--action", help="Only this action; a trailing '.' matches a family, e.g. auth.")
@click.option("--doc", "doc_id", help="Only entries about this document id.")
@click.option("--device", "device_id", help="Only entries from this device.")
@click.option("--patient", help="Only entries on this patient's document and the visits and referrals about them.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def audit_log(actor: str | None, action: str | None, doc_id: str | None, device_id: str | None,
              patient: str | None, limit: int, as_json: bool) -> None:
    """Show the audit log: who did what to which document, when, from which device."""
    from sync.audit import entries, entry_json

    from . import _in_app

    def query() -> list[dict[str, object]]:
        found = entries(actor=actor, action=action, doc_id=doc_id, device_id=device_id, patient=patient,
                        limit=limit)
        return [entry_json(e) for e in found]
    rows = _in_app(query)
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False, sort_keys=True))
            continue
        when = datetime.fromtimestamp(row["at"], timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
        subject = f"{row['db']}/{row['doc_id']}" if row["doc_id"] else ""
        click.echo(f"{when}  {row['actor']:<20} {row['action']:<24} {subject}")
