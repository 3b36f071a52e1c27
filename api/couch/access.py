"""Who may use which CouchDB endpoint, and through which scope (docs/access.md).

- Admins (``admin``, ``_admin``) use every database, unscoped.
- Anyone else uses only the records database (``WASL_RECORDS_DB``): elsewhere every
  database endpoint is 403 ``forbidden``, and ``/_all_dbs`` lists the records database
  alone. In the records database they read through their scope (``reader``), write through
  ``AccessGate`` (``gate``), keep their ``_local`` documents apart (``local_id``), and may
  not create, delete or compact the database, change its ``_revs_limit`` or query views.

The user's scope is computed once per request (``flask.g``). Every document body of the
records database that leaves by a CouchDB endpoint is audited (``audit_reads``: one
``doc.read`` entry per document, written before the reply), and every revision written
there through the gate is audited as ``doc.write`` (``sync.access_gate``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import current_app, g, request

from sync import audit, scopeindex
from sync.access_gate import AccessGate
from sync.errors import DatabaseNotFound, Forbidden
from sync.jsoncodec import Spliced
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


def audit_reads(db_name: str, doc_ids: Iterable[str | tuple[str, str]], via: str, **detail: Any) -> None:
    """Audit the documents of the records database about to leave (``(id, rev)`` names the revision read).

    Other databases and ``_local`` documents are not audited, nor a ``HEAD`` (no body leaves).
    """
    if db_name != records_db() or request.method == "HEAD":
        return
    user = g.user
    ids = [i for i in doc_ids if not (i if isinstance(i, str) else i[0]).startswith(LOCAL_PREFIX)]
    audit.record_reads(user.name, db_name, ids, device_id=user.device_id, via=via, **detail)


def _row_read(row: dict[str, Any]) -> str | tuple[str, str]:
    """What a row read, as the audit names it: ``(id, rev)`` when it carries its document, else the id."""
    doc = row.get("doc")
    return (row["id"], doc["_rev"]) if isinstance(doc, dict) and isinstance(doc.get("_rev"), str) else row["id"]


def audit_rows(db_name: str, rows: Iterable[Any], via: str) -> None:
    """Audit the documents carried by feed or ``_all_docs`` rows (their ``doc`` member)."""
    if db_name != records_db() or request.method == "HEAD":
        return
    audit_reads(db_name, [_row_read(row) for row in rows
                          if isinstance(row, dict) and isinstance(row.get("doc"), dict)], via)


def audit_view_rows(db_name: str, rows: Iterable[Any], view: str) -> None:
    """Audit the documents a view's rows came from (detail ``view``: ``design/name``).

    A map row's key and value are read out of its document, so a row counts even without
    ``include_docs``; a reduced row names no document and is not audited.
    """
    if db_name != records_db() or request.method == "HEAD":
        return
    audit_reads(db_name, [_row_read(row) for row in rows
                          if isinstance(row, dict) and isinstance(row.get("id"), str)], "view", view=view)


def audit_found(db_name: str, entries: Iterable[Any], via: str) -> None:
    """Audit ``{"ok": doc}`` entries (``open_revs``, ``_bulk_get`` results)."""
    if db_name != records_db() or request.method == "HEAD":
        return
    found = [e["ok"] for e in entries if isinstance(e, dict) and "ok" in e]
    audit_reads(db_name, [(d.doc_id, d.rev) if isinstance(d, Spliced) else (d["_id"], d["_rev"]) for d in found
                          if isinstance(d, (dict, Spliced))], via)


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
