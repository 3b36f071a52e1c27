"""Request rate limits (Flask-Limiter): per enrolled device, and per client address otherwise.

One tablet stuck in a retry loop, or one script hammering the server, must not starve the
other tablets on a shared 2G uplink. A request with a device's bearer token counts against
that device (``WASL_RATE_LIMIT_DEVICE``); any other request counts against its client
address (``WASL_RATE_LIMIT_ADDRESS``, generous: a supervisors' office may share one
address). An empty value turns that limit off. Over the limit: 429 ``too_many_requests``
with ``Retry-After``. Counters live in each process's memory, so with N worker processes
the effective limit is up to N times the configured one.
"""
from __future__ import annotations

import hashlib
import math
import os
import time

from flask import Flask, Response, request
from flask_limiter import Limiter, RequestLimit

from .errors import HTTP_REASONS, couch_error_response

EXTENSION = "wasl.limiter"


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


def _key() -> str:
    """A device's token (hashed: keys may be logged) or the client's address."""
    token = _bearer()
    if token:
        return "device:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    return "address:" + (request.remote_addr or "unknown")


def _refusal(limit: RequestLimit) -> Response:
    """429 in CouchDB's error shape, with the seconds until the window lets the key in again."""
    resp = couch_error_response(429, "too_many_requests", HTTP_REASONS[429])
    resp.headers["Retry-After"] = str(max(1, math.ceil(limit.reset_at - time.time())))
    return resp


def init_app(app: Flask) -> None:
    """Limit every request of ``app``; each app gets its own counters."""
    device = app.config.setdefault("WASL_RATE_LIMIT_DEVICE", os.environ.get("WASL_RATE_LIMIT_DEVICE",
                                                                            "600 per minute"))
    address = app.config.setdefault("WASL_RATE_LIMIT_ADDRESS", os.environ.get("WASL_RATE_LIMIT_ADDRESS",
                                                                              "6000 per minute"))

    def limit() -> str:
        return str(device if _bearer() else address)

    def exempt() -> bool:
        return not limit()

    # Application limits count every request of a key together, whatever the route.
    # No X-RateLimit-* headers on every reply (bytes on a 2G link); Retry-After on a refusal only.
    app.extensions[EXTENSION] = Limiter(_key, app=app, storage_uri="memory://", headers_enabled=False,
                                        application_limits=[limit], application_limits_exempt_when=exempt,
                                        on_breach=_refusal, enabled=bool(device or address))
