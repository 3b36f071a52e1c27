"""``_local`` documents: replication checkpoints, stored verbatim with a ``0-N`` rev.

They have no revision tree and no sequence, and never appear in ``_changes``,
``_all_docs`` or ``doc_count`` (PROTOCOL.md 1.3).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models import LocalDoc, db

from . import jsoncodec
from .dbapi import fetch, run
from .docs import Json, dump_body
from .errors import BadRequest, Conflict, NotFound
from .store import WriteTxn, get_database, write_lock

# Checkpoints are read and written once per replication batch on each side: plain SQL on the
# driver's cursor (sync/dbapi.py), and the database found by name in the same statement.
_GET = ("SELECT l.rev, l.body FROM couch_local l JOIN couch_database d ON d.id = l.database_id"
        " WHERE d.name = ? AND l.doc_id = ?")
_UPDATE = ("UPDATE couch_local SET rev = ?, body = ? WHERE doc_id = ? AND rev = ?"
           " AND database_id = (SELECT id FROM couch_database WHERE name = ?)")
_INSERT = ("INSERT INTO couch_local (database_id, doc_id, rev, body)"
           " SELECT id, ?, 1, ? FROM couch_database WHERE name = ?")


def _find(database_id: int, doc_id: str) -> LocalDoc | None:
    return db.session.scalar(select(LocalDoc).where(LocalDoc.database_id == database_id,
                                                    LocalDoc.doc_id == doc_id))


def get_local(db_name: str, doc_id: str) -> Json:
    """Return the ``_local`` document, or raise not_found/missing (or the database's not_found)."""
    rows = fetch(_GET, [db_name, doc_id])
    if not rows:
        get_database(db_name)  # raises when it is the database that is missing
        raise NotFound()
    rev, body = rows[0]
    return {"_id": doc_id, "_rev": f"0-{rev}", **jsoncodec.loads(body)}


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
    text = dump_body({k: v for k, v in doc.items() if not k.startswith("_")})
    duplicate = db.engine.dialect.dbapi.IntegrityError  # the driver's: these statements bypass SQLAlchemy
    # Begin with the write: on SQLite a transaction that has read cannot start writing
    # once another writer committed (SQLITE_BUSY without waiting).
    db.session.commit()
    try:
        expected = _expected_rev(doc.get("_rev"))
        if expected:
            done = run(_UPDATE, [expected + 1, text, doc_id, expected, db_name])
        else:
            done = run(_INSERT, [doc_id, text, db_name])
        if not done:
            raise Conflict()
        db.session.commit()
    except (Conflict, duplicate):
        # A missing database answers not_found whatever the rev; otherwise the rev did not
        # match, or a concurrent first write of the same checkpoint won.
        db.session.rollback()
        get_database(db_name)
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
