"""``wasl scope rebuild``: recompute the scope index after a bulk load that bypassed the write path."""
from __future__ import annotations

from typing import Any

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
    from sqlalchemy import event, func, select
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
            # The rebuild reads every stored document in chunks of REBUILD_CHUNK: one step per chunk.
            def step(conn: Any, clause: Any, *args: Any) -> None:
                if clause is scopeindex._WINNERS:
                    bar.update(min(scopeindex.REBUILD_CHUNK, bar.total - bar.n))
            engine = db.engine
            event.listen(engine, "after_execute", step)
            try:
                if scopeindex.is_indexed(database.id):
                    rows = scopeindex.rebuild(name)
                else:
                    scopeindex.enable(name)  # the first build: from now on every write keeps it
                    rows = _key_rows(database.id)
            finally:
                event.remove(engine, "after_execute", step)
            bar.update(bar.total - bar.n)
        return name, rows, database.doc_count + database.doc_del_count

    name, rows, docs = _in_app(work)
    click.echo(f"scope index of '{name}' rebuilt: {rows} key rows for {docs} documents")


def _key_rows(database_id: int) -> int:
    from sqlalchemy import func, select

    from models import db
    from models.access import ScopeKey
    return int(db.session.scalar(select(func.count()).where(ScopeKey.database_id == database_id)) or 0)
