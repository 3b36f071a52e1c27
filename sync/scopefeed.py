"""Reading through a user's scope: which documents they see, and their change feed, from the index.

A ``Reader`` is a user's keys (``sync.scope.Scope.keys``) and name; ``None`` stands for an
admin, who reads everything without touching the index. A document is visible when one of
its rows in ``scope_key`` carries one of the reader's keys.

The feed after ``since`` merges, per key, the first ``limit`` rows of
``scope_key (database_id, key, seq)`` (one index range scan each), plus the user's
``scope_backfill`` rows, and keeps the first ``limit`` distinct documents by sequence. Each
document's first ``limit`` appearances are enough: everything before it in its own key's
list precedes it in the merged feed. So a request costs keys × limit rows at most, however
large the database is.

Backfill: a user's devices checkpoint the feed, so documents that enter the scope with
old sequences (the user is assigned a village, a patient consents to sharing) would never
come after the checkpoint. When a feed request finds the user's keys grown since the last
one (``scope_user``), ``grow`` gives each newly visible document a backfill row at a new
sequence (the database's ``update_seq`` moves past them), for this user only.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache

from sqlalchemy import bindparam, delete, insert, select, text
from sqlalchemy.sql.elements import TextClause

from models import db
from models.access import ScopeBackfill, ScopeKey, ScopeUser

from . import jsoncodec
from .rows import CHUNK, DocRow, docs_by_pks
from .store import get_database, write_lock


@dataclass(frozen=True)
class Reader:
    """A non-admin reader of an indexed database: the keys they hold and their user name."""

    keys: frozenset[str]
    user: str


KEYS_PER_QUERY = 100  # one UNION ALL term per key; SQLite allows 500 terms in a compound select

_VISIBLE = text("SELECT DISTINCT document_id FROM scope_key WHERE document_id IN :pks AND key IN :keys").bindparams(
    bindparam("pks", expanding=True), bindparam("keys", expanding=True))
_BACKFILL = {False: text("SELECT document_id, seq FROM scope_backfill WHERE database_id = :db AND user_name = :user"
                         " AND seq > :since ORDER BY seq LIMIT :limit"),
             True: text("SELECT document_id, seq FROM scope_backfill WHERE database_id = :db AND user_name = :user"
                        " ORDER BY seq DESC LIMIT :limit")}
_BACKFILL_OF = text("SELECT document_id, seq FROM scope_backfill WHERE database_id = :db AND user_name = :user"
                    " AND document_id IN :pks").bindparams(bindparam("pks", expanding=True))
_PENDING = text("SELECT COUNT(*) FROM (SELECT document_id FROM scope_key WHERE database_id = :db AND key IN :keys"
                " AND seq > :since UNION SELECT document_id FROM scope_backfill WHERE database_id = :db"
                " AND user_name = :user AND seq > :since) AS t").bindparams(bindparam("keys", expanding=True))


def visible(reader: Reader | None, pks: list[int]) -> set[int]:
    """The documents among ``pks`` that ``reader`` sees."""
    if reader is None:
        return set(pks)
    found: set[int] = set()
    if not reader.keys:
        return found
    ids = list(dict.fromkeys(pks))
    keys = sorted(reader.keys)
    for start in range(0, len(ids), CHUNK):
        found.update(pk for (pk,) in db.session.execute(_VISIBLE, {"pks": ids[start:start + CHUNK], "keys": keys}))
    return found


@lru_cache(maxsize=64)
def _per_key(count: int, descending: bool) -> TextClause:
    """``count`` index range scans, each ordered by seq and limited, glued by UNION ALL."""
    where = "" if descending else " AND seq > :since"
    order = "DESC" if descending else ""
    # Each term sits in a derived table: SQLite accepts ORDER BY/LIMIT only there in a compound.
    terms = [f"SELECT * FROM (SELECT document_id, seq FROM scope_key WHERE database_id = :db AND key = :k{i}"
             f"{where} ORDER BY seq {order} LIMIT :limit) AS t{i}" for i in range(count)]
    return text(" UNION ALL ".join(terms))


def _backfill_rows(database_id: int, reader: Reader, since: int, limit: int,
                   descending: bool) -> Iterator[tuple[int, int]]:
    """The reader's backfill rows in feed order, skipping documents they no longer see."""
    cursor = since
    while True:
        rows = db.session.execute(_BACKFILL[descending], {"db": database_id, "user": reader.user,
                                                          "since": cursor, "limit": limit}).all()
        seen = visible(reader, [pk for pk, _ in rows])
        yield from ((pk, seq) for pk, seq in rows if pk in seen)
        if descending or len(rows) < limit:
            return
        cursor = rows[-1][1]


def feed(database_id: int, reader: Reader, since: int, limit: int | None, *,
         descending: bool = False) -> list[DocRow]:
    """The reader's documents changed after ``since`` (newest first when ``descending``), at their feed seq."""
    size = limit if limit is not None else 2**62
    found: list[tuple[int, int]] = []
    keys = sorted(reader.keys)
    for start in range(0, len(keys), KEYS_PER_QUERY):
        chunk = keys[start:start + KEYS_PER_QUERY]
        params = {"db": database_id, "since": since, "limit": size, **{f"k{i}": k for i, k in enumerate(chunk)}}
        found.extend(db.session.execute(_per_key(len(chunk), descending), params).all())
    backfill = _backfill_rows(database_id, reader, since, min(size, 1000), descending)
    found.extend(row for _, row in zip(range(size), backfill))
    found.sort(key=lambda row: row[1], reverse=descending)
    order: dict[int, int] = {}
    for pk, seq in found:
        if pk not in order:
            order[pk] = seq
            if len(order) == size:
                break
    rows = docs_by_pks(database_id, list(order))
    return [replace(rows[pk], seq=seq) for pk, seq in order.items() if pk in rows]


def feed_seqs(database_id: int, reader: Reader, docs: list[DocRow]) -> list[DocRow]:
    """Visible ``docs`` at their feed seq for the reader (a backfill row may be newer)."""
    seen = visible(reader, [d.id for d in docs])
    shown = [d for d in docs if d.id in seen]
    newer: dict[int, int] = {}
    for start in range(0, len(shown), CHUNK):
        params = {"db": database_id, "user": reader.user, "pks": [d.id for d in shown[start:start + CHUNK]]}
        for pk, seq in db.session.execute(_BACKFILL_OF, params):
            newer[pk] = max(seq, newer.get(pk, 0))
    return [replace(d, seq=max(d.seq, newer.get(d.id, 0))) for d in shown]


def pending(database_id: int, reader: Reader, since: int) -> int:
    """How many of the reader's documents changed after ``since``."""
    if not reader.keys:
        return 0
    params = {"db": database_id, "keys": sorted(reader.keys), "user": reader.user, "since": since}
    return int(db.session.execute(_PENDING, params).scalar() or 0)


def grow(db_name: str, reader: Reader) -> int:
    """Notice a grown scope: backfill what became visible for this user; return how many documents."""
    database = get_database(db_name)
    known = _known_keys(database.id, reader.user)
    if known is not None and known == reader.keys:
        return 0
    with write_lock(db_name) as txn:
        known = _known_keys(txn.database.id, reader.user)  # again, under the lock
        if known is not None and known == reader.keys:
            return 0
        added = reader.keys - known if known is not None else frozenset()
        pks = _newly_visible(txn.database.id, added, reader.keys & known) if added and known is not None else []
        if pks:
            db.session.execute(delete(ScopeBackfill).where(
                ScopeBackfill.database_id == txn.database.id, ScopeBackfill.user_name == reader.user,
                ScopeBackfill.document_id.in_(pks)))
            first = txn.database.update_seq + 1
            txn.database.update_seq += len(pks)
            db.session.execute(insert(ScopeBackfill), [
                {"database_id": txn.database.id, "user_name": reader.user, "document_id": pk, "seq": first + i}
                for i, pk in enumerate(pks)])
        _prune(txn.database.id, reader)
        _remember(txn.database.id, reader, exists=known is not None)
    return len(pks)


def _known_keys(database_id: int, user: str) -> frozenset[str] | None:
    text_ = db.session.scalar(select(ScopeUser.keys).where(ScopeUser.database_id == database_id,
                                                           ScopeUser.user_name == user))
    return None if text_ is None else frozenset(jsoncodec.loads(text_))


def _newly_visible(database_id: int, added: frozenset[str], kept: frozenset[str]) -> list[int]:
    """Documents under ``added`` keys and none of the ``kept`` ones, oldest change first."""
    rows: dict[int, int] = {}
    for key in sorted(added):
        rows.update(db.session.execute(select(ScopeKey.document_id, ScopeKey.seq).where(
            ScopeKey.database_id == database_id, ScopeKey.key == key)).all())
    seen = visible(Reader(kept, ""), list(rows)) if kept else set()
    return [pk for pk, _ in sorted(rows.items(), key=lambda item: item[1]) if pk not in seen]


def _prune(database_id: int, reader: Reader) -> None:
    """Forget backfill rows of documents the user no longer sees."""
    rows = [pk for (pk,) in db.session.execute(select(ScopeBackfill.document_id).where(
        ScopeBackfill.database_id == database_id, ScopeBackfill.user_name == reader.user))]
    gone = set(rows) - visible(reader, rows)
    for start in range(0, len(gone), CHUNK):
        db.session.execute(delete(ScopeBackfill).where(
            ScopeBackfill.database_id == database_id, ScopeBackfill.user_name == reader.user,
            ScopeBackfill.document_id.in_(sorted(gone)[start:start + CHUNK])))


def _remember(database_id: int, reader: Reader, *, exists: bool) -> None:
    keys = jsoncodec.dumps(sorted(reader.keys))
    if exists:
        row = db.session.scalar(select(ScopeUser).where(ScopeUser.database_id == database_id,
                                                        ScopeUser.user_name == reader.user))
        row.keys, row.changed_at = keys, time.time()  # type: ignore[union-attr]
    else:
        db.session.add(ScopeUser(database_id=database_id, user_name=reader.user, keys=keys, changed_at=time.time()))
