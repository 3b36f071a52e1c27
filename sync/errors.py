"""CouchDB's errors, with the exact wire strings PouchDB and CouchDB clients branch on.

Every failure the store reports is a ``CouchError``; its class carries the HTTP status,
the ``error`` string and a default ``reason``. The API turns it into
``{"error": ..., "reason": ...}``. Per-document failures inside ``_bulk_docs`` and
``_bulk_get`` are not raised to the client: they become items of the reply.
"""
from __future__ import annotations


class CouchError(Exception):
    """Base class: an error CouchDB would report with this status and strings."""

    status = 500
    error = "unknown_error"
    reason = "Database encountered an unknown error"

    def __init__(self, reason: str | None = None) -> None:
        if reason is not None:
            self.reason = reason
        super().__init__(self.reason)

    def to_json(self) -> dict[str, str]:
        return {"error": self.error, "reason": self.reason}


class BadRequest(CouchError):
    status, error, reason = 400, "bad_request", "Bad request"


class InvalidRev(BadRequest):
    reason = "Invalid rev format"


class IllegalDatabaseName(CouchError):
    status, error = 400, "illegal_database_name"
    reason = ("Name: Only lowercase characters (a-z), digits (0-9), and any of the characters"
              " _, $, (, ), +, -, and / are allowed. Must begin with a letter.")


class DocValidation(CouchError):
    status, error, reason = 400, "doc_validation", "Bad special document member"


class Unauthorized(CouchError):
    status, error, reason = 401, "unauthorized", "You are not authorized to access this db."


class Forbidden(CouchError):
    status, error, reason = 403, "forbidden", "You are not allowed to access this db."


class NotFound(CouchError):
    status, error, reason = 404, "not_found", "missing"


class DatabaseNotFound(NotFound):
    reason = "Database does not exist."


class MethodNotAllowed(CouchError):
    status, error, reason = 405, "method_not_allowed", "Only GET,HEAD,POST allowed"


class NotAcceptable(CouchError):
    status, error, reason = 406, "not_acceptable", "Not acceptable"


class Conflict(CouchError):
    status, error, reason = 409, "conflict", "Document update conflict."


class FileExists(CouchError):
    status, error, reason = 412, "file_exists", "The database could not be created, the file already exists."


class MissingStub(CouchError):
    status, error, reason = 412, "missing_stub", "Missing attachment stub"


class PreconditionFailed(CouchError):
    status, error, reason = 412, "precondition_failed", "Precondition failed"


class TooLarge(CouchError):
    status, error, reason = 413, "too_large", "the request entity is too large"


class BadContentType(CouchError):
    status, error, reason = 415, "bad_content_type", "Content-Type must be application/json"


class NotImplementedHere(CouchError):
    status, error, reason = 501, "not_implemented", "Not implemented on this server"


class TransientError(CouchError):
    """A failure worth retrying: the connection broke, timed out, or the server answered 5xx."""

    status, error, reason = 503, "transient", "The request failed for a transient reason; retry it"


class TimedOut(TransientError):
    """A transient failure that was a timeout: the replicator also halves its batch (2G links)."""

    error, reason = "timeout", "The request timed out"
