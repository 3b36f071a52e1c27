"""The supervisor's side of conflicts: list the open ones, keep the server's pick or choose another.

Choosing never rewrites history: the chosen leaf's value is written as a new revision on
the document's current winner (a tombstone, when the deleted branch of a delete-vs-edit
conflict is chosen), so it replicates to every tablet like any other edit.
"""
from __future__ import annotations

import copy
import time
from datetime import datetime, timezone
from typing import Any

from models import db
from models.conflicts import STATES, ConflictRecord
from sync.audit import record
from sync.docs import Json
from sync.errors import BadRequest, Conflict, NotFound
from sync.store import write_lock
from sync.writes import Author, Batch, edit_one

from .merge3 import MISSING, canonical
from .resolve import write_child


def list_conflicts(db_name: str, state: str | None = "open", limit: int = 100,
                   offset: int = 0) -> list[ConflictRecord]:
    """Conflicts of ``db_name`` in ``state`` (None: every state), oldest first."""
    if state is not None and state not in STATES:
        raise BadRequest(f"state must be one of {', '.join(STATES)}")
    if not 1 <= limit <= 1000 or offset < 0:
        raise BadRequest("limit must be 1 to 1000 and offset at least 0")
    query = db.select(ConflictRecord).where(ConflictRecord.db_name == db_name)
    if state is not None:
        query = query.where(ConflictRecord.state == state)
    return list(db.session.scalars(query.order_by(ConflictRecord.id).limit(limit).offset(offset)))


def conflict_json(conflict: ConflictRecord) -> Json:
    """A conflict as JSON (for pages, the REST API and the CLI)."""
    return {"id": conflict.id, "db_name": conflict.db_name, "doc_id": conflict.doc_id, "field": conflict.field,
            "path": conflict.path, "kind": conflict.kind, "values": conflict.values,
            "picked_rev": conflict.picked_rev, "resolution_rev": conflict.resolution_rev, "state": conflict.state,
            "decided_by": conflict.decided_by, "decided_at": conflict.decided_at, "created_at": conflict.created_at}


def choose(conflict_id: int, rev: str, actor: str) -> str | None:
    """Settle a conflict with the value leaf ``rev`` had; return the revision written, if any.

    :raise 404 not_found: no such conflict.
    :raise 409 conflict: it was decided already, or the document changed so the value cannot be set.
    :raise 400 bad_request: ``rev`` is not one of the conflict's leaves.
    """
    found = db.session.get(ConflictRecord, conflict_id)
    if found is None:
        raise NotFound(f"No conflict with id {conflict_id}")
    with write_lock(found.db_name) as txn:
        # Read again under the lock: a second supervisor deciding at once sees the first decision.
        conflict = db.session.get(ConflictRecord, conflict_id, populate_existing=True)
        if conflict is None or conflict.state != "open":
            state = conflict.state if conflict is not None else "removed"
            raise Conflict(f"Conflict {conflict_id} was already decided ({state})")
        chosen = next((v for v in conflict.values if v.get("rev") == rev), None)
        if chosen is None:
            revs = ", ".join(v.get("rev", "?") for v in conflict.values)
            raise BadRequest(f"Rev {rev} is not a value of conflict {conflict_id} (its revs: {revs})")
        batch = Batch(txn, author=Author(actor, "conflict"))
        batch.load([conflict.doc_id])
        if conflict.kind == "delete_vs_edit":
            new_rev, state = _choose_deletion(batch, conflict, chosen)
        else:
            new_rev, state = _choose_value(batch, conflict, chosen, actor)
        batch.flush()
        conflict.state, conflict.decided_by, conflict.decided_at = state, actor, time.time()
        record(actor, "conflict.choose", db_name=conflict.db_name, doc_id=conflict.doc_id, conflict_id=conflict.id,
               field=conflict.field, kind=conflict.kind, rev=rev, state=state, new_rev=new_rev)
    return new_rev


def _choose_deletion(batch: Batch, conflict: ConflictRecord, chosen: Json) -> tuple[str | None, str]:
    """Delete-vs-edit: choosing the deleted leaf deletes the document; the edit is already the winner."""
    if not chosen.get("deleted"):
        return None, "kept"
    doc = batch.docs.get(conflict.doc_id)
    if doc is None or doc.deleted:
        return None, "changed"  # deleted since: the choice already holds
    return edit_one(batch, {"_id": doc.doc_id, "_rev": doc.winning_rev, "_deleted": True})["rev"], "changed"


def _choose_value(batch: Batch, conflict: ConflictRecord, chosen: Json, actor: str) -> tuple[str | None, str]:
    """Set the field to the chosen leaf's value on the current winner, if it differs there."""
    doc = batch.docs.get(conflict.doc_id)
    if doc is None or doc.deleted:
        raise Conflict(f"Document {conflict.doc_id} is deleted: there is no field to set")
    parent = batch.bodies_of(doc, [doc.winning_rev])[doc.winning_rev]
    body = copy.deepcopy(parent)
    value = MISSING if chosen.get("removed") else chosen.get("value")
    picked = next((v for v in conflict.values if v.get("rev") == conflict.picked_rev), {})
    state = "kept" if canonical(value) == canonical(MISSING if picked.get("removed") else picked.get("value")) \
        else "changed"
    changed = _set_path(body, conflict.path or conflict.field.split("."), value)
    if not changed:
        return None, state
    body["updated_at"] = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body["updated_by"] = actor
    # Not edit_one with stubs: a chosen attachment may come from another branch than the winner's.
    return write_child(batch, doc.doc_id, doc.winning_rev, parent, body), state


def _set_path(body: Json, path: list[str], value: Any) -> bool:
    """Set (or, for MISSING, remove) ``path`` in ``body``; return whether anything changed."""
    node = body
    for depth, key in enumerate(path[:-1]):
        below = node.get(key, MISSING)
        if below is MISSING:
            if value is MISSING:
                return False
            below = node[key] = {}
        if not isinstance(below, dict):
            raise Conflict(f"Cannot set {'.'.join(path)}: {'.'.join(path[:depth + 1])} is no longer an object")
        node = below
    last = path[-1]
    if canonical(node.get(last, MISSING)) == canonical(value):
        return False
    if value is MISSING:
        del node[last]
    else:
        node[last] = value
    return True
