"""``GET /api/v1/audit``: the audit log, for admins, newest first.

Filters: ``actor``, ``action`` (a trailing ``.`` matches a family, e.g. ``auth.``), ``db``,
``doc_id``, ``device_id``, ``since`` and ``until`` (RFC 3339 date-times or epoch seconds),
``limit`` (1 to 1000, default 100) and ``offset``. A bad filter is a 400 that names it.
"""
from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, request

from sync import audit
from sync.errors import BadRequest, Forbidden, Unauthorized
from sync.scope import is_admin

from .couch.auth import current_user
from .couch.params import send

bp = Blueprint("audit", __name__, url_prefix="/api/v1/audit")
FILTERS = ("actor", "action", "db", "doc_id", "device_id", "since", "until", "limit", "offset")


def _time(name: str) -> float | None:
    """A filter time: epoch seconds, or an RFC 3339 date-time with an offset."""
    value = request.args.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise BadRequest(f"{name} must be epoch seconds or an RFC 3339 date-time with an offset")
    return parsed.timestamp()


def _int(name: str, default: int, low: int, high: int) -> int:
    value = request.args.get(name)
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return int(value)


@bp.get("")
def list_entries() -> Response:
    """The audit entries matching the filters, newest first (admins only)."""
    user = current_user()
    if user is None:
        raise Unauthorized()
    if not is_admin(user.roles):
        raise Forbidden("Only admins read the audit log")
    unknown = sorted(set(request.args) - set(FILTERS))
    if unknown:
        raise BadRequest(f"Unknown filter {unknown[0]!r}; use {', '.join(FILTERS)}")
    limit, offset = _int("limit", 100, 1, 1000), _int("offset", 0, 0, 10**9)
    found = audit.entries(actor=request.args.get("actor"), action=request.args.get("action"),
                          db_name=request.args.get("db"), doc_id=request.args.get("doc_id"),
                          device_id=request.args.get("device_id"), since=_time("since"), until=_time("until"),
                          limit=limit, offset=offset)
    return send({"entries": [audit.entry_json(e) for e in found], "limit": limit, "offset": offset})
