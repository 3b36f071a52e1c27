"""Writing the audit log (models.audit): entries are added, never changed or removed."""
from __future__ import annotations

import time
from typing import Any

from models import db
from models.audit import AuditEntry


def record(actor: str, action: str, *, db_name: str | None = None, doc_id: str | None = None,
           device_id: str | None = None, **detail: Any) -> None:
    """Add an entry to the current transaction; it commits with the change it describes."""
    db.session.add(AuditEntry(at=time.time(), actor=actor, action=action, db_name=db_name, doc_id=doc_id,
                              device_id=device_id, detail=detail))


def entries(*, doc_id: str | None = None, action: str | None = None, limit: int = 100) -> list[AuditEntry]:
    """The newest entries first, optionally for one document or one action."""
    query = db.select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if doc_id is not None:
        query = query.where(AuditEntry.doc_id == doc_id)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    return list(db.session.scalars(query))
