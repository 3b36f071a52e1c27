"""Access keys of documents and users, and who may write what (pure: standard library only).

Every document of the records database has a set of *access keys*; every user has a
``Scope``, a set of keys (or ``all``). A user sees a document when the two sets meet.
The scope index stores one row per (document, key), so a user's reads are one indexed
``key IN (<the user's keys>)``. A deleted document keeps the keys of its last live body.

Key grammar (``<path>``: 1 to 4 segments ``[a-z0-9][a-z0-9-]*`` joined by ``/``, ≤200 characters)::

    all               design documents: every user with a role sees them
    area:<path>       the document lies in the subtree <path>; a record carries one key per
                      prefix of its area: north, north/district-3, north/district-3/village-12
    reach:<path>      a campaign assigned to exactly <path>; it reaches every CHW and
                      supervisor working at or below <path>
    patient:<id>      the patient document <id>, and the visits and referrals about it
    facility:<path>   a referral to the facility <path> (``to_facility`` holds its area path)
    campaign:<id>     the campaign <id>, and the visits made for it (``campaign_id``)
    organiser:<name>  a campaign run by <name>
    user:<name>       addressed to <name>: a review of their visit, a campaign listing them

``area:`` and ``reach:`` are separate namespaces on purpose: a CHW must see campaigns
assigned to their district without seeing every household of that district, which one
shared ``area:`` namespace (records carry prefix keys) could not express.

Keys of a document, by ``type``:

    household             area:<each prefix of area>
    patient               area:<each prefix>, patient:<_id>
    visit                 area:<each prefix>, patient:<patient_id>, campaign:<campaign_id>
    referral              area:<each prefix>, patient:<patient_id>, facility:<to_facility>
    campaign              campaign:<_id>, organiser:<organiser>, user:<each of chws>,
                          reach:<each of areas>, area:<each prefix of each of areas>
    review                user:<chw>, area:<each prefix of area> (when present)
    _design/ documents    all
    anything else         no keys: only admins see it

Keys of a user, by role (a user with several roles gets the union; assignments of a
kind that does not fit the user's roles are ignored):

    admin, _admin   all documents (``Scope.all``)
    chw             area:<village> and reach:<each prefix of the village> per works_in,
                    user:<name>, all
    supervisor      area:<subtree> and reach:<each prefix of the subtree> per supervises,
                    user:<name>, all
    clinician       facility:<facility> per clinic, patient:<id> per consented patient
                    referred to that facility (the caller computes the list), all
    organiser       organiser:<name>, campaign:<id> per campaign they run, all

Write rules (``may_write``; None means allowed, otherwise the reason it is forbidden;
``device`` is true for a write from an enrolled tablet). ``old`` is the body the write
replaces (for a deletion, the last live body); rules that name a document's area, owner
or facility hold for the old body as well as the new one, so a write can neither take
over nor move out a document of someone else's scope:

- ``_design/`` documents: admins only, and never from a device.
- ``campaign`` and ``review`` documents are read-only on devices, for every role.
- An admin (``admin`` or ``_admin``) writes anything else.
- A CHW writes household, patient, visit and referral documents whose area lies in one
  of their villages; ``updated_by`` must be their name, and so must ``chw`` on a visit
  and ``from_chw`` on a referral (on the old body too: a CHW amends only their own visits
  and referrals; households and patients are shared by the village).
- A clinician changes an existing referral to their facility: only ``status``,
  ``status_note``, ``updated_at`` and ``updated_by`` may differ, and ``updated_by`` is their name.
- An organiser writes campaign documents whose ``organiser`` is their name.
- Supervisors write no documents: reviews are written by the server.
- A non-admin cannot change a document's type. A deletion is judged on the old body; a
  tombstone with no type and no old body (created and deleted offline) carries nothing
  and is allowed.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ROLES = ("chw", "supervisor", "organiser", "clinician", "admin")
ADMIN_ROLES = frozenset({"admin", "_admin"})
AREA_PATH = re.compile(r"^[a-z0-9][a-z0-9-]*(?:/[a-z0-9][a-z0-9-]*){0,3}$")
AREA_PATH_MAX = 200
RECORD_TYPES = ("household", "patient", "visit", "referral")
SERVER_TYPES = ("campaign", "review")
OWNER_FIELD = {"visit": "chw", "referral": "from_chw"}
CLINICIAN_FIELDS = frozenset({"status", "status_note", "updated_at", "updated_by"})
# Which role an assignment kind belongs to.
ASSIGNMENT_ROLE = {"works_in": "chw", "supervises": "supervisor", "clinic": "clinician"}
_MISSING = object()

Doc = Mapping[str, Any]


@dataclass(frozen=True)
class Scope:
    """What a user sees (``all`` or ``keys``) and where they write (villages, facilities)."""

    all: bool
    keys: frozenset[str]
    works_in: frozenset[str] = field(default_factory=frozenset)
    clinics: frozenset[str] = field(default_factory=frozenset)

    def sees(self, doc_keys: Iterable[str]) -> bool:
        """Tell whether a document with these keys is in this scope."""
        return self.all or not self.keys.isdisjoint(doc_keys)


NO_SCOPE = Scope(False, frozenset())


def is_admin(roles: Iterable[str]) -> bool:
    """True for ``admin`` and CouchDB's server-admin role ``_admin``."""
    return not ADMIN_ROLES.isdisjoint(roles)


def is_area_path(path: object) -> bool:
    """Tell whether ``path`` is a well-formed area path."""
    return isinstance(path, str) and len(path) <= AREA_PATH_MAX and AREA_PATH.match(path) is not None


def area_prefixes(path: str) -> list[str]:
    """``north/d3/v12`` -> ``["north", "north/d3", "north/d3/v12"]``."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _area_keys(path: object) -> set[str]:
    return {f"area:{p}" for p in area_prefixes(path)} if is_area_path(path) else set()  # type: ignore[arg-type]


def _strs(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _tagged(prefix: str, value: object) -> set[str]:
    return {f"{prefix}:{value}"} if isinstance(value, str) and value else set()


def doc_keys(doc: Doc) -> frozenset[str]:
    """The access keys of a document body (for a deletion: of its last live body)."""
    doc_id = doc.get("_id")
    if isinstance(doc_id, str) and doc_id.startswith("_design/"):
        return frozenset({"all"})
    kind = doc.get("type")
    keys: set[str] = set()
    if kind in RECORD_TYPES or kind == "review":
        keys |= _area_keys(doc.get("area"))
    if kind == "patient":
        keys |= _tagged("patient", doc_id)
    elif kind == "visit":
        keys |= _tagged("patient", doc.get("patient_id")) | _tagged("campaign", doc.get("campaign_id"))
    elif kind == "referral":
        keys |= _tagged("patient", doc.get("patient_id")) | _tagged("facility", doc.get("to_facility"))
    elif kind == "review":
        keys |= _tagged("user", doc.get("chw"))
    elif kind == "campaign":
        keys |= _tagged("campaign", doc_id) | _tagged("organiser", doc.get("organiser"))
        keys |= {f"user:{chw}" for chw in _strs(doc.get("chws")) if chw}
        for area in filter(is_area_path, _strs(doc.get("areas"))):
            keys |= {f"reach:{area}"} | _area_keys(area)
    return frozenset(keys)


def user_keys(roles: Iterable[str], assignments: Iterable[tuple[str, str]], name: str, *,
              organised_campaigns: Iterable[str] = (), consented_patient_ids: Iterable[str] = ()) -> Scope:
    """The scope of a user from their roles, their (area path, kind) assignments and name."""
    roles = frozenset(roles)
    if is_admin(roles):
        return Scope(True, frozenset())
    keys: set[str] = set()
    works_in: set[str] = set()
    clinics: set[str] = set()
    for path, kind in assignments:
        if not is_area_path(path) or ASSIGNMENT_ROLE.get(kind) not in roles:
            continue  # e.g. a village kept from when the user was a CHW
        if kind == "clinic":
            keys.add(f"facility:{path}")
            clinics.add(path)
        else:
            keys |= {f"area:{path}"} | {f"reach:{p}" for p in area_prefixes(path)}
            if kind == "works_in":
                works_in.add(path)
    if roles & {"chw", "supervisor"}:
        keys.add(f"user:{name}")
    if "clinician" in roles:
        keys |= {f"patient:{p}" for p in consented_patient_ids}
    if "organiser" in roles:
        keys |= {f"organiser:{name}"} | {f"campaign:{c}" for c in organised_campaigns}
    if roles & set(ROLES):
        keys.add("all")
    return Scope(False, frozenset(keys), frozenset(works_in), frozenset(clinics))


def _in_any(path: object, areas: frozenset[str]) -> bool:
    return is_area_path(path) and any(p in areas for p in area_prefixes(path))  # type: ignore[arg-type]


def _bodies(doc: Doc, old: Doc | None, deleting: bool) -> list[Doc]:
    """The bodies a rule must hold for: old and new; for a deletion the old one (or the tombstone)."""
    if deleting:
        return [old if old is not None else doc]
    return [b for b in (old, doc) if b is not None]


def _chw_rule(scope: Scope, name: str, doc: Doc, old: Doc | None, deleting: bool) -> str | None:
    for body in _bodies(doc, old, deleting):
        kind = body.get("type")
        if kind not in RECORD_TYPES:
            return "A CHW writes only household, patient, visit and referral documents"
        if not _in_any(body.get("area"), scope.works_in):
            return "The document's area is not one of your villages"
        owner = OWNER_FIELD.get(kind)
        if owner and owner in body and body[owner] != name:
            return f"This {kind} belongs to another CHW" if body is old else f"`{owner}` must be your user name"
    if not deleting and doc.get("updated_by") != name:
        return "`updated_by` must be your user name"
    return None


def _clinician_rule(scope: Scope, name: str, doc: Doc, old: Doc | None, deleting: bool) -> str | None:
    if (old if old is not None else doc).get("type") != "referral":
        return "A clinician writes only referrals"
    if old is None or deleting:
        return "A clinician changes the status of an existing referral"
    if not all(isinstance(f, str) and f in scope.clinics for f in (old.get("to_facility"), doc.get("to_facility"))):
        return "This referral is not for your facility"
    changed = {k for k in set(doc) | set(old)
               if not k.startswith("_") and doc.get(k, _MISSING) != old.get(k, _MISSING)}
    if changed - CLINICIAN_FIELDS:
        return "A clinician changes only status and status_note"
    if doc.get("updated_by") != name:
        return "`updated_by` must be your user name"
    return None


def _organiser_rule(scope: Scope, name: str, doc: Doc, old: Doc | None, deleting: bool) -> str | None:
    for body in _bodies(doc, old, deleting):
        if body.get("type") != "campaign":
            return "An organiser writes only campaign documents"
        if body.get("organiser") != name:
            return "An organiser writes only their own campaigns"
    return None


def _supervisor_rule(scope: Scope, name: str, doc: Doc, old: Doc | None, deleting: bool) -> str | None:
    return "Supervisors write no documents: reviews and resolutions are written by the server"


RULES = {"chw": _chw_rule, "clinician": _clinician_rule, "organiser": _organiser_rule,
         "supervisor": _supervisor_rule}


def may_write(roles: Iterable[str], scope: Scope, name: str, doc: Doc, *, device: bool,
              old: Doc | None = None) -> str | None:
    """None when ``name`` may write ``doc`` over ``old``; otherwise the reason it is forbidden."""
    roles = frozenset(roles)
    deleting = bool(doc.get("_deleted"))
    doc_id = doc.get("_id") or (old or {}).get("_id") or ""
    if isinstance(doc_id, str) and doc_id.startswith("_design/"):
        return None if is_admin(roles) and not device else "Only admins write design documents, never from a device"
    if device and any(b.get("type") in SERVER_TYPES for b in _bodies(doc, old, deleting)):
        return "Campaign and review documents are read-only on devices"
    if is_admin(roles):
        return None
    if deleting and old is None and "type" not in doc:
        return None  # created and deleted offline: the server never held its data
    if old is not None and not deleting and doc.get("type") != old.get("type"):
        return "A document's type cannot change"
    reasons = [rule(scope, name, doc, old, deleting) for role, rule in RULES.items() if role in roles]
    if not reasons:
        return "Your account has no role that writes documents"
    return None if None in reasons else reasons[0]
