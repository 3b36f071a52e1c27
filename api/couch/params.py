"""Reading CouchDB requests: the raw path, query options and JSON bodies."""
from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from flask import Request, Response, request

from sync import jsoncodec
from sync.errors import BadContentType, BadRequest


def raw_segments(req: Request, prefix: str = "/couch") -> list[str]:
    """Path segments after ``prefix``, each percent-decoded on its own.

    WSGI decodes ``%2F`` in PATH_INFO, which would make ``a%2Fb`` look like ``a/b``; the raw
    request URI (set by Werkzeug's server, its test client and gunicorn) keeps them apart.
    """
    raw = req.environ.get("RAW_URI") or req.environ.get("REQUEST_URI")
    if raw is None:  # pragma: no cover - every server we run sets it
        raw = req.environ.get("SCRIPT_NAME", "") + req.environ.get("PATH_INFO", "")
    path = raw.split("?", 1)[0]
    if "://" in path:  # an absolute-form request target
        path = "/" + path.split("://", 1)[1].split("/", 1)[-1]
    path = path[len(req.environ.get("SCRIPT_NAME", "")):]
    rest = path[len(prefix):] if path.startswith(prefix) else path
    parts = rest.split("/")[1:]
    if parts and parts[-1] == "":
        parts.pop()  # "/db/" and "/db" are the same database
    return [unquote(p) for p in parts]


def qbool(name: str, default: bool = False) -> bool:
    value = request.args.get(name)
    if value is None:
        return default
    if value in ("true", "1"):
        return True
    if value in ("false", "0", ""):
        return False
    raise BadRequest(f"Invalid boolean parameter: {name}")


def qint(name: str, default: int | None = None, minimum: int = 0) -> int | None:
    value = request.args.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"Invalid value for integer parameter: {name}") from None
    if number < minimum:
        raise BadRequest(f"Invalid value for integer parameter: {name}")
    return number


def whole_arg(name: str, default: int, low: int, high: int) -> int:
    """A whole-number query argument from ``low`` to ``high`` (absent or blank: ``default``).

    A bad one is a 400 naming it. ASCII digits only: ``"²".isdigit()`` is true and ``int("²")`` fails.
    """
    value = request.args.get(name)
    if value is None or value == "":
        return default
    if value.isascii() and value.isdigit() and low <= int(value) <= high:
        return int(value)
    raise BadRequest(f"{name} must be a whole number from {low} to {high}")


def qjson(name: str, default: Any = None) -> Any:
    """A JSON-encoded query option such as ``open_revs``, ``keys`` or ``startkey``."""
    value = request.args.get(name)
    if value is None:
        return default
    return loads(value, f"Invalid JSON in parameter {name}")


def loads(text: str | bytes, reason: str = "invalid UTF-8 JSON") -> Any:
    """Parse JSON strictly: no NaN/Infinity, bounded nesting, a clear 400 otherwise."""
    try:
        return jsoncodec.loads(text)
    except ValueError:
        raise BadRequest(reason) from None


def json_body(require_type: bool = True) -> Any:
    """The request body as JSON; 415 unless it says it is JSON (when ``require_type``)."""
    if require_type and request.mimetype != "application/json":
        raise BadContentType()
    data = request.get_data(cache=True)
    if not data.strip():
        raise BadRequest("Request body must be a JSON object")
    return loads(data)


def json_object(require_type: bool = True) -> dict[str, Any]:
    body = json_body(require_type)
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    return body


def send(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response (compact, so a 2G link carries fewer bytes)."""
    resp = Response(jsoncodec.dumpb(obj) + b"\n", status=status, mimetype="application/json")
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp
