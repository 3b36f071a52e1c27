"""``_local`` documents: replication checkpoints, stored verbatim with a ``0-N`` rev.

They have no revision tree and no sequence, and never appear in ``_changes``,
``_all_docs`` or ``doc_count`` (PROTOCOL.md 1.3).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from models import LocalDoc, db

from . import jsoncodec
from .docs import Json, dump_body
from .errors import BadRequest, Conflict, NotFound
from .store import WriteTxn, get_database, write_lock


def _find(database_id: int, doc_id: str) -> LocalDoc | None:
    return db.session.scalar(select(LocalDoc).where(LocalDoc.database_id == database_id,
                                                    LocalDoc.doc_id == doc_id))


def get_local(db_name: str, doc_id: str) -> Json:
    """Return the ``_local`` document, or raise not_found/missing."""
    row = _find(get_database(db_name).id, doc_id)
    if row is None:
        raise NotFound()
    return {"_id": doc_id, "_rev": f"0-{row.rev}", **jsoncodec.loads(row.body)}


def _expected_rev(rev: Any) -> int | None:
    if rev is None:
        return None
    if not isinstance(rev, str) or not rev.startswith("0-") or not rev[2:].isdigit():
        raise Conflict()
    return int(rev[2:])


def put_local_in_txn(txn: WriteTxn, doc_id: str, doc: Json, *, force: bool = False) -> Json:
    """Write a ``_local`` doc inside an open write; ``_rev`` must match unless ``force``."""
    body = {k: v for k, v in doc.items() if not k.startswith("_")}
    text = dump_body(body)
    row = _find(txn.database.id, doc_id)
    expected = _expected_rev(doc.get("_rev"))
    if doc.get("_deleted"):
        if row is None or (not force and expected != row.rev):
            raise NotFound() if row is None else Conflict()
        db.session.delete(row)
        return {"ok": True, "id": doc_id, "rev": "0-0"}
    if not force and row is not None and expected != row.rev:
        raise Conflict()
    if not force and row is None and expected not in (None, 0):
        raise Conflict()
    if row is None:
        row = LocalDoc(database_id=txn.database.id, doc_id=doc_id, rev=0, body=text)
        db.session.add(row)
    row.rev += 1
    row.body = text
    return {"ok": True, "id": doc_id, "rev": f"0-{row.rev}"}


def put_local(db_name: str, doc_id: str, doc: Json) -> Json:
    """``PUT /db/_local/id``: store the checkpoint, bumping its ``0-N`` rev.

    Checkpoints take no sequence, so they skip the database lock: a compare-and-set on
    the row's rev (or the unique key, for a new one) settles concurrent writers.
    """
    if not isinstance(doc, dict):
        raise BadRequest("Document must be a JSON object")
    if doc.get("_deleted"):
        return delete_local(db_name, doc_id, doc.get("_rev"))
    database_id = get_database(db_name).id
    text = dump_body({k: v for k, v in doc.items() if not k.startswith("_")})
    expected = _expected_rev(doc.get("_rev"))
    # End the read transaction: on SQLite a transaction that has read cannot start
    # writing once another writer committed (SQLITE_BUSY without waiting).
    db.session.commit()
    try:
        if expected:
            done = db.session.execute(update(LocalDoc).where(
                LocalDoc.database_id == database_id, LocalDoc.doc_id == doc_id, LocalDoc.rev == expected)
                .values(rev=expected + 1, body=text)).rowcount  # type: ignore[attr-defined]
        else:
            db.session.execute(insert(LocalDoc).values(database_id=database_id, doc_id=doc_id, rev=1, body=text))
            done = 1
        if not done:
            raise Conflict()
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict() from None
    except BaseException:
        db.session.rollback()
        raise
    return {"ok": True, "id": doc_id, "rev": f"0-{(expected or 0) + 1}"}


def delete_local(db_name: str, doc_id: str, rev: str | None) -> Json:
    """``DELETE /db/_local/id?rev=0-N``."""
    with write_lock(db_name) as txn:
        row = _find(txn.database.id, doc_id)
        if row is None:
            raise NotFound()
        if rev is not None and _expected_rev(rev) != row.rev:
            raise Conflict()
        db.session.delete(row)
    return {"ok": True, "id": doc_id, "rev": "0-0"}
