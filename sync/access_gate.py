"""Who may write what in the records database: ``sync.scope.may_write`` as a ``sync.writes`` gate.

``AccessGate`` sees every new revision with the body it replaces (``old``, see
``sync.writes``) and asks ``may_write``; a refused revision is held in the quarantine
(``models.quarantine``) with the reason, in the same transaction, exactly as a revision
that fails its schema is (DESIGN decision 5), and the writer gets a per-document
``forbidden`` item (a 403 for a single write). An allowed revision then goes to the
next gate, the schema check (``sync.records.quarantine.RecordsGate``).

A revision every gate lets through is about to be stored: the gate queues its ``doc.write``
audit entry (``sync.audit.record_write``, detail ``rev``, ``via``, ``deleted``), which is
inserted with the others of the batch in one statement, in the write's own transaction.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import audit
from .docs import Json
from .records.quarantine import hold
from .scope import Scope, may_write
from .writes import Gate


@dataclass(frozen=True)
class AccessGate:
    """The write rules for one caller (``sees_old``: ``sync.writes`` passes the replaced body)."""

    actor: str
    roles: tuple[str, ...]
    scope: Scope
    device_id: str | None = None
    then: Gate | None = field(default=None)
    via: str = "replication"  # the audit's name for the path the writes come by
    sees_old = True

    def refuse(self, db_name: str, doc: Json, *, rev: str, parent_rev: str | None, replicated: bool,
               old: Json | None = None) -> str | None:
        """Hold ``doc`` and return the reason if the caller may not write it; else ask the next gate."""
        reason = may_write(self.roles, self.scope, self.actor, doc, device=self.device_id is not None, old=old)
        if reason is not None:
            hold(db_name, doc, rev=rev, parent_rev=parent_rev, replicated=replicated, reason=reason,
                 fields={}, actor=self.actor, device_id=self.device_id)
            return reason
        if self.then is not None:
            reason = self.then.refuse(db_name, doc, rev=rev, parent_rev=parent_rev, replicated=replicated)
            if reason is not None:
                return reason
        audit.record_write(self.actor, db_name, doc["_id"], rev, device_id=self.device_id, via=self.via,
                           deleted=doc.get("_deleted") is True)
        return None
