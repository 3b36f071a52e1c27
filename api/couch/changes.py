"""``GET|POST /db/_changes``: normal, longpoll and continuous feeds.

A non-admin's feed holds only their scope (``access.reader``), read from the scope index.
Before it is read, a scope that grew since the user's last feed request gets its newly
visible documents backfilled (sync.scopefeed.grow). A waiting feed wakes on any write, reads
its scope, and goes back to waiting when nothing in it changed.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from flask import Response, request, stream_with_context

from sync import jsoncodec
from sync.changes import ChangesQuery, count_pending, current_seq, parse_since, read_changes, wait_for_change
from sync.errors import BadRequest, DatabaseNotFound, NotFound
from sync.rows import NO_LIMIT
from sync.scopefeed import Reader, grow
from sync.selector import validate

from .access import audit_rows, reader as reader_for
from .params import json_body, qbool, qint, qjson, send

DEFAULT_TIMEOUT_MS = 60000
MAX_TIMEOUT_MS = 3600000


def _selector() -> dict[str, Any] | None:
    """The Mango selector of ``filter=_selector``, from the POST body."""
    if request.args.get("filter") != "_selector":
        return None
    body = json_body(require_type=False) if request.method == "POST" and request.get_data() else {}
    selector = body.get("selector") if isinstance(body, dict) else None
    if selector is None:
        raise BadRequest("Selector must be specified in POST payload")
    validate(selector)
    return selector  # type: ignore[no-any-return]


def _doc_ids() -> tuple[str, ...] | None:
    flt = request.args.get("filter")
    if flt is None or flt == "_selector":
        return None
    if flt != "_doc_ids":
        # Server-side JavaScript filters and views are not run here (see docs/protocol.md).
        raise NotFound("missing json key: filters" if "/" in flt else f"filter {flt} not supported")
    ids: Any = qjson("doc_ids")
    if request.method == "POST":
        ids = json_body(require_type=False).get("doc_ids", ids)
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise BadRequest("`doc_ids` filter parameter is not a list of doc ids.")
    return tuple(ids)


def _query(since: int) -> ChangesQuery:
    limit = qint("limit", None, minimum=0)
    if limit is not None:
        limit = min(limit, NO_LIMIT)  # beyond every feed's length, within the engines' 64 bits
    style = request.args.get("style", "main_only")
    if style not in ("main_only", "all_docs"):
        raise BadRequest("Invalid `style` parameter")
    return ChangesQuery(since=since, limit=limit, descending=qbool("descending"),
                        all_docs=style == "all_docs", include_docs=qbool("include_docs"),
                        conflicts=qbool("conflicts"), attachments=qbool("attachments"),
                        doc_ids=_doc_ids(), seq_interval=qint("seq_interval", None, minimum=1),
                        selector=_selector())


def changes(db_name: str) -> Response:
    """Serve the change feed; longpoll waits, continuous streams rows until ``timeout``."""
    if request.method == "POST" and request.get_data() and not isinstance(
            json_body(require_type=False), dict):
        raise BadRequest("Request body must be a JSON object")
    feed = request.args.get("feed", "normal")
    if feed not in ("normal", "longpoll", "continuous"):
        raise BadRequest("Supported `feed` types: normal, continuous, longpoll")
    reader = reader_for(db_name)
    if reader is not None:
        grow(db_name, reader)  # first: "since=now" must lie after the backfill
    since = parse_since(request.args.get("since"), current_seq(db_name))
    query = _query(since)
    if query.limit == 0 and feed == "normal":
        rows, last_seq, pending = [], since, count_pending(db_name, since, reader)
        return send({"results": rows, "last_seq": last_seq, "pending": pending})
    rows, last_seq, pending = read_changes(db_name, query, reader)
    audit_rows(db_name, rows, "changes")
    if feed == "normal" or (rows and feed == "longpoll"):
        return send({"results": rows, "last_seq": last_seq, "pending": pending})
    timeout = min(qint("timeout", DEFAULT_TIMEOUT_MS) or 0, MAX_TIMEOUT_MS) / 1000
    heartbeat_ms = qint("heartbeat", None) if request.args.get("heartbeat") != "true" else 60000
    heartbeat = (heartbeat_ms / 1000) if heartbeat_ms else None
    stream = _longpoll if feed == "longpoll" else _continuous
    body = stream(db_name, query, rows, last_seq, timeout, heartbeat, reader)
    return Response(stream_with_context(body), mimetype="application/json")


def _read_while_open(db_name: str, query: ChangesQuery, reader: Reader | None) -> tuple[list[Any], int, int] | None:
    """Read the feed, or None if the database was deleted while the request waited.

    The status line is already sent by then, so the feed just ends.
    """
    try:
        return read_changes(db_name, query, reader)
    except DatabaseNotFound:
        return None


def _longpoll(db_name: str, query: ChangesQuery, rows: list[Any], last_seq: int,
              timeout: float, heartbeat: float | None, reader: Reader | None) -> Iterator[str]:
    """Wait for the first change the query lets through (filters may hide some), then answer."""
    deadline = time.monotonic() + timeout
    since = query.since
    while True:
        woke = False
        for ready in wait_for_change(db_name, since, max(0.0, deadline - time.monotonic()), heartbeat):
            if not ready:
                yield "\n"
                continue
            woke = True
        found = _read_while_open(db_name, replace(query, since=since), reader) if woke else None
        if found is None:
            break
        rows, last_seq, pending = found
        if rows:
            audit_rows(db_name, rows, "changes")
            yield jsoncodec.dumps({"results": rows, "last_seq": last_seq, "pending": pending}) + "\n"
            return
        since = last_seq  # every new change was filtered out: wait past them
    yield jsoncodec.dumps({"results": [], "last_seq": max(last_seq, since), "pending": 0}) + "\n"


def _continuous(db_name: str, query: ChangesQuery, rows: list[Any], last_seq: int,
                timeout: float, heartbeat: float | None, reader: Reader | None) -> Iterator[str]:
    """One row per line; ``{"last_seq": S}`` when the timeout ends the feed."""
    sent = 0
    since = query.since
    while True:
        for row in rows:
            yield jsoncodec.dumps(row) + "\n"
        sent += len(rows)
        since = max(since, last_seq)  # filtered-out changes move the feed on too
        if query.limit is not None and sent >= query.limit:
            break
        woke = False
        for ready in wait_for_change(db_name, since, timeout, heartbeat):
            if ready:
                woke = True
                break
            yield "\n"
        if not woke:
            break
        remaining = None if query.limit is None else query.limit - sent
        query = replace(query, since=since, limit=remaining)
        found = _read_while_open(db_name, query, reader)
        if found is None:
            break
        rows, last_seq, _ = found
        audit_rows(db_name, rows, "changes")
    yield jsoncodec.dumps({"last_seq": max(last_seq, since)}) + "\n"
