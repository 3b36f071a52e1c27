"""``GET|POST /db/_design/D/_view/V``: view queries (see sync.views)."""
from __future__ import annotations

from typing import Any

from flask import Response, request

from sync.errors import BadRequest
from sync.views import ViewQuery, query_view

from . import access
from .params import json_object, qbool, qint, qjson, send


def _has(*names: str) -> bool:
    return any(name in request.args for name in names)


def _view_query() -> ViewQuery:
    keys: Any = qjson("keys")
    if request.method == "POST":
        keys = json_object().get("keys", keys)
    if keys is not None and not isinstance(keys, list):
        raise BadRequest("`keys` must be an array")
    key = qjson("key")
    start = qjson("startkey", qjson("start_key"))
    end = qjson("endkey", qjson("end_key"))
    has_start, has_end = _has("startkey", "start_key"), _has("endkey", "end_key")
    if "key" in request.args:
        if keys is not None:
            raise BadRequest("`keys` is incompatible with `key`, `start_key` and `end_key`")
        start, end, has_start, has_end = key, key, True, True
    reduce = qbool("reduce") if "reduce" in request.args else None
    return ViewQuery(reduce=reduce, group=qbool("group"), group_level=qint("group_level"),
                     keys=tuple(keys) if keys is not None else None, startkey=start, endkey=end,
                     has_start=has_start, has_end=has_end, inclusive_end=qbool("inclusive_end", True),
                     descending=qbool("descending"), skip=qint("skip", 0) or 0, limit=qint("limit"),
                     include_docs=qbool("include_docs"), conflicts=qbool("conflicts"))


def view(db_name: str, ddoc: str, view_name: str) -> Response:
    """Query a design document's view (audited like any read of the records database)."""
    result = query_view(db_name, ddoc, view_name, _view_query())
    access.audit_view_rows(db_name, result["rows"], f"{ddoc}/{view_name}")
    return send(result)
