"""Database endpoints: info, create, delete, commit, compaction, revs_limit, security."""
from __future__ import annotations

from flask import Response

from sync.errors import BadRequest
from sync.store import (compact_database, create_database, database_info, delete_database, get_database,
                        set_revs_limit)

from .params import json_body, send


def info(db_name: str) -> Response:
    """``GET /db``: 404 with CouchDB's reason when missing (PouchDB then creates it)."""
    return send(database_info(get_database(db_name)))


def create(db_name: str) -> Response:
    """``PUT /db``."""
    create_database(db_name)
    return send({"ok": True}, 201, {"Location": f"/couch/{db_name}"})


def delete(db_name: str) -> Response:
    """``DELETE /db``."""
    delete_database(db_name)
    return send({"ok": True})


def ensure_full_commit(db_name: str) -> Response:
    """``POST /db/_ensure_full_commit``: every write is already committed; say so."""
    get_database(db_name)
    return send({"ok": True, "instance_start_time": "0"}, 201)


def compact(db_name: str) -> Response:
    """``POST /db/_compact``: drop bodies no longer needed (done before answering)."""
    compact_database(db_name)
    return send({"ok": True}, 202)


def get_revs_limit(db_name: str) -> Response:
    return send(get_database(db_name).revs_limit)


def put_revs_limit(db_name: str) -> Response:
    """``PUT /db/_revs_limit`` with a bare positive number."""
    value = json_body(require_type=False)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequest("Rev limit has to be an integer")
    set_revs_limit(db_name, value)
    return send({"ok": True})
