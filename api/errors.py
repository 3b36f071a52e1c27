"""One place that turns every failure into CouchDB's ``{"error", "reason"}`` body.

Handlers sit on the app, not the blueprint, because unmatched-URL 404/405 never reach
blueprint handlers. An unexpected exception is logged with its traceback and answered
with a fixed reason: its text could hold patient data.
"""
from __future__ import annotations

import json
import logging

from flask import Flask, Response, render_template, request
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


PAGE_MESSAGES = {400: "The form could not be used: it was out of date or incomplete. Go back, reload and try again.",
                 403: "Your account may not open this page.", 404: "There is no such page.",
                 500: "Something went wrong on the server. It has been logged; please try again."}


def _is_page() -> bool:
    """Pages get HTML errors; the CouchDB and JSON APIs get ``{"error", "reason"}``."""
    return not request.path.startswith(("/couch", "/api/"))


def _page_error(code: int, message: str) -> Response:
    # A fixed message per status: an exception's own text could hold patient data.
    return Response(render_template("error.html", code=code, message=message), status=code, mimetype="text/html")


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
        if _is_page():
            return _page_error(exc.code or 500, PAGE_MESSAGES.get(exc.code or 500, exc.description or ""))
        status = exc.code or 500
        error = HTTP_ERRORS.get(status, "unknown_error")
        reason = HTTP_REASONS.get(status) or (exc.description or error)
        resp = couch_error_response(status, error, reason)
        for name, value in exc.get_headers():
            if name == "Allow":  # a 405 says which methods would do
                resp.headers[name] = value
        return resp

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception) -> Response:
        if isinstance(exc, HTTPException):  # pragma: no cover - handled above
            return handle_http(exc)
        log.exception("unhandled error")
        if _is_page():
            return _page_error(500, PAGE_MESSAGES[500])
        return couch_error_response(500, "unknown_error", "Database encountered an unknown error")
