"""Server-level endpoints: the welcome, uuids, database list and sessions."""
from __future__ import annotations

import uuid

from flask import Response, g, request

from models.server import get_setting
from sync.errors import BadRequest, Unauthorized
from sync.store import list_databases

from . import access
from .auth import COOKIE, SESSION_SECONDS, check_password, current_user, session_cookie
from .params import loads, qint, send

VERSION = "3.3.3"


def welcome() -> Response:
    """``GET /``: the welcome; PouchDB builds replication ids from ``uuid``, so it is stored."""
    return send({"couchdb": "Welcome", "version": VERSION, "uuid": get_setting("uuid"),
                 "vendor": {"name": "Wasl", "version": "0.1.0"}, "features": []})


def up() -> Response:
    return send({"status": "ok"})


def uuids() -> Response:
    """``GET /_uuids?count=N``."""
    count = qint("count", 1, minimum=1) or 1
    if count > 1000:
        raise BadRequest("count parameter too large")
    return send({"uuids": [uuid.uuid4().hex for _ in range(count)]})


def all_dbs() -> Response:
    """``GET /_all_dbs``: every database for an admin; for anyone else, the records database only."""
    names = list_databases()
    if not access.unscoped():
        names = [name for name in names if name == access.records_db()]
    return send(names)


def _session_json() -> dict[str, object]:
    user = g.get("user") or current_user()
    ctx = user.to_json() if user else {"name": None, "roles": []}
    handler = "cookie" if request.cookies.get(COOKIE) else "default"
    info: dict[str, object] = {"authentication_handlers": ["cookie", "default"]}
    if user:
        info["authenticated"] = handler
    return {"ok": True, "userCtx": ctx, "info": info}


def get_session() -> Response:
    """``GET /_session``: who the caller is."""
    return send(_session_json())


def post_session() -> Response:
    """``POST /_session``: sign in with name and password (form or JSON); set the cookie."""
    if request.mimetype == "application/json":
        body = loads(request.get_data() or b"{}")
    else:
        body = request.form
    name, password = (body.get("name"), body.get("password")) if hasattr(body, "get") else (None, None)
    if not isinstance(name, str) or not isinstance(password, str):
        raise BadRequest("name and password are required")
    user = check_password(name, password)
    if user is None:
        raise Unauthorized("Name or password is incorrect.")
    resp = send({"ok": True, **user.to_json()})
    resp.set_cookie(COOKIE, session_cookie(user), max_age=SESSION_SECONDS, httponly=True,
                    samesite="Lax", path="/")
    return resp


def delete_session() -> Response:
    """``DELETE /_session``: sign out."""
    resp = send({"ok": True})
    resp.delete_cookie(COOKIE, path="/")
    return resp
