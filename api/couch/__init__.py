"""The CouchDB-compatible endpoints under ``/couch/``.

One Flask route takes every ``/couch/...`` request and dispatches on the raw URI's
segments (see params.raw_segments): doc ids and database names may hold ``%2F``, which
Flask's own routing cannot tell from ``/``. Every database endpoint then passes
``access.guard``: non-admins use the records database only, through their scope.
"""
from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, g, request

from sync.docs import check_doc_id
from sync.errors import MethodNotAllowed, NotFound, Unauthorized

from . import access, changes, database, design, documents, server
from .auth import current_user
from .params import raw_segments

bp = Blueprint("couch", __name__, url_prefix="/couch")

View = Callable[..., Response]

SERVER_VIEWS: dict[str, dict[str, View]] = {
    "": {"GET": server.welcome, "HEAD": server.welcome},
    "_uuids": {"GET": server.uuids},
    "_all_dbs": {"GET": server.all_dbs},
    "_up": {"GET": server.up},
    "_session": {"GET": server.get_session, "POST": server.post_session, "DELETE": server.delete_session},
}
DB_VIEWS: dict[str, dict[str, View]] = {
    "": {"GET": database.info, "HEAD": database.info, "PUT": database.create,
         "DELETE": database.delete, "POST": documents.post_doc},
    "_changes": {"GET": changes.changes, "POST": changes.changes},
    "_bulk_docs": {"POST": documents.bulk_docs},
    "_bulk_get": {"POST": documents.bulk_get},
    "_revs_diff": {"POST": documents.revs_diff},
    "_all_docs": {"GET": documents.all_docs, "POST": documents.all_docs},
    "_ensure_full_commit": {"POST": database.ensure_full_commit},
    "_compact": {"POST": database.compact},
    "_revs_limit": {"GET": database.get_revs_limit, "PUT": database.put_revs_limit},
}
DOC_VIEWS: dict[str, View] = {"GET": documents.get_doc, "HEAD": documents.get_doc,
                              "PUT": documents.put_doc, "DELETE": documents.delete_doc}
ATT_VIEWS: dict[str, View] = {"GET": documents.get_attachment, "HEAD": documents.get_attachment,
                              "PUT": documents.put_attachment,
                              "DELETE": documents.delete_attachment}
VIEW_VIEWS: dict[str, View] = {"GET": design.view, "POST": design.view}
ALL = ["GET", "HEAD", "POST", "PUT", "DELETE"]


def _pick(table: dict[str, View]) -> View:
    view = table.get(request.method)
    if view is None:
        raise MethodNotAllowed(f"Only {','.join(table)} allowed")
    return view


def _route(segs: list[str]) -> tuple[View, tuple[str, ...]]:
    """Find the view and its arguments for the decoded path segments."""
    if not segs or (len(segs) == 1 and segs[0].startswith("_")):
        name = segs[0] if segs else ""
        if name not in SERVER_VIEWS:
            raise NotFound("Database does not exist.") if name.startswith("_") else NotFound()
        return _pick(SERVER_VIEWS[name]), ()
    db_name, rest = segs[0], segs[1:]
    if not rest:
        return _pick(DB_VIEWS[""]), (db_name,)
    if rest[0] == "_design" and len(rest) == 4 and rest[2] == "_view":
        return _pick(VIEW_VIEWS), (db_name, rest[1], rest[3])
    if rest[0] in ("_local", "_design"):
        if len(rest) < 2:
            raise NotFound()
        doc_id, att = f"{rest[0]}/{rest[1]}", rest[2:]
    elif rest[0].startswith(("_design/", "_local/")):
        doc_id, att = rest[0], rest[1:]  # the slash came percent-encoded
    elif rest[0].startswith("_"):
        if rest[0] in DB_VIEWS and len(rest) == 1:
            return _pick(DB_VIEWS[rest[0]]), (db_name,)
        if request.method in ("PUT", "POST"):
            check_doc_id(rest[0])  # CouchDB's 400 for a reserved id
        raise NotFound()
    else:
        doc_id, att = rest[0], rest[1:]
    if att:
        return _pick(ATT_VIEWS), (db_name, doc_id, "/".join(att))
    return _pick(DOC_VIEWS), (db_name, doc_id)


@bp.route("/", defaults={"path": ""}, methods=ALL, strict_slashes=False)
@bp.route("/<path:path>", methods=ALL)
def dispatch(path: str) -> Response:
    """Serve every CouchDB endpoint (routing on the raw URI)."""
    segs = raw_segments(request)
    view, args = _route(segs)
    public = view in (server.welcome, server.post_session, server.get_session, server.delete_session,
                      server.up)
    g.user = current_user()
    if g.user is None and not public:
        if request.headers.get("Authorization"):
            raise Unauthorized("Name or password is incorrect.")
        raise Unauthorized()
    if g.user is not None:
        access.guard(view, args, request.method)
    response = view(*args)
    if request.method == "HEAD":
        response.set_data(b"")
    return response
