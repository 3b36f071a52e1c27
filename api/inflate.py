"""Request bodies sent with ``Content-Encoding: gzip``, inflated before the app reads them.

On a 2G link a tablet's upload is most of a sync: a batch of visits shrinks five- to
sevenfold under gzip, and responses were already compressed. The project's device client
gzips its request bodies to this server (``sync.remote.RemoteDatabase``,
``compress_requests``); stock PouchDB sends them plain, which passes through untouched.

A WSGI middleware, so every route (CouchDB, device, REST) sees an ordinary body with its
real ``Content-Length``, and the request size limit (``MAX_CONTENT_LENGTH``) applies to the
inflated bytes: a small body that would inflate past it (a "zip bomb") is refused with 413
after inflating no more than the limit. A body that is not valid gzip gets 400, any other
encoding 415; in each case the app never runs, so nothing changes, and the refusal carries
the headers every reply carries (``api.security.EVERY_REPLY``).
"""
from __future__ import annotations

import io
import json
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from .security import EVERY_REPLY

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
GZIP = ("gzip", "x-gzip")


class Refused(Exception):
    """A request body this server will not inflate: the HTTP status, CouchDB's error and reason."""

    def __init__(self, status: str, error: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.error, self.reason = status, error, reason


def inflate(stream: Any, length: int | None, limit: int) -> bytes:
    """The gzip body read from ``stream`` (``length`` bytes, or to its end), inflated.

    Concatenated gzip members are one body, as RFC 1952 allows.

    :raise Refused: more than ``limit`` bytes in or out (413), or not valid gzip (400).
    """
    raw = stream.read(limit + 1 if length is None else min(length, limit + 1))
    if len(raw) > limit:
        raise Refused("413 Request Entity Too Large", "too_large", "the request entity is too large")
    out = bytearray()
    try:
        while raw:
            member = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out += member.decompress(raw, limit + 1 - len(out))
            if len(out) > limit:
                raise Refused("413 Request Entity Too Large", "too_large", "the request entity is too large")
            if member.unconsumed_tail:  # output capped at the limit with input still left
                raise Refused("413 Request Entity Too Large", "too_large", "the request entity is too large")
            if not member.eof:
                raise zlib.error("truncated")
            raw = member.unused_data
    except zlib.error:
        raise Refused("400 Bad Request", "bad_request", "Request body is not valid gzip") from None
    return bytes(out)


class InflateRequests:
    """Wraps a WSGI app: gzip request bodies reach it inflated; ``limit`` caps the inflated size."""

    def __init__(self, app: WsgiApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        encoding = environ.get("HTTP_CONTENT_ENCODING", "").strip().lower()
        if encoding in ("", "identity"):
            return self.app(environ, start_response)
        try:
            if encoding not in GZIP:
                raise Refused("415 Unsupported Media Type", "bad_content_type",
                              "Content-Encoding must be gzip or identity")
            length = environ.get("CONTENT_LENGTH") or ""
            declared = int(length) if length.isascii() and length.isdigit() else None  # "²".isdigit() too
            body = inflate(environ["wsgi.input"], declared, self.limit)
        except Refused as refused:
            reply = json.dumps({"error": refused.error, "reason": refused.reason}).encode()
            start_response(refused.status, [("Content-Type", "application/json"),
                                            ("Content-Length", str(len(reply))), *EVERY_REPLY])
            return [reply]
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        del environ["HTTP_CONTENT_ENCODING"]
        return self.app(environ, start_response)
