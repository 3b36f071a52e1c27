"""Who may write what in the records database: ``sync.scope.may_write`` as a ``sync.writes`` gate.

``AccessGate`` sees every new revision with the body it replaces (``old``, see
``sync.writes``) and asks ``may_write``; a refused revision is held in the quarantine
(``models.quarantine``) with the reason, in the same transaction, exactly as a revision
that fails its schema is (DESIGN decision 5), and the writer gets a per-document
``forbidden`` item (a 403 for a single write). An allowed revision then goes to the
next gate, the schema check (``sync.records.quarantine.RecordsGate``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

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
    sees_old = True

    def refuse(self, db_name: str, doc: Json, *, rev: str, parent_rev: str | None, replicated: bool,
               old: Json | None = None) -> str | None:
        """Hold ``doc`` and return the reason if the caller may not write it; else ask the next gate."""
        reason = may_write(self.roles, self.scope, self.actor, doc, device=self.device_id is not None, old=old)
        if reason is not None:
            hold(db_name, doc, rev=rev, parent_rev=parent_rev, replicated=replicated, reason=reason,
                 fields={}, actor=self.actor, device_id=self.device_id)
            return reason
        if self.then is None:
            return None
        return self.then.refuse(db_name, doc, rev=rev, parent_rev=parent_rev, replicated=replicated)
