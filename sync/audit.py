"""Writing the audit log (models.audit): entries are added, never changed or removed.

Three ways in:

- ``record``: one entry in the current transaction; it commits with the change it describes.
- ``record_write``: a ``doc.write`` entry for a revision about to be stored. Entries are kept
  in the session and inserted with ONE statement just before the transaction commits (a
  ``before_commit`` hook), so a replicated batch of 100 revisions costs one insert, and a
  rolled-back write leaves no entry.
- ``record_reads``: ``doc.read`` entries for documents about to leave the server, ONE
  set-wise insert, committed at once in a transaction of their own: a read whose audit
  cannot be written raises, and the caller returns no data.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import event, or_, select, tuple_, union_all
from sqlalchemy.orm import Session

from models import db
from models.audit import AuditEntry
from models.health import Household, Patient, Referral, Visit

PENDING = "wasl_audit_writes"  # session.info key: doc.write rows waiting for the commit


def record(actor: str, action: str, *, db_name: str | None = None, doc_id: str | None = None,
           device_id: str | None = None, **detail: Any) -> None:
    """Add an entry to the current transaction; it commits with the change it describes."""
    db.session.add(AuditEntry(at=time.time(), actor=actor, action=action, db_name=db_name, doc_id=doc_id,
                              device_id=device_id, detail=detail))


def record_write(actor: str, db_name: str, doc_id: str, rev: str, *, device_id: str | None = None, via: str,
                 deleted: bool = False) -> None:
    """Queue a ``doc.write`` entry for ``rev``; it is inserted with the write, when its transaction commits."""
    detail: dict[str, Any] = {"rev": rev, "via": via, **({"deleted": True} if deleted else {})}
    db.session().info.setdefault(PENDING, []).append(
        {"at": time.time(), "actor": actor, "action": "doc.write", "db_name": db_name, "doc_id": doc_id,
         "device_id": device_id, "detail": detail})


@event.listens_for(Session, "before_commit")
def _insert_writes(session: Session) -> None:
    rows = session.info.pop(PENDING, None)
    if rows:
        session.execute(AuditEntry.__table__.insert(), rows)


@event.listens_for(Session, "after_soft_rollback")
def _drop_writes(session: Session, previous_transaction: Any) -> None:
    # The revisions were not stored: neither are their entries.
    session.info.pop(PENDING, None)


def read_rows(actor: str, db_name: str, doc_ids: Iterable[str | tuple[str, str]], *, device_id: str | None,
              via: str, **detail: Any) -> list[dict[str, Any]]:
    """The ``doc.read`` rows for ``doc_ids``: one per document, with ``rev`` when one revision of it was read.

    An item is a document id, or ``(doc_id, rev)``; a document named twice with different
    revisions gets one row without ``rev``.
    """
    revs: dict[str, str | None] = {}
    for item in doc_ids:
        doc_id, rev = (item, None) if isinstance(item, str) else item
        if doc_id in revs and revs[doc_id] != rev:
            revs[doc_id] = None
        else:
            revs[doc_id] = rev
    at = time.time()
    base = {"via": via, **detail}
    return [{"at": at, "actor": actor, "action": "doc.read", "db_name": db_name, "doc_id": doc_id,
             "device_id": device_id, "detail": {**base, "rev": rev} if rev else base}
            for doc_id, rev in revs.items()]


def record_reads(actor: str, db_name: str, doc_ids: Iterable[str | tuple[str, str]], *,
                 device_id: str | None = None, via: str, **detail: Any) -> int:
    """Write and commit one ``doc.read`` entry per document (one insert); return how many.

    Call it after reading and before the data leaves; never inside a write (it commits the
    session). An item of ``doc_ids`` may be ``(doc_id, rev)`` to name the revision read.
    Raises if the entries cannot be written: the caller must then return no data.
    """
    rows = read_rows(actor, db_name, doc_ids, device_id=device_id, via=via, **detail)
    if not rows:
        return 0
    session = db.session()
    expire = session.expire_on_commit
    # The caller's loaded objects stay usable (no reload per object) after these commits.
    session.expire_on_commit = False
    try:
        # End the read first: on SQLite a transaction that has read cannot start to write
        # once another writer has committed (see sync.store.write_lock).
        session.commit()
        _insert_raw(session, rows)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.expire_on_commit = expire
    return len(rows)


COLUMNS = ("at", "actor", "action", "db_name", "doc_id", "device_id", "detail")


def _insert_raw(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` with the driver's own executemany (a read of 2,000 documents costs 20 of these).

    SQLAlchemy's per-row bind processing (the JSON column's above all) cost more than the
    insert itself; the rows here are plain, so the JSON text is made once per row here.
    """
    conn = session.connection()
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    json_mark = mark if conn.dialect.name == "sqlite" else f"CAST({mark} AS JSON)"
    sql = (f"INSERT INTO audit_entry ({', '.join(COLUMNS)}) VALUES "
           f"({', '.join([mark] * (len(COLUMNS) - 1) + [json_mark])})")
    conn.exec_driver_sql(sql, [tuple(json.dumps(r[c], separators=(",", ":")) if c == "detail" else r[c]
                                     for c in COLUMNS) for r in rows])


def patient_docs(patient_id: str) -> Any:
    """``(db_name, doc_id)`` of the documents about a patient: its own, patients merged into it, and
    the visits, referrals and households whose central rows name it."""
    return union_all(
        select(Patient.db_name, Patient.doc_id).where(or_(Patient.doc_id == patient_id,
                                                          Patient.merged_into == patient_id)),
        *(select(m.db_name, m.doc_id).where(or_(m.patient_id == patient_id, m.patient_doc_id == patient_id))
          for m in (Visit, Referral)),
        select(Household.db_name, Household.doc_id).where(Household.head_patient_id == patient_id))


def entries(*, actor: str | None = None, action: str | None = None, db_name: str | None = None,
            doc_id: str | None = None, device_id: str | None = None, patient: str | None = None,
            since: float | None = None, until: float | None = None, limit: int = 100,
            offset: int = 0) -> list[AuditEntry]:
    """The newest entries first, narrowed by any of the filters given (``action`` ending in
    ``.`` matches a family, e.g. ``auth.``; ``patient``: entries on the documents about that patient)."""
    query = db.select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)
    for column, value in ((AuditEntry.actor, actor), (AuditEntry.db_name, db_name), (AuditEntry.doc_id, doc_id),
                          (AuditEntry.device_id, device_id)):
        if value is not None:
            query = query.where(column == value)
    if action is not None:
        query = query.where(AuditEntry.action.startswith(action, autoescape=True) if action.endswith(".")
                            else AuditEntry.action == action)
    if patient is not None:
        query = query.where(or_(AuditEntry.doc_id == patient,
                                tuple_(AuditEntry.db_name, AuditEntry.doc_id).in_(patient_docs(patient))))
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    return list(db.session.scalars(query))


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    """One entry as the API and the CLI show it."""
    return {"id": entry.id, "at": entry.at, "actor": entry.actor, "action": entry.action,
            "db": entry.db_name, "doc_id": entry.doc_id, "device_id": entry.device_id, "detail": entry.detail}
