"""Bring the central tables of an older install to the models' shape (``wasl init``, every rebuild).

``db.create_all`` creates missing tables but never alters one. The central tables are
derived from the records database, so a column a later version declares is added empty
and filled by the rebuild that follows, rather than by a data migration.
"""
from __future__ import annotations

from sqlalchemy import Index, inspect, text
from sqlalchemy.schema import CreateColumn

from models import db

from .central import TABLES


def _declared(index: Index, dialect: str) -> bool:
    """Whether the models create ``index`` on this engine (some are declared for one engine only)."""
    only = getattr(index, "_ddl_if", None)  # set by Index.ddl_if(dialect=...)
    return only is None or only.dialect in (None, dialect)


def upgrade() -> list[str]:
    """Add the columns and indexes the models declare, drop central indexes they no longer
    declare; return what changed (nothing on a current install)."""
    db.session.commit()
    connection = db.session.connection()
    dialect = connection.dialect
    found, changes = inspect(connection), []
    for table in TABLES.values():
        if not found.has_table(table.name):
            continue
        columns = {c["name"] for c in found.get_columns(table.name)}
        for column in table.columns:
            if column.name not in columns:
                connection.execute(text(f"ALTER TABLE {table.name} ADD COLUMN "
                                        f"{CreateColumn(column).compile(dialect=dialect)}"))
                changes.append(f"column {table.name}.{column.name}")
        indexes = {i["name"] for i in found.get_indexes(table.name)}
        wanted = {i.name for i in table.indexes if _declared(i, dialect.name)}
        for name in sorted(indexes - wanted):
            if name and name.startswith("ix_health_"):
                connection.execute(text(f"DROP INDEX {dialect.identifier_preparer.quote(name)}"))
                changes.append(f"dropped index {name}")
        for index in table.indexes:
            if index.name in wanted and index.name not in indexes:
                index.create(connection)
                changes.append(f"index {index.name}")
    db.session.commit()
    return changes
