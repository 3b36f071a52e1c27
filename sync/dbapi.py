"""SQL run straight on the DBAPI cursor of the session's connection, for the hot paths.

A replication request reads and writes a few hundred rows; SQLAlchemy's statement
compilation, parameter processing and result objects cost more than SQLite's own work
on them. These helpers run plain SQL inside the session's transaction (so commits,
rollbacks and the write lock behave as for any other statement) and hand back plain
tuples. Statements are written with ``?`` placeholders and translated once for
PostgreSQL's driver (``%s``); they never contain ``%`` or a literal ``?``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from models import db

_FOR_PG: dict[str, str] = {}


def _sql(statement: str, dialect: str) -> str:
    """``statement`` in the driver's parameter style."""
    if dialect == "sqlite":
        return statement
    found = _FOR_PG.get(statement)
    if found is None:
        found = _FOR_PG[statement] = statement.replace("?", "%s")
    return found


def _cursor() -> tuple[Any, str]:
    """A DBAPI cursor on the session's connection (beginning its transaction) and the dialect name."""
    conn = db.session.connection()
    return conn.connection.cursor(), conn.dialect.name


def fetch(statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Every row ``statement`` returns, as tuples."""
    cur, dialect = _cursor()
    try:
        cur.execute(_sql(statement, dialect), params)
        return cur.fetchall()  # type: ignore[no-any-return]
    finally:
        cur.close()


def run(statement: str, params: Sequence[Any] = ()) -> int:
    """Run one statement that returns no rows; its row count."""
    cur, dialect = _cursor()
    try:
        cur.execute(_sql(statement, dialect), params)
        return int(cur.rowcount)
    finally:
        cur.close()


def run_many(statement: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run ``statement`` once per parameter row (the driver's ``executemany``)."""
    if not rows:
        return
    cur, dialect = _cursor()
    try:
        cur.executemany(_sql(statement, dialect), rows)
    finally:
        cur.close()


def marks(count: int, width: int = 1) -> str:
    """Placeholders for ``count`` values, or ``count`` rows of ``width`` values: ``?, ?`` / ``(?, ?), (?, ?)``."""
    if width == 1:
        return ", ".join("?" * count)
    row = "(" + ", ".join("?" * width) + ")"
    return ", ".join([row] * count)
