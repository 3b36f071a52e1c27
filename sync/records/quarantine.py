"""The quarantine: refused revisions of the records database, until a supervisor decides.

``RecordsGate`` is what the API hands to ``sync.writes`` for every write to the records
database: it checks each new revision against its schema (sync.records.schemas) and holds
a refused one in ``models.quarantine`` in the same transaction as the rest of the write.
A held revision is then released with a correction, or discarded with a note.

Release keeps every replica convergent. For a refused replicated revision (the tablet
still holds it), the revision is stored as it was sent, on its own ``_revisions`` path,
and the correction is written as its child: the tablet pulls the child and its winner
becomes the corrected one. For a refused edit, the correction is written as a child of
the revision the edit named; if that is no longer a leaf, the correction is a conflict
branch for the conflict resolver to merge (DESIGN decision 6).
"""
from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from models import db
from models.quarantine import STATES, QuarantinedRevision

from .. import audit
from ..docs import Json, dump_body, split_doc
from ..errors import BadRequest, Conflict, CouchError, NotFound
from ..store import load_blob, write_lock
from ..writes import Author, Batch, edit_one, replicate_one
from .schemas import check_document, reason_of

# Members of a corrected body that describe a revision, not its content: the release sets them.
REVISION_MEMBERS = ("_rev", "_revisions", "_conflicts", "_deleted_conflicts", "_revs_info", "_local_seq")


@dataclass(frozen=True)
class RecordsGate:
    """The records database's check on writes (a ``sync.writes.Gate``), for one caller."""

    actor: str
    device_id: str | None = None

    def refuse(self, db_name: str, doc: Json, *, rev: str, parent_rev: str | None,
               replicated: bool) -> str | None:
        """Check ``doc``; hold it and return the reason if it is invalid, else None."""
        errors = check_document(doc)
        if errors is None:
            return None
        reason = reason_of(errors)
        hold(db_name, doc, rev=rev, parent_rev=parent_rev, replicated=replicated, reason=reason, fields=errors,
             actor=self.actor, device_id=self.device_id)
        return reason


def hold(db_name: str, doc: Json, *, rev: str, parent_rev: str | None, replicated: bool, reason: str,
         fields: dict[str, list[str]], actor: str, device_id: str | None) -> None:
    """Keep a refused revision in the quarantine, in the caller's transaction.

    One row per (db, doc, rev): a revision sent again (a retrying tablet) is counted, not
    added, and a decision already taken on it stands. The audit entry is written once.
    """
    doc_id, now = doc["_id"], time.time()
    row = db.session.scalar(select(QuarantinedRevision).where(
        QuarantinedRevision.db_name == db_name, QuarantinedRevision.doc_id == doc_id,
        QuarantinedRevision.rev == rev))
    if row is not None:
        row.attempts += 1
        row.last_seen_at = now
        row.reason, row.fields = reason, fields
        return
    db.session.add(QuarantinedRevision(
        db_name=db_name, doc_id=doc_id, rev=rev, parent_rev=parent_rev, replicated=replicated,
        body=dump_body(doc), reason=reason, fields=fields, actor=actor, device_id=device_id, received_at=now,
        last_seen_at=now, attempts=1, state="held"))
    audit.record(actor, "quarantine.hold", db_name=db_name, doc_id=doc_id, device_id=device_id, rev=rev,
                 reason=reason)


def list_held(db_name: str | None, *, state: str | None = "held", limit: int = 50,
              offset: int = 0) -> list[QuarantinedRevision]:
    """Quarantined revisions, oldest first; ``None`` for every database or every state."""
    if state is not None and state not in STATES:
        raise BadRequest(f"Unknown quarantine state {state!r}; use one of {', '.join(STATES)}")
    query = select(QuarantinedRevision).order_by(QuarantinedRevision.received_at, QuarantinedRevision.id)
    if db_name is not None:
        query = query.where(QuarantinedRevision.db_name == db_name)
    if state is not None:
        query = query.where(QuarantinedRevision.state == state)
    return list(db.session.scalars(query.limit(max(0, limit)).offset(max(0, offset))))


def get_item(item_id: int) -> QuarantinedRevision:
    """One quarantined revision, or raise ``NotFound``."""
    row = db.session.get(QuarantinedRevision, item_id)
    if row is None:
        raise NotFound(f"No quarantined revision {item_id}")
    return row


def _require_held(row: QuarantinedRevision) -> None:
    if row.state != "held":
        raise Conflict(f"Quarantined revision {row.id} is already {row.state}")


def _corrected(row: QuarantinedRevision, corrected: object) -> Json:
    """The corrected body, its attachments resolved against the held revision, checked."""
    if not isinstance(corrected, dict):
        raise BadRequest("The corrected document must be a JSON object")
    if corrected.get("_id", row.doc_id) != row.doc_id:
        raise BadRequest(f"The corrected document must keep the id {row.doc_id!r}")
    body = {k: v for k, v in corrected.items() if k not in REVISION_MEMBERS}
    body["_id"] = row.doc_id
    split_doc(body)  # refuses unknown "_" members, as any write would
    held = row.document.get("_attachments") or {}
    atts: Json = {}
    for name, entry in (body.get("_attachments") or {}).items():
        if isinstance(entry, dict) and entry.get("stub") and "sha256" not in entry:
            if name not in held:
                raise BadRequest(f"Attachment {name} is a stub, but the held revision has no such attachment")
            entry = held[name]
        if not isinstance(entry, dict) or ("data" not in entry and "sha256" not in entry):
            raise BadRequest(f"Attachment {name} needs data, its sha256, or a stub of a held attachment")
        atts[name] = entry
    if atts:
        body["_attachments"] = atts
    errors = check_document(body)
    if errors is not None:
        raise BadRequest(f"The corrected document is still invalid. {reason_of(errors)}")
    return body


def _inline(meta: Json, *, keep: bool) -> Json:
    """Stored attachment metadata as an inline attachment; ``keep`` the sender's digest and revpos."""
    entry = {"content_type": meta.get("content_type"), "data": base64.b64encode(load_blob(meta["sha256"])).decode()}
    if keep:
        entry.update({k: meta[k] for k in ("digest", "revpos", "length") if k in meta})
    return entry


def _with_attachments(doc: Json, parent_atts: Json | None, *, keep: bool) -> Json:
    """``doc`` ready for the writer: stored attachments become stubs of the parent's, or inline data."""
    atts = doc.get("_attachments")
    if not atts:
        return doc
    out: Json = {}
    for name, meta in atts.items():
        if "data" in meta:
            out[name] = meta
        elif parent_atts and (parent_atts.get(name) or {}).get("sha256") == meta["sha256"]:
            out[name] = {"stub": True}  # unchanged: keeps its digest and revpos
        else:
            out[name] = _inline(meta, keep=keep)
    return {**doc, "_attachments": out}


def _decide(item_id: int, actor: str, **values: Any) -> None:
    """Record the decision on a held revision, unless another decision got there first."""
    done = db.session.execute(update(QuarantinedRevision).where(
        QuarantinedRevision.id == item_id, QuarantinedRevision.state == "held").values(
        decided_by=actor, decided_at=time.time(), **values).execution_options(synchronize_session=False))
    if done.rowcount == 0:  # type: ignore[attr-defined]
        raise Conflict(f"Quarantined revision {item_id} is no longer held")


def release(item_id: int, corrected_body: dict[str, Any], actor: str) -> str:
    """Store a held revision's correction (one transaction); return the document's winning rev."""
    row = get_item(item_id)
    _require_held(row)
    body = _corrected(row, corrected_body)
    db_name, doc_id, held = row.db_name, row.doc_id, row.document
    # The correction of a replicated revision is its child; of an edit, a child of the edit's parent.
    parent = row.rev if row.replicated else row.parent_rev
    try:
        with write_lock(db_name) as txn:
            if row.replicated:
                first = Batch(txn, author=Author(row.actor, "quarantine", row.device_id))
                first.load([doc_id])
                replicate_one(first, _with_attachments(held, None, keep=True))
                first.flush()
            batch = Batch(txn, author=Author(actor, "quarantine"))
            batch.load([doc_id])
            base = batch.bodies_of(batch.docs.get(doc_id), [parent]).get(parent, {}) if parent else {}
            child = _with_attachments(body, base.get("_attachments"), keep=False)
            written = edit_one(batch, {**child, **({"_rev": parent} if parent else {})}, branch=True)
            batch.flush()
            _decide(item_id, actor, state="released", released_rev=written["rev"])
            audit.record(actor, "quarantine.release", db_name=db_name, doc_id=doc_id, item=item_id, rev=row.rev,
                         released_rev=written["rev"])
            return batch.docs[doc_id].winning_rev
    except Conflict as exc:
        if exc.reason != Conflict.reason:
            raise
        raise Conflict(f"Cannot release: revision {parent} is no longer in the document's tree") from None
    except CouchError as exc:
        raise type(exc)(f"Cannot release: {exc.reason}") from None


def discard(item_id: int, actor: str, note: str) -> None:
    """Close a held revision without storing it; the note says why (kept in the audit log)."""
    if not isinstance(note, str) or not note.strip():
        raise BadRequest("A discard needs a note saying why")
    row = get_item(item_id)
    _require_held(row)
    db.session.commit()  # a fresh transaction that writes first (see sync.store.write_lock)
    try:
        _decide(item_id, actor, state="discarded", decision_note=note)
        audit.record(actor, "quarantine.discard", db_name=row.db_name, doc_id=row.doc_id, item=item_id,
                     rev=row.rev, note=note)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
