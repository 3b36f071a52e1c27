"""Merging a duplicate patient into another, and undoing it, with nothing lost.

The survivor's empty fields are filled from the merged-away patient (what was filled is
recorded, so an undo empties exactly those); the merged-away document keeps every value
and gains ``merged_into``, a redirect devices receive by replication. Both revisions are
written in one transaction under the database lock.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from models import db
from models.duplicates import PatientMerge

from .. import audit
from ..errors import BadRequest, Conflict, NotFound
from ..store import write_lock
from ..writes import Author, Batch, DocState, edit_one
from .duplicates import refresh_candidates, set_candidate_state
from .matching import score

Body = dict[str, Any]
# Bookkeeping fields a merge never copies from the merged-away patient.
NOT_FILLED = frozenset({"type", "area", "updated_at", "updated_by", "merged_into", "merged_from"})


def _stamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _patient(batch: Batch, doc_id: str) -> tuple[DocState, Body]:
    """The loaded document and its winning body, or refuse."""
    doc = batch.docs.get(doc_id)
    if doc is None or doc.deleted:
        raise NotFound(f"no patient {doc_id}")
    body = batch.bodies_of(doc, [doc.winning_rev]).get(doc.winning_rev) or {}
    if body.get("type") != "patient":
        raise BadRequest(f"{doc_id} is not a patient")
    return doc, body


def _write(batch: Batch, doc: DocState, body: Body, actor: str) -> str:
    """Write ``body`` as a server-authored child of the winner; return the new rev."""
    fields = {k: v for k, v in body.items() if k != "_attachments"}
    # Attachments travel as stubs: the new revision keeps the parent's.
    stubs = {name: {"stub": True} for name in body.get("_attachments") or {}}
    new = {"_id": doc.doc_id, "_rev": doc.winning_rev, **fields, "updated_at": _stamp(), "updated_by": actor,
           **({"_attachments": stubs} if stubs else {})}
    return str(edit_one(batch, new)["rev"])


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _fill(survivor: Body, merged: Body) -> tuple[Body, Body]:
    """The survivor's body with its empty fields filled from ``merged``, and what was filled."""
    out, filled = dict(survivor), {}
    for name, value in merged.items():
        if name.startswith("_") or name in NOT_FILLED or _empty(value) or not _empty(survivor.get(name)):
            continue
        out[name] = value
        filled[name] = {"to": value, **({"from": survivor[name]} if name in survivor else {})}
    return out, filled


def merge_patients(db_name: str, survivor_id: str, merged_id: str, actor: str) -> PatientMerge:
    """Merge ``merged_id`` into ``survivor_id``, keeping every value of both; return the merge."""
    if survivor_id == merged_id:
        raise BadRequest("a patient cannot be merged into itself")
    with write_lock(db_name) as txn:
        batch = Batch(txn, author=Author(actor, "merge"))
        batch.load([survivor_id, merged_id])
        (s_doc, s_body), (m_doc, m_body) = _patient(batch, survivor_id), _patient(batch, merged_id)
        if s_body.get("merged_into") == merged_id:
            raise Conflict(f"merging would make a cycle: {survivor_id} is merged into {merged_id}")
        for doc_id, body in ((survivor_id, s_body), (merged_id, m_body)):
            if body.get("merged_into"):
                raise Conflict(f"patient {doc_id} is already merged into {body['merged_into']}")
        new_survivor, filled = _fill(s_body, m_body)
        new_survivor["merged_from"] = list(dict.fromkeys([*(s_body.get("merged_from") or []), merged_id]))
        s_before, m_before = s_doc.winning_rev, m_doc.winning_rev
        s_after = _write(batch, s_doc, new_survivor, actor)
        m_after = _write(batch, m_doc, {**m_body, "merged_into": survivor_id}, actor)
        batch.flush()
        merge = PatientMerge(db_name=db_name, survivor_id=survivor_id, merged_id=merged_id,
                             survivor_rev_before=s_before, survivor_rev_after=s_after, merged_rev_before=m_before,
                             merged_rev_after=m_after, filled_fields=filled, state="merged", by=actor, at=time.time())
        db.session.add(merge)
        set_candidate_state(db_name, survivor_id, merged_id, "merged", actor, score(s_body, m_body))
        db.session.flush()  # the merge's id, for the audit entry
        audit.record(actor, "patient.merge", db_name=db_name, doc_id=merged_id, survivor=survivor_id,
                     merge_id=merge.id, filled=sorted(filled))
    refresh_candidates(db_name, [survivor_id, merged_id])
    return merge


def _unfill(survivor: Body, merge: PatientMerge) -> Body:
    """The survivor without the merge: filled fields emptied unless edited since."""
    out = dict(survivor)
    for name, fill in merge.filled_fields.items():
        if name in out and out[name] == fill["to"]:
            if "from" in fill:
                out[name] = fill["from"]
            else:
                del out[name]
    rest = [m for m in out.get("merged_from") or [] if m != merge.merged_id]
    if rest:
        out["merged_from"] = rest
    else:
        out.pop("merged_from", None)
    return out


def undo_merge(merge_id: int, actor: str) -> PatientMerge:
    """Undo a merge with new revisions of both patients; edits made since are kept."""
    merge = db.session.get(PatientMerge, merge_id) if isinstance(merge_id, int) else None
    if merge is None:
        raise NotFound(f"no merge {merge_id}")
    with write_lock(merge.db_name) as txn:
        db.session.refresh(merge)  # decided under the lock: two undos cannot both pass
        if merge.state != "merged":
            raise Conflict(f"merge {merge_id} was already undone")
        survivor_id, merged_id = merge.survivor_id, merge.merged_id
        batch = Batch(txn, author=Author(actor, "merge"))
        batch.load([survivor_id, merged_id])
        (s_doc, s_body), (m_doc, m_body) = _patient(batch, survivor_id), _patient(batch, merged_id)
        if m_body.get("merged_into") != survivor_id:
            raise Conflict(f"patient {merged_id} is no longer merged into {survivor_id}")
        _write(batch, s_doc, _unfill(s_body, merge), actor)
        _write(batch, m_doc, {k: v for k, v in m_body.items() if k != "merged_into"}, actor)
        batch.flush()
        merge.state, merge.undone_by, merge.undone_at = "undone", actor, time.time()
        set_candidate_state(merge.db_name, survivor_id, merged_id, "open", None, score(s_body, m_body))
        audit.record(actor, "patient.unmerge", db_name=merge.db_name, doc_id=merged_id, survivor=survivor_id,
                     merge_id=merge.id)
    refresh_candidates(merge.db_name, [survivor_id, merged_id])
    return merge
