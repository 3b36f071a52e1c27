"""The partner clinician's referrals: the list for their facilities, and marking one received or completed.

The list reads the central ``health_referral`` table (``to_facility`` holds the facility's
area path) and shows each referral as its current document says. A referral's patient
record is shown only when the patient consented to sharing with partners
(``share_with_partners`` of the central patient row).

A status change is a new revision of the referral document, written by the server as the
clinician (``status``, ``status_note``, ``updated_at``, ``updated_by``), checked against the
schema and the clinician's write rule (``sync.scope.may_write``) before anything is
written, and audited in the same transaction. The CHW's tablet receives it by
replication; the worker projects it into the central tables.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select, true

from models import db
from models.health import Patient, Referral

from .. import audit
from ..access import scope_of
from ..errors import BadRequest, Conflict, DatabaseNotFound, Forbidden, NotFound
from ..rows import bodies_of, docs_by_ids
from ..scope import may_write
from ..store import get_database, write_lock
from ..writes import Author, Batch, edit_one
from .campaigns import plausible_id
from .project import utc_time
from .schemas import check_document, reason_of
from .visibility import Visibility

Json = dict[str, Any]
STATUSES = ("open", "received", "completed", "cancelled")
# What a clinician may mark, and from which statuses.
NEXT = {"received": ("open",), "completed": ("open", "received")}
NOTE_MAX = 1000


def _facility_clause(seen: Visibility) -> Any:
    return true() if seen.all else Referral.to_facility.in_(seen.facilities or ("",))


def list_referrals(db_name: str, seen: Visibility, *, status: str | None = None, limit: int = 50,
                   offset: int = 0) -> tuple[list[Json], int]:
    """Referrals to the viewer's facilities (every one for an admin), newest first, and how many match."""
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
    try:
        get_database(db_name)
    except DatabaseNotFound:
        return [], 0
    where = [Referral.db_name == db_name, Referral.deleted.is_(False), _facility_clause(seen)]
    if status is not None:
        where.append(Referral.status == status)
    total = db.session.scalar(select(func.count()).select_from(Referral).where(*where)) or 0
    rows = list(db.session.scalars(select(Referral).where(*where).order_by(
        func.coalesce(Referral.created_at, "").desc(), Referral.doc_id).limit(limit).offset(offset)))
    return _items(db_name, rows), int(total)


def _items(db_name: str, rows: list[Referral]) -> list[Json]:
    """Each referral as its current document says, with its patient when shared."""
    database = get_database(db_name)
    docs = docs_by_ids(database.id, [r.doc_id for r in rows])
    bodies = bodies_of([(d.id, d.winning_rev) for d in docs.values()])
    ids = sorted({r.patient_id for r in rows if r.patient_id})
    patients = {p.doc_id: p for p in db.session.scalars(select(Patient).where(
        Patient.db_name == db_name, Patient.doc_id.in_(ids or [""])))}
    out = []
    for row in rows:
        doc = docs.get(row.doc_id)
        body = bodies.get((doc.id, doc.winning_rev), {}) if doc is not None else {}
        out.append(referral_json(row, body, doc.winning_rev if doc else row.rev, patients.get(row.patient_id or "")))
    return out


def patient_json(patient: Patient | None) -> Json | None:
    """The patient record a partner may see, or None without consent to sharing."""
    if patient is None or patient.deleted or not patient.share_with_partners:
        return None
    return {"id": patient.doc_id, "given_name": patient.given_name, "family_name": patient.family_name,
            "sex": patient.sex, "birth_date": patient.birth_date, "estimated_age_years": patient.estimated_age_years,
            "phone": patient.phone, "chronic_conditions": list(patient.chronic_conditions or []),
            "last_visit_at": patient.last_visit_at, "latest_observations": dict(patient.latest_observations or {}),
            "risk_flags": list(patient.risk_flags or [])}


def _text(body: Json, name: str, fallback: str | None) -> str | None:
    value = body.get(name, fallback)
    return value if isinstance(value, str) else fallback


def referral_json(row: Referral, body: Json, rev: str, patient: Patient | None) -> Json:
    """A referral as the page and the API show it (the document's values over the central row's)."""
    shared = patient_json(patient)
    return {"id": row.doc_id, "rev": rev, "patient_id": row.patient_id, "visit_id": row.visit_id,
            "from_chw": _text(body, "from_chw", row.from_chw), "to_facility": _text(body, "to_facility",
                                                                                    row.to_facility),
            "reason": _text(body, "reason", row.reason), "urgency": _text(body, "urgency", row.urgency),
            "status": _text(body, "status", row.status), "status_note": _text(body, "status_note", None),
            "created_at": row.created_at, "updated_at": utc_time(body.get("updated_at")) or row.updated_at,
            "updated_by": _text(body, "updated_by", None), "area": row.area, "patient_shared": shared is not None,
            "patient": shared}


def _stamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _check(status: Any, note: Any) -> str | None:
    if not isinstance(status, str) or status not in NEXT:
        raise BadRequest(f"status must be one of {', '.join(NEXT)}")
    if note is not None and not isinstance(note, str):
        raise BadRequest("note must be text")
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise BadRequest(f"note must be at most {NOTE_MAX} characters")
    return note or None


def set_status(db_name: str, referral_id: str, status: Any, note: Any, *, name: str,
               roles: tuple[str, ...] | list[str], seen: Visibility) -> Json:
    """Mark a referral to one of the viewer's facilities ``received`` or ``completed``; return the new revision.

    :raise 400: a status other than those, a note too long. :raise 404: no such live
        referral to the viewer's facilities. :raise 409: the referral's status does not
        allow it (already completed, cancelled, or marked so).
    """
    note = _check(status, note)
    if not plausible_id(referral_id):
        raise NotFound(f"No referral {referral_id!r} for your facility")
    with write_lock(db_name) as txn:
        batch = Batch(txn, author=Author(name, "referral"))
        batch.load([referral_id])
        doc = batch.docs.get(referral_id)
        body = None if doc is None or doc.deleted else batch.body_at(doc, doc.winning_rev)
        if doc is None or not isinstance(body, dict) or body.get("type") != "referral" or not (
                seen.all or body.get("to_facility") in seen.facilities):
            raise NotFound(f"No referral {referral_id!r} for your facility")
        if body.get("status") not in NEXT[status]:
            raise Conflict(f"The referral is {body.get('status')}: it cannot be marked {status}")
        new = {k: v for k, v in body.items() if k not in ("_attachments", "status_note")}
        new.update({"status": status, "updated_at": _stamp(), "updated_by": name})
        if note:
            new["status_note"] = note
        errors = check_document(new)
        if errors:  # a document the tablet sent invalid would stay so; say which field
            raise BadRequest("The referral cannot be updated: " + reason_of(errors))
        reason = may_write(roles, scope_of(name), name, {"_id": referral_id, **new}, device=False,
                           old={"_id": referral_id, **body})
        if reason is not None:
            raise Forbidden(reason)
        stubs = {n: {"stub": True} for n in body.get("_attachments") or {}}
        rev = str(edit_one(batch, {"_id": referral_id, "_rev": doc.winning_rev, **new,
                                   **({"_attachments": stubs} if stubs else {})})["rev"])
        batch.flush()
        audit.record(name, "referral.status", db_name=db_name, doc_id=referral_id, rev=rev,
                     status_from=body.get("status"), status_to=status)
    return {"id": referral_id, "rev": rev, "status": status, "status_note": note, "updated_at": new["updated_at"],
            "updated_by": name}
