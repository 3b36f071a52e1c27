"""The change feed: each document once, at its latest sequence, in sequence order.

Sequences are integers per database on the wire (as PouchDB and CouchDB 1.x send them);
clients must treat them as opaque, and ``since`` also accepts CouchDB 2+'s
``"N-opaque"`` strings by their numeric prefix.

With a ``reader`` (sync.scopefeed) the feed holds only the documents in the reader's
scope, read from the scope index, each at its feed sequence (a backfill row may put a
document after its own last change). A feed that returned everything up to the end says
``last_seq`` = the database's sequence, so the next request starts past the changes the
reader does not see.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from models import db

from .dbapi import fetch
from .docview import ReadOptions, build_doc, leaf_revs, load_bodies
from .errors import BadRequest
from .rows import NO_LIMIT, DocRow, docs_after, docs_by_ids, docs_newest_first
from .scopefeed import Reader, feed, feed_seqs, pending as scoped_pending
from .selector import matches
from .store import changed, get_database, stopping


@dataclass(frozen=True)
class ChangesQuery:
    """The parameters of one ``_changes`` read."""

    since: int = 0
    limit: int | None = None
    descending: bool = False
    all_docs: bool = False
    include_docs: bool = False
    conflicts: bool = False
    attachments: bool = False
    doc_ids: tuple[str, ...] | None = None
    seq_interval: int | None = None
    selector: dict[str, Any] | None = None


def parse_since(value: Any, current: int) -> int:
    """``since`` as an int: a number, ``now``, or a CouchDB ``"N-..."`` string."""
    if value is None or value == "":
        return 0
    if value == "now":
        return current
    text = str(value)
    head = text.split("-", 1)[0]
    if head.isascii() and head.isdigit():
        # Past every sequence reads nothing; the SQL engines take no integer beyond 64 bits.
        return min(int(head), NO_LIMIT)
    raise BadRequest("Malformed sequence supplied in 'since' parameter.")


def current_seq(db_name: str) -> int:
    return get_database(db_name).update_seq


def read_changes(db_name: str, query: ChangesQuery,
                 reader: Reader | None = None) -> tuple[list[dict[str, Any]], int, int]:
    """Return (rows, last_seq, pending) for one pass over the feed (of ``reader``'s scope, if given)."""
    # The database row first: every change up to its update_seq is committed, so the rows
    # read next include them all (a last_seq taken after the rows could skip one).
    database = get_database(db_name)
    if query.selector is not None:
        docs, bodies = _select_matching(database.id, query, reader)
    else:
        docs = _select(database.id, query, reader)
        bodies = load_bodies([(d.id, d.winning_rev) for d in docs]) if query.include_docs else {}
    rows = [_row(d, query, bodies) for d in docs]
    if query.seq_interval and query.seq_interval > 1:
        for i, row in enumerate(rows[:-1]):
            if (i + 1) % query.seq_interval:
                row["seq"] = None
    if docs:
        last_seq = docs[-1].seq
        if reader is not None and not query.descending and (query.limit is None or len(docs) < query.limit):
            last_seq = max(last_seq, database.update_seq)  # the rest of the feed is outside the scope
    else:
        last_seq = database.update_seq if not query.descending else 0
        last_seq = max(last_seq, query.since) if not query.descending else last_seq
    pending = 0
    if query.limit is not None and docs and not query.descending and query.selector is None:
        if reader is None:
            pending = _count_after(database.id, last_seq, query.doc_ids)
        elif query.doc_ids is None:
            pending = scoped_pending(database.id, reader, last_seq)
        else:
            pending = sum(1 for d in _select(database.id, replace(query, since=last_seq, limit=None), reader))
    return rows, last_seq, pending


def count_pending(db_name: str, since: int, reader: Reader | None = None) -> int:
    """How many documents (of the reader's scope) changed after ``since``."""
    database = get_database(db_name)
    if reader is None:
        return max(0, database.update_seq - since)
    return scoped_pending(database.id, reader, since)


def _select(database_id: int, query: ChangesQuery, reader: Reader | None = None) -> list[DocRow]:
    """The documents this pass returns, in feed order."""
    if query.doc_ids is not None:
        # A named set of ids is small: filter it in memory, in sequence order.
        found = list(docs_by_ids(database_id, list(query.doc_ids)).values())
        if reader is not None:
            found = feed_seqs(database_id, reader, found)
        rows = sorted(found, key=lambda d: d.seq, reverse=query.descending)
        if not query.descending:
            rows = [d for d in rows if d.seq > query.since]
        return rows if query.limit is None else rows[:query.limit]
    if reader is not None:
        return feed(database_id, reader, query.since, query.limit, descending=query.descending)
    if query.descending:
        return docs_newest_first(database_id, query.limit)
    return docs_after(database_id, query.since, query.limit)


SCAN_CHUNK = 500


def _select_matching(database_id: int, query: ChangesQuery,
                     reader: Reader | None = None) -> tuple[list[DocRow], dict[tuple[int, str], Any]]:
    """Documents whose winning revision matches the selector, scanning the feed in chunks.

    Stops once ``limit`` rows matched; otherwise the whole feed after ``since`` was read.
    """
    found: list[DocRow] = []
    bodies: dict[tuple[int, str], Any] = {}
    cursor = query.since
    while query.limit is None or len(found) < query.limit:
        chunk = (docs_after(database_id, cursor, SCAN_CHUNK) if reader is None
                 else feed(database_id, reader, cursor, SCAN_CHUNK))
        if not chunk:
            break
        chunk_bodies = load_bodies([(d.id, d.winning_rev) for d in chunk])
        for doc in chunk:
            body = chunk_bodies.get((doc.id, doc.winning_rev)) or {}
            if matches(query.selector or {}, {"_id": doc.doc_id, "_rev": doc.winning_rev, **body}):
                found.append(doc)
                bodies[(doc.id, doc.winning_rev)] = body
                if query.limit is not None and len(found) >= query.limit:
                    break
        cursor = chunk[-1].seq
    return found, bodies


def _row(doc: DocRow, query: ChangesQuery, bodies: dict[tuple[int, str], Any]) -> dict[str, Any]:
    if query.all_docs:
        changes = [{"rev": rev} for rev in leaf_revs(doc)]
    else:
        changes = [{"rev": doc.winning_rev}]
    row: dict[str, Any] = {"seq": doc.seq, "id": doc.doc_id, "changes": changes}
    if doc.deleted:
        row["deleted"] = True
    if query.include_docs:
        opts = ReadOptions(conflicts=query.conflicts, attachments=query.attachments)
        row["doc"] = build_doc(doc, doc.winning_rev, bodies.get((doc.id, doc.winning_rev)), opts)
    return row


_COUNT_AFTER = "SELECT count(*) FROM couch_document WHERE database_id = ? AND seq > ?"
_SEQ = "SELECT update_seq FROM couch_database WHERE name = ?"


def _count_after(database_id: int, seq: int, doc_ids: tuple[str, ...] | None) -> int:
    if doc_ids is None:
        return int(fetch(_COUNT_AFTER, [database_id, seq])[0][0])
    return sum(1 for d in docs_by_ids(database_id, list(doc_ids)).values() if d.seq > seq)


def wait_for_change(db_name: str, since: int, timeout: float, heartbeat: float | None) -> Iterator[bool]:
    """Yield False at each heartbeat while nothing is newer than ``since``; True once it is.

    Stops (without yielding True) when ``timeout`` passes. Writers in this process wake
    us at once; changes committed by other processes are seen within a poll interval.
    """
    deadline = time.monotonic() + timeout
    next_beat = time.monotonic() + heartbeat if heartbeat else None
    while not stopping.is_set():
        db.session.commit()  # a fresh snapshot for the next look
        found = fetch(_SEQ, [db_name])
        if not found or found[0][0] > since:
            yield True
            return
        now = time.monotonic()
        if now >= deadline:
            return
        if next_beat is not None and now >= next_beat:
            next_beat = now + heartbeat  # type: ignore[operator]
            yield False
        wake = min(deadline, next_beat or deadline, now + 0.5)
        with changed:
            changed.wait(max(0.0, wake - now))
