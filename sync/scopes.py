"""A user's scope over the records database, with the parts that come from its documents.

``sync.access.scope_of`` gives a user's keys from their roles and assignments; two roles
also need the documents themselves, found through the scope index:

- an organiser's campaigns: the campaign documents whose ``organiser`` is the user (the
  ``organiser:<name>`` key);
- a clinician's consented patients: the patients referred to one of their facilities (a
  live referral under ``facility:<path>``) whose winning body has
  ``consent.share_with_partners`` true.

Computed per request (the API keeps the result for the request's duration).
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable

from . import access
from .errors import DatabaseNotFound
from .rows import bodies_of, docs_by_ids, docs_by_pks
from .scope import Scope
from .scopefeed import Reader
from .scopeindex import documents_under
from .store import get_database


def organised_campaigns(database_id: int, user_name: str) -> list[str]:
    """Ids of the campaign documents the user runs (deleted ones too: their visits stay theirs)."""
    return sorted(doc_id for _, doc_id, _ in documents_under(database_id, f"organiser:{user_name}"))


def consented_patients(database_id: int, facilities: Iterable[str]) -> list[str]:
    """Ids of the patients who consented to sharing and are referred to one of ``facilities``."""
    referrals = [pk for path in sorted(facilities)
                 for pk, _, deleted in documents_under(database_id, f"facility:{path}") if not deleted]
    rows = docs_by_pks(database_id, referrals)
    bodies = bodies_of([(pk, row.winning_rev) for pk, row in rows.items()])
    patient_ids = {body.get("patient_id") for body in bodies.values() if body.get("type") == "referral"}
    patients = docs_by_ids(database_id, sorted(p for p in patient_ids if isinstance(p, str)))
    live = {row.id: row for row in patients.values() if not row.deleted}
    found = bodies_of([(pk, row.winning_rev) for pk, row in live.items()])
    return sorted(live[pk].doc_id for (pk, _), body in found.items()
                  if body.get("type") == "patient" and (body.get("consent") or {}).get("share_with_partners") is True)


def scope_for(user_name: str, roles: Iterable[str], db_name: str) -> Scope:
    """The user's scope over ``db_name`` (the records database), with campaigns and consented patients."""
    roles = frozenset(roles)
    base = access.scope_of(user_name)
    if base.all or not roles & {"organiser", "clinician"}:
        return base
    try:
        database_id = get_database(db_name).id
    except DatabaseNotFound:
        return base
    campaigns = organised_campaigns(database_id, user_name) if "organiser" in roles else []
    patients = consented_patients(database_id, base.clinics) if "clinician" in roles else []
    return access.scope_of(user_name, organised_campaigns=campaigns, consented_patient_ids=patients)


def reader_of(user_name: str, scope: Scope) -> Reader | None:
    """The ``Reader`` for a scope; None when it sees everything."""
    return None if scope.all else Reader(scope.keys, user_name)


def fingerprint(scope: Scope) -> str:
    """A short digest of a scope's keys: it changes whenever what the user may see changes."""
    if scope.all:
        return "all"
    return hashlib.sha256("\n".join(sorted(scope.keys)).encode()).hexdigest()[:32]
