"""One place that turns every failure into CouchDB's ``{"error", "reason"}`` body.

Handlers sit on the app, not the blueprint, because unmatched-URL 404/405 never reach
blueprint handlers. An unexpected exception is logged with its traceback and answered
with a fixed reason: its text could hold patient data.
"""
from __future__ import annotations

import json
import logging

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from sync.errors import CouchError

log = logging.getLogger("wasl")

# Werkzeug's HTTP errors mapped to CouchDB's error strings.
HTTP_ERRORS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 409: "conflict",
               412: "precondition_failed", 413: "too_large", 415: "bad_content_type",
               429: "too_many_requests"}
HTTP_REASONS = {404: "missing", 413: "the request entity is too large",
                405: "Method not allowed", 415: "Content-Type must be application/json",
                429: "Too many requests; slow down and retry after the time in Retry-After"}


def couch_body(error: str, reason: str) -> dict[str, str]:
    """The JSON body of every error this server sends."""
    return {"error": error, "reason": reason}


def couch_error_response(status: int, error: str, reason: str) -> Response:
    return Response(json.dumps(couch_body(error, reason)), status=status, mimetype="application/json")


def init_app(app: Flask) -> None:
    """Register the error handlers on ``app``."""

    @app.errorhandler(CouchError)
    def handle_couch(exc: CouchError) -> Response:
        return couch_error_response(exc.status, exc.error, exc.reason)

    @app.errorhandler(HTTPException)
    def handle_http(exc: HTTPException) -> Response:
        if exc.response is not None:  # already a full reply (a rate limit's 429 with Retry-After)
            return exc.response  # type: ignore[return-value]
        status = exc.code or 500
        error = HTTP_ERRORS.get(status, "unknown_error")
        reason = HTTP_REASONS.get(status) or (exc.description or error)
        return couch_error_response(status, error, reason)

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception) -> Response:
        if isinstance(exc, HTTPException):  # pragma: no cover - handled above
            return handle_http(exc)
        log.exception("unhandled error")
        return couch_error_response(500, "unknown_error", "Database encountered an unknown error")
