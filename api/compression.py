"""gzip for JSON replies, with zlib-ng doing the deflate.

JSON replies shrink four- to tenfold under gzip: on a 2G link that is most of a sync's time.
A pull's ``_bulk_get`` of 100 visits is 120 kB of JSON, and compressing it sits on the
critical path of every batch. zlib-ng at level 5 does it in 1.0 ms where the standard
library's zlib takes 1.5 ms, and its output is 1% smaller (docs/performance.md).
Flask-Compress, which served here before, always calls the standard library's gzip.

What is compressed: a finished (not streamed) ``application/json`` reply with a 2xx status
and at least ``COMPRESS_MIN_BYTES``, to a client whose ``Accept-Encoding`` admits gzip
(werkzeug parses the header, quality values included). Streamed feeds stay uncompressed,
or their heartbeats would sit in a compressor's buffer. Every JSON reply says
``Vary: Accept-Encoding``, so a cache between a tablet and the server keeps the two forms
apart.
"""
from __future__ import annotations

import os

from flask import Flask, Response, request
from zlib_ng import gzip_ng

MIMETYPE = "application/json"


def _vary_on_encoding(response: Response) -> None:
    vary = response.headers.get("Vary")
    if not vary:
        response.headers["Vary"] = "Accept-Encoding"
    elif "accept-encoding" not in vary.lower():
        response.headers["Vary"] = f"{vary}, Accept-Encoding"


def gzip_json(response: Response, level: int, min_bytes: int) -> Response:
    """``response`` gzipped when the client takes gzip and it is worth it; otherwise as it was."""
    if response.mimetype != MIMETYPE:
        return response
    _vary_on_encoding(response)
    if (response.is_streamed or not 200 <= response.status_code < 300 or "Content-Encoding" in response.headers
            or request.accept_encodings.quality("gzip") <= 0):
        return response
    data = response.get_data()
    if len(data) < min_bytes:
        return response
    response.set_data(gzip_ng.compress(data, level))
    response.headers["Content-Encoding"] = "gzip"
    etag, weak = response.get_etag()
    if etag and not weak:
        # A strong validator names these exact bytes; the gzipped ones are other bytes.
        response.set_etag(f"{etag}:gzip")
    return response


def init_app(app: Flask) -> None:
    """Gzip ``app``'s JSON replies (``WASL_GZIP_LEVEL``, default 5; from 1 KB)."""
    level = app.config.setdefault("COMPRESS_LEVEL", int(os.environ.get("WASL_GZIP_LEVEL", 5)))
    min_bytes = app.config.setdefault("COMPRESS_MIN_BYTES", 1024)
    app.after_request(lambda response: gzip_json(response, level, min_bytes))
