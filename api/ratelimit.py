"""Request rate limits (the ``limits`` library): per enrolled device, and per client address otherwise.

One tablet stuck in a retry loop, or one script hammering the server, must not starve the
other tablets on a shared 2G uplink. A request with a device's bearer token counts against
that device (``WASL_RATE_LIMIT_DEVICE``); any other request counts against its client
address (``WASL_RATE_LIMIT_ADDRESS``, generous: a supervisors' office may share one
address). An empty value turns that limit off. Over the limit: 429 ``too_many_requests``
with ``Retry-After``.

The counters live in a store every process shares (``WASL_RATE_LIMIT_STORAGE``, a
``limits`` storage URI such as ``redis://host:6379``), so N worker processes, or two
servers on one database, allow the configured limit, not N times it. The default needs no
extra service: ``SqlStorage`` below, a ``limits`` storage on SQL. With a SQLite main
database it is a small SQLite file beside it (``<name>-ratelimit.sqlite``), so counting
never waits for the records' write lock; with PostgreSQL a table of the app's database.

One ``before_request`` hook asks a ``limits`` fixed-window strategy about the request's one
limit. Flask-Limiter did the same through per-route limit resolution, exemption scopes and
context proxies that this server has no use for (one limit for every route); those cost
0.3 ms of the 0.6 ms a replication request's fixed cost came to (docs/performance.md).
"""
from __future__ import annotations

import hashlib
import math
import os
import time
from typing import Any

from flask import Flask, Response, request
from limits import RateLimitItem, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, create_engine, delete, event, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from models import db

from .errors import HTTP_REASONS, couch_error_response

EXTENSION = "wasl.limiter"
SQL_PREFIX = "sql+"  # "sql+" followed by an SQLAlchemy URL
SWEEP_EVERY = 1000  # counter writes between deletions of long-expired keys (per process)

# One statement for SQLite and PostgreSQL alike, run on the driver's own connection: it runs on
# every request, and SQLAlchemy's execution path (BEGIN, compile cache, result object) cost more
# than SQLite's work on it. ``?`` placeholders; PostgreSQL's driver gets ``%s``.
UPSERT = ("INSERT INTO rate_limit_counter (counter_key, hits, expires_at) VALUES (?, ?, ?)"
          " ON CONFLICT (counter_key) DO UPDATE SET"
          " hits = CASE WHEN rate_limit_counter.expires_at <= ? THEN excluded.hits"
          " ELSE rate_limit_counter.hits + excluded.hits END,"
          " expires_at = CASE WHEN rate_limit_counter.expires_at <= ? THEN excluded.expires_at"
          " ELSE rate_limit_counter.expires_at END"
          " RETURNING hits")
SWEEP = "DELETE FROM rate_limit_counter WHERE expires_at < ?"
ROW = text("SELECT hits, expires_at FROM rate_limit_counter WHERE counter_key = :key AND expires_at > :now")
_metadata = MetaData()
counters = Table("rate_limit_counter", _metadata,
                 Column("counter_key", String(255), primary_key=True),
                 Column("hits", Integer, nullable=False),
                 Column("expires_at", Float, nullable=False))  # epoch seconds


def _counting_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """A counter file is written by every request of every process: readers must not block
    writers (WAL), a lost counter costs nothing (no fsync), and a busy file is waited for."""
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=OFF", "busy_timeout=30000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


class SqlStorage(Storage):
    """Fixed-window counters in one SQL table, one atomic upsert per hit (SQLite or PostgreSQL)."""

    STORAGE_SCHEME = ["sql+sqlite", "sql+postgresql", "sql+postgresql+psycopg", "sql+postgresql+psycopg2"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        # ``app_engine``: the store is the app's own database; use its engine (and its pool,
        # disposed with the app) rather than a second one. It is only called within requests.
        self._own: Engine | None = None if options.get("app_engine") else create_engine(
            make_url(str(uri)[len(SQL_PREFIX):]), **dict(options.get("engine_options") or {}))
        if self._own is not None and self._own.dialect.name == "sqlite":
            event.listen(self._own, "connect", _counting_pragmas)
        self._ready = False
        self._writes = 0

    @property
    def _engine(self) -> Engine:
        return self._own if self._own is not None else db.engine

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return SQLAlchemyError

    def _table(self) -> None:
        if not self._ready:
            try:
                _metadata.create_all(self._engine, checkfirst=True)
            except SQLAlchemyError:
                # Another process created it between the check and the CREATE.
                _metadata.create_all(self._engine, checkfirst=True)
            self._ready = True

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Count ``amount`` hits; a key past its expiry starts a new window."""
        self._table()
        now = time.time()
        self._writes += 1
        sweep = self._writes % SWEEP_EVERY == 0
        raw = self._engine.raw_connection()
        try:
            placeholder = "?" if self._engine.dialect.paramstyle == "qmark" else "%s"
            cur = raw.cursor()
            cur.execute(UPSERT.replace("?", placeholder), (key, amount, now + expiry, now, now))
            hits = int(cur.fetchone()[0])
            if sweep:
                cur.execute(SWEEP.replace("?", placeholder), (now - 3600,))
            cur.close()
            raw.commit()
        except self._engine.dialect.dbapi.Error as exc:  # type: ignore[union-attr]
            raw.rollback()
            raise SQLAlchemyError(type(exc).__name__) from exc  # what base_exceptions names
        finally:
            raw.close()
        return hits

    def _row(self, key: str) -> Any:
        self._table()
        with self._engine.connect() as conn:
            return conn.execute(ROW, {"key": key, "now": time.time()}).first()

    def get(self, key: str) -> int:
        """The hits of ``key`` in its current window."""
        row = self._row(key)
        return 0 if row is None else int(row.hits)

    def get_expiry(self, key: str) -> float:
        """When the current window of ``key`` ends (epoch seconds)."""
        row = self._row(key)
        return time.time() if row is None else float(row.expires_at)

    def check(self) -> bool:
        """Whether the store answers."""
        try:
            with self._engine.connect() as conn:
                conn.execute(select(1))
            return True
        except SQLAlchemyError:
            return False

    def reset(self) -> int | None:
        """Forget every counter; how many there were."""
        self._table()
        with self._engine.begin() as conn:
            return int(conn.execute(delete(counters)).rowcount)

    def clear(self, key: str) -> None:
        """Forget the counter of ``key``."""
        self._table()
        with self._engine.begin() as conn:
            conn.execute(delete(counters).where(counters.c.counter_key == key))


def default_storage(app: Flask) -> str:
    """The shared store when none is configured: beside a SQLite database, or in the PostgreSQL one."""
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() != "sqlite":
        return SQL_PREFIX + url.render_as_string(hide_password=False)
    if not url.database or url.database == ":memory:":
        return "memory://"  # one process by definition
    stem, _ = os.path.splitext(url.database)
    return f"{SQL_PREFIX}sqlite:///{stem}-ratelimit.sqlite"


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


def _key(token: str | None) -> str:
    """A device's token (hashed: keys may be logged) or the client's address."""
    if token:
        return "device:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    return "address:" + (request.remote_addr or "unknown")


class RequestLimits:
    """The one limit of each request, counted in ``storage`` (the app's ``EXTENSION``)."""

    def __init__(self, device: str, address: str, storage: Storage) -> None:
        self.device: RateLimitItem | None = parse(device) if device else None
        self.address: RateLimitItem | None = parse(address) if address else None
        self.windows = FixedWindowRateLimiter(storage)

    def refusal(self) -> Response | None:
        """None when the request may go on; else the 429 (CouchDB's error shape, ``Retry-After``)."""
        token = _bearer()
        limit = self.device if token else self.address
        if limit is None:
            return None
        key = _key(token)
        if self.windows.hit(limit, key):
            return None
        reset_at = self.windows.get_window_stats(limit, key).reset_time
        resp = couch_error_response(429, "too_many_requests", HTTP_REASONS[429])
        resp.headers["Retry-After"] = str(max(1, math.ceil(reset_at - time.time())))
        return resp


def init_app(app: Flask) -> None:
    """Limit every request of ``app``, counting in the shared store."""
    device = app.config.setdefault("WASL_RATE_LIMIT_DEVICE", os.environ.get("WASL_RATE_LIMIT_DEVICE",
                                                                            "600 per minute"))
    address = app.config.setdefault("WASL_RATE_LIMIT_ADDRESS", os.environ.get("WASL_RATE_LIMIT_ADDRESS",
                                                                              "6000 per minute"))
    storage = app.config.setdefault("WASL_RATE_LIMIT_STORAGE", os.environ.get("WASL_RATE_LIMIT_STORAGE")
                                    or default_storage(app))
    options: dict[str, Any] = {}
    if storage == SQL_PREFIX + make_url(app.config["SQLALCHEMY_DATABASE_URI"]).render_as_string(hide_password=False):
        options["app_engine"] = True  # PostgreSQL's default: a table of the app's own database
    elif storage.startswith(SQL_PREFIX):
        # Its own engine (the SQLite side file), with the app's engine options (a test app's NullPool).
        options["engine_options"] = app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {}
    if not (device or address):
        return
    limits = app.extensions[EXTENSION] = RequestLimits(device, address, storage_from_string(storage, **options))
    # Application-wide: every request of a key counts together, whatever the route. No
    # X-RateLimit-* headers on every reply (bytes on a 2G link); Retry-After on a refusal only.
    app.before_request(limits.refusal)
