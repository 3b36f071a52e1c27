"""`wasl resolve` and `wasl conflicts list|choose`: conflicts of shared records, from the shell."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import click

DB_HELP = "The records database (default: $WASL_RECORDS_DB or wasl)."


def _app_db(db_name: str | None):  # type: ignore[no-untyped-def]
    """The app and the database name to work on."""
    from api import create_app
    app = create_app()
    return app, db_name or app.config["WASL_RECORDS_DB"]


def _run(app, fn):  # type: ignore[no-untyped-def]
    """Run ``fn`` in the app; the store's refusals become one plain line."""
    from sync.errors import CouchError
    with app.app_context():
        try:
            return fn()
        except CouchError as exc:
            raise click.ClickException(exc.reason) from None


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def register(main: click.Group) -> None:
    """Add this module's commands to ``main``."""

    @main.command("resolve")
    @click.option("--db", "db_name", default=None, help=DB_HELP)
    def resolve(db_name: str | None) -> None:
        """Merge every conflicted document (three-way, field by field) and record the field conflicts."""
        from tqdm import tqdm

        from sync.records.conflicts import list_conflicts
        from sync.records.resolve import resolve_all
        from sync.store import get_database
        app, name = _app_db(db_name)

        def work() -> tuple[int, int]:
            total = get_database(name).doc_count  # before the bar: a missing database is one plain line
            with tqdm(total=total, unit="doc", desc="resolving") as bar:
                def progress(done: int, total: int) -> None:
                    bar.total = total
                    bar.update(done - bar.n)
                merged = resolve_all(name, progress)
            return merged, len(list_conflicts(name, "open", limit=1000))
        merged, open_count = _run(app, work)
        more = "+" if open_count == 1000 else ""
        click.echo(f"{merged} document(s) merged in '{name}'; {open_count}{more} conflict(s) open "
                   f"(see: wasl conflicts list)")

    @main.group("conflicts")
    def conflicts() -> None:
        """Field conflicts the server resolved by its rule, for a supervisor to keep or change."""

    @conflicts.command("list")
    @click.option("--db", "db_name", default=None, help=DB_HELP)
    @click.option("--state", type=click.Choice(["open", "kept", "changed", "all"]), default="open",
                  show_default=True)
    @click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
    def conflicts_list(db_name: str | None, state: str, limit: int) -> None:
        """List conflicts: id, document, field, state, and each leaf's value (the server's pick marked *)."""
        from sync.records.conflicts import list_conflicts
        app, name = _app_db(db_name)

        def rows() -> list[str]:
            lines = []
            for c in list_conflicts(name, None if state == "all" else state, limit=limit):
                what = c.field if c.kind == "field" else "(deleted vs edited)"
                lines.append(f"#{c.id}  {c.doc_id}  {what}  {c.state}  {_when(c.created_at)}")
                for v in c.values:
                    shown = "deleted" if v.get("deleted") else "removed" if v.get("removed") else \
                        json.dumps(v.get("value"), ensure_ascii=False)[:200]
                    mark = "*" if v.get("rev") == c.picked_rev else " "
                    lines.append(f"   {mark} {v.get('rev')}  {shown}  ({v.get('updated_by') or '?'}, "
                                 f"{v.get('updated_at') or 'no time'})")
            return lines
        lines = _run(app, rows)
        click.echo("\n".join(lines) if lines else f"no {state} conflicts in '{name}'")

    @conflicts.command("choose")
    @click.argument("conflict_id", type=int)
    @click.argument("rev")
    @click.option("--by", "user", required=True, help="Who decides (recorded in the audit log).")
    def conflicts_choose(conflict_id: int, rev: str, user: str) -> None:
        """Settle conflict CONFLICT_ID with the value leaf REV had."""
        from sync.records.conflicts import choose
        from api import create_app
        new_rev = _run(create_app(), lambda: choose(conflict_id, rev, user))
        click.echo(f"conflict #{conflict_id} settled with {rev}: "
                   + (f"new revision {new_rev}" if new_rev else "the document already holds that value"))
