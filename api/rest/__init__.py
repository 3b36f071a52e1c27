"""The JSON REST API under ``/api/v1/``: the data behind every page, described by OpenAPI.

Each module of this package adds its routes to ``bp`` and documents each view with an
OpenAPI YAML block after ``---`` in its docstring (apispec's Flask plugin reads it); the
package imports every module, so a new file needs no registration. Schemas (marshmallow)
live beside the views that use them. ``GET /api/v1/openapi.json`` serves the document.

Callers sign in as for replication (Basic, a device's Bearer token, or the session cookie
of the pages). A cookie-signed request that changes something must carry the page's CSRF
token in ``X-CSRFToken``: a cookie alone could come from another site's form.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec_webframeworks.flask import FlaskPlugin
from flask import Blueprint, Flask, Response, current_app, g, request
from marshmallow import Schema, fields

from sync.errors import Forbidden, Unauthorized
from sync.scope import is_admin

from ..couch.auth import UserCtx, current_user
from ..couch.params import send, whole_arg

bp = Blueprint("rest", __name__, url_prefix="/api/v1")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_LIMIT = 500


def caller(*roles: str) -> UserCtx:
    """The signed-in caller, who must hold one of ``roles`` (admins always pass).

    :raise 401: nobody signed in. :raise 403: the caller holds none of the roles.
    """
    user = g.get("rest_user")
    if user is None:
        from ..web import signed_in  # the pages' own session: the API is the pages' twin
        user = current_user() or signed_in()
        if user is None:
            raise Unauthorized()
        g.rest_user = user
    if roles and not is_admin(user.roles) and not set(roles) & set(user.roles):
        raise Forbidden(f"This needs the role {' or '.join(roles)}")
    return user


def page_args(default: int = 50) -> tuple[int, int]:
    """``limit`` (1..500) and ``offset`` (≥0) from the query string."""
    return whole_arg("limit", default, 1, MAX_LIMIT), whole_arg("offset", 0, 0, 10**9)


def paged(items: list[Any], total: int, limit: int, offset: int) -> Response:
    """The one shape of every list reply (``PageSchema``)."""
    return send({"items": items, "total": total, "limit": limit, "offset": offset})


class ErrorReplySchema(Schema):
    """CouchDB's error shape, in which every endpoint refuses."""

    error = fields.String(required=True)
    reason = fields.String(required=True)


class PageSchema(Schema):
    """A list reply (``paged``); each list's schema adds its ``items``."""

    total = fields.Integer(required=True)
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)


@bp.before_request
def _csrf_for_cookie_writes() -> None:
    """Cookie-signed writes need the page's CSRF token; Basic and Bearer callers do not."""
    if request.method in SAFE_METHODS or request.headers.get("Authorization"):
        return
    csrf = current_app.extensions.get("csrf")
    if csrf is not None:
        csrf.protect()


def make_spec(app: Flask) -> APISpec:
    """The OpenAPI document of every view of ``bp``."""
    spec = APISpec(title="Wasl REST API", version="1", openapi_version="3.0.3",
                   plugins=[FlaskPlugin(), MarshmallowPlugin()],
                   info={"description": "The data behind the supervisor, organiser and clinician pages."})
    spec.components.security_scheme("basic", {"type": "http", "scheme": "basic"})
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    with app.test_request_context():
        for name, view in app.view_functions.items():
            if name.startswith("rest.") and name != "rest.openapi":
                spec.path(view=view, app=app)
    return spec


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3 document of this API (no sign-in needed: it holds no data)."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    if "wasl.openapi" not in app.extensions:
        app.extensions["wasl.openapi"] = make_spec(app).to_dict()
    return send(app.extensions["wasl.openapi"])


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
