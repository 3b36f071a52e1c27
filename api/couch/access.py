"""Who may use which CouchDB endpoint, and through which scope (docs/access.md).

- Admins (``admin``, ``_admin``) use every database, unscoped.
- Anyone else uses only the records database (``WASL_RECORDS_DB``): elsewhere every
  database endpoint is 403 ``forbidden``, and ``/_all_dbs`` lists the records database
  alone. In the records database they read through their scope (``reader``), write through
  ``AccessGate`` (``gate``), keep their ``_local`` documents apart (``local_id``), and may
  not create, delete or compact the database, change its ``_revs_limit`` or query views.

The user's scope is computed once per request (``flask.g``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app, g

from sync import scopeindex
from sync.access_gate import AccessGate
from sync.errors import DatabaseNotFound, Forbidden
from sync.records.quarantine import RecordsGate
from sync.scope import Scope, is_admin
from sync.scopefeed import Reader
from sync.scopes import reader_of, scope_for
from sync.writes import Gate

from . import database, design

NOT_YOURS = "Only admins use this database."
ADMIN_ONLY = "Only admins do this."
LOCAL_PREFIX = "_local/"
# Where a non-admin's _local documents live: their name cannot hold "/" (sync.access.USER_NAME).
LOCAL_SPACE = "_local/_user/{user}/"


def records_db() -> str:
    """The name of the records database."""
    return str(current_app.config.get("WASL_RECORDS_DB"))


def unscoped() -> bool:
    """Whether the caller reads and writes everything (an admin)."""
    user = g.get("user")
    return user is not None and is_admin(user.roles)


def scope(db_name: str) -> Scope:
    """The caller's scope over ``db_name``, computed once per request."""
    cache: dict[str, Scope] = g.setdefault("wasl_scopes", {})
    if db_name not in cache:
        cache[db_name] = Scope(True, frozenset()) if unscoped() else scope_for(g.user.name, g.user.roles, db_name)
    return cache[db_name]


def reader(db_name: str) -> Reader | None:
    """The caller's ``Reader`` for ``db_name`` (None: an admin, who sees everything)."""
    if unscoped():
        return None
    return reader_of(g.user.name, scope(db_name))


def gate(db_name: str) -> Gate | None:
    """The checks on writes to the records database for the caller (access, then schema); None elsewhere."""
    if db_name != records_db():
        return None
    user = g.user
    schema = RecordsGate(actor=user.name, device_id=user.device_id)
    return AccessGate(user.name, tuple(user.roles), scope(db_name), user.device_id, schema)


def local_id(db_name: str, doc_id: str) -> str:
    """Where the caller's ``_local`` document lives: their own namespace unless they are an admin."""
    if unscoped() or not doc_id.startswith(LOCAL_PREFIX):
        return doc_id
    return LOCAL_SPACE.format(user=g.user.name) + doc_id[len(LOCAL_PREFIX):]


def public_local_id(db_name: str, stored: str) -> str:
    """The id the caller knows for a stored ``_local`` document id (the reverse of ``local_id``)."""
    if unscoped():
        return stored
    space = LOCAL_SPACE.format(user=g.user.name)
    return LOCAL_PREFIX + stored[len(space):] if stored.startswith(space) else stored


# Database endpoints a non-admin may not use even in the records database.
ADMIN_VIEWS = {(database.create, "PUT"), (database.delete, "DELETE"), (database.compact, "POST"),
               (database.put_revs_limit, "PUT"), (design.view, "GET"), (design.view, "POST")}


def guard(view: Callable[..., Any], args: tuple[str, ...], method: str) -> None:
    """Refuse a non-admin a database endpoint they may not use.

    :raise 403: another database than the records one, or an admin-only endpoint.
    """
    if not args:
        return
    db_name = args[0]
    if not unscoped():
        if db_name != records_db():
            raise Forbidden(NOT_YOURS)
        if (view, method) in ADMIN_VIEWS:
            raise Forbidden(ADMIN_ONLY)
    if db_name == records_db() and (view, method) not in ADMIN_VIEWS:
        try:
            scopeindex.enable(db_name)  # the first request to the records database builds its index
        except DatabaseNotFound:
            pass  # the view itself answers 404 (or creates it)
