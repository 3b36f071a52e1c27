"""``wasl scope rebuild``: recompute the scope index after a bulk load that bypassed the write path."""
from __future__ import annotations

import click


def register(main: click.Group) -> None:
    """Add ``wasl scope`` to ``main``."""
    main.add_command(scope)


@click.group()
def scope() -> None:
    """The scope index that scoped replication reads (docs/access.md)."""


@scope.command("rebuild")
@click.option("--db", "db_name", default=None, help="The records database (default: $WASL_RECORDS_DB or wasl).")
def rebuild(db_name: str | None) -> None:
    """Recompute every access-key row of the records database, under its write lock."""
    from flask import current_app
    from sqlalchemy import func, select
    from tqdm import tqdm

    from models import Document, db
    from sync import scopeindex
    from sync.store import get_database

    from . import _in_app

    def work() -> tuple[str, int, int]:
        name = db_name or str(current_app.config["WASL_RECORDS_DB"])
        database = get_database(name)  # a missing database is one plain line, before the bar
        records = str(current_app.config["WASL_RECORDS_DB"])
        if name != records and not scopeindex.is_indexed(database.id):
            raise click.ClickException(f"'{name}' has no scope index: only the records database ('{records}') "
                                       "is indexed")
        scanned = db.session.scalar(select(func.count()).select_from(Document)) or 0
        with tqdm(total=scanned, unit="doc", desc=f"indexing {name}") as bar:
            if scopeindex.is_indexed(database.id):
                rows = scopeindex.rebuild(name, progress=bar.update)
            else:
                scopeindex.enable(name, progress=bar.update)  # the first build: from now on every write keeps it
                rows = _key_rows(database.id)
            bar.update(max(0, bar.total - bar.n))  # documents written since the count
        return name, rows, database.doc_count + database.doc_del_count

    name, rows, docs = _in_app(work)
    click.echo(f"scope index of '{name}' rebuilt: {rows} key rows for {docs} documents")


def _key_rows(database_id: int) -> int:
    from sqlalchemy import func, select

    from models import db
    from models.access import ScopeKey
    return int(db.session.scalar(select(func.count()).where(ScopeKey.database_id == database_id)) or 0)
