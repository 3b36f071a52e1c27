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


def entries(*, actor: str | None = None, action: str | None = None, db_name: str | None = None,
            doc_id: str | None = None, device_id: str | None = None, since: float | None = None,
            until: float | None = None, limit: int = 100, offset: int = 0) -> list[AuditEntry]:
    """The newest entries first, narrowed by any of the filters given (``action`` ending in
    ``.`` matches a family, e.g. ``auth.``)."""
    query = db.select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)
    for column, value in ((AuditEntry.actor, actor), (AuditEntry.db_name, db_name), (AuditEntry.doc_id, doc_id),
                          (AuditEntry.device_id, device_id)):
        if value is not None:
            query = query.where(column == value)
    if action is not None:
        query = query.where(AuditEntry.action.startswith(action, autoescape=True) if action.endswith(".")
                            else AuditEntry.action == action)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    return list(db.session.scalars(query))


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    """One entry as the API and the CLI show it."""
    return {"id": entry.id, "at": entry.at, "actor": entry.actor, "action": entry.action,
            "db": entry.db_name, "doc_id": entry.doc_id, "device_id": entry.device_id, "detail": entry.detail}
