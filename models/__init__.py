"""SQL models. ``db`` is the one Flask-SQLAlchemy handle; tables live in submodules."""
from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


from flask_sqlalchemy import SQLAlchemy  # noqa: E402

db = SQLAlchemy(model_class=Base)

from .couch import Attachment, Database, Document, LocalDoc, Revision  # noqa: E402
from .device import Device, EnrolmentCode  # noqa: E402
from .server import Setting, User  # noqa: E402
from . import access, audit, conflicts, duplicates, health, limits, quarantine  # noqa: E402,F401

__all__ = ["Attachment", "Base", "Database", "Device", "Document", "EnrolmentCode", "LocalDoc", "Revision",
           "Setting", "User", "db", "init_db"]


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):  # type: ignore[no-untyped-def]
    """WAL and a busy timeout let readers run beside one writer; autocommit off is ours to drive."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        # pysqlite's own transaction handling issues BEGIN lazily and never before a
        # SELECT; we take control (SQLAlchemy's recommended recipe) so BEGIN is explicit.
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()


@event.listens_for(Engine, "begin")
def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
    if conn.dialect.name == "sqlite":
        # On the driver's connection: every request begins one, and SQLAlchemy's statement
        # path (events, execution context, result) cost more than SQLite's BEGIN.
        conn.connection.driver_connection.execute("BEGIN")


def init_db() -> str | None:
    """Create the tables, the server uuid and the admin account (idempotent).

    Returns the admin password when one was generated, so the caller can show it once.
    """
    from .server import ensure_server_identity
    db.create_all()
    return ensure_server_identity()
