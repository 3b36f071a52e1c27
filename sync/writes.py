"""Writing documents: replicated revisions (``new_edits=false``) and ordinary edits.

Both paths build a linear revision path, merge it into the stored tree (sync.merge),
keep the new leaf's body, and give the document the next sequence under the database
lock (sync.store.write_lock). A revision the tree already holds is a no-op, never a
conflict, so a re-sent batch changes nothing.

A write may pass a ``Gate`` (the records database does: sync.access_gate chained with
sync.records.quarantine): each new revision is shown to it after its rev is known and
before it is grafted; a revision the gate refuses is held there, in the same transaction,
and answered ``forbidden`` while the rest of the batch goes on (DESIGN decision 5). A gate
whose class sets ``sees_old = True`` is also given ``old``, the body the write replaces:
for an edit its parent's body, for a replicated revision the current winner's; when that
revision is a deletion, the last live body; ``{"_id": id}`` when the document exists but
no live body is held any more; None for a new document.

Writes to a database with a scope index (sync.scopeindex) update the index in ``flush``,
in the same transaction. ``Batch`` (sync.batch) holds a write's documents and writes
them back set-wise; it is importable from here as before.
"""
from __future__ import annotations

import uuid
from typing import Any, Protocol

from .batch import Author, Batch, DocState, path_revs
from .docs import Json, check_doc_id, intake_attachments, md5_of, split_doc
from .errors import BadRequest, Conflict, CouchError, Forbidden
from .local import put_local_in_txn
from .revs import format_rev, new_rev_hash, parse_rev
from .revtree import is_leaf, make_path, rev_exists
from .store import write_lock

__all__ = ["Author", "Batch", "DocState", "Gate", "Refused", "bulk_docs", "edit_one", "path_revs", "put_doc",
           "replicate_one", "replicated_rev"]


class Gate(Protocol):
    """Decides, before a revision is stored, whether it may be; holds a refused one.

    A gate class with ``sees_old = True`` receives ``old=`` (see the module docstring) as well.
    """

    def refuse(self, db_name: str, doc: Json, *, rev: str, parent_rev: str | None,
               replicated: bool) -> str | None:
        """The reason ``doc`` (about to become ``rev``) is refused, or None to let it through."""


class Refused(Forbidden):
    """A revision the gate refused: it is held in the quarantine, not stored."""

    def __init__(self, reason: str, doc_id: str, rev: str) -> None:
        super().__init__(reason)
        self.doc_id, self.rev = doc_id, rev


def replicated_rev(doc: Json) -> tuple[str, dict[str, Any]]:
    """The revision a replicated document carries, and its path.

    ``_revisions`` is authoritative when present, as in CouchDB (couch_doc
    transfer_fields): PouchDB can send a ``_rev`` that disagrees with it after merging
    branches that reuse a hash, and CouchDB stores what ``_revisions`` says.
    """
    revisions = doc.get("_revisions")
    if revisions is None:
        pos, rev_hash = parse_rev(doc.get("_rev"))
        return format_rev(pos, rev_hash), {"start": pos, "ids": [rev_hash]}
    if not isinstance(revisions, dict) or not isinstance(revisions.get("ids"), list) or not revisions["ids"]:
        raise BadRequest("_revisions must hold a start and a non-empty list of ids")
    rev = format_rev(revisions.get("start"), revisions["ids"][0])  # type: ignore[arg-type]
    parse_rev(rev)
    return rev, revisions


def _stub_base(batch: Batch, doc_id: str, revisions: dict[str, Any]) -> Json:
    """Attachments of the nearest stored ancestor on the incoming path (for stubs)."""
    start, ids = revisions["start"], revisions["ids"]
    revs = [format_rev(start - i, h) for i, h in enumerate(ids)][1:]
    bodies = batch.bodies_of(batch.docs.get(doc_id), revs)
    for rev in revs:
        if rev in bodies:
            return bodies[rev].get("_attachments") or {}
    return {}


def _screen(batch: Batch, gate: Gate | None, doc: Json, stored: Json | None, *, doc_id: str, rev: str,
            parent_rev: str | None, revisions: dict[str, Any] | None = None) -> None:
    """Show the revision to ``gate``; raise ``Refused`` if it says no.

    The gate sees the document as sent, but with its attachments as stored (metadata and
    our sha256 key, the bytes already in the attachment store) and with the revision path
    a replicated revision carries, so a quarantined revision can be stored later as it was.
    """
    if gate is None:
        return
    held = {**doc, "_id": doc_id}
    if stored:
        held["_attachments"] = stored
    if revisions is not None:
        held["_revisions"] = revisions
    extra = {"old": batch.old_body(doc_id, parent_rev)} if getattr(gate, "sees_old", False) else {}
    reason = gate.refuse(batch.txn.database.name, held, rev=rev, parent_rev=parent_rev,
                         replicated=revisions is not None, **extra)
    if reason is not None:
        raise Refused(reason, doc_id, rev)


def replicate_one(batch: Batch, doc: Json, follows: dict[str, bytes] | None = None,
                  gate: Gate | None = None) -> None:
    """Graft one replicated revision (``new_edits=false``)."""
    doc_id = check_doc_id(doc.get("_id"))
    if doc_id.startswith("_local/"):
        put_local_in_txn(batch.txn, doc_id, doc, force=True)
        return
    rev, revisions = replicated_rev(doc)
    pos = revisions["start"]
    body, deleted, atts = split_doc(doc)
    existing = batch.docs.get(doc_id)
    if existing is not None and rev_exists(existing.rev_tree, rev):
        return
    has_stub = any(isinstance(a, dict) and a.get("stub") for a in (atts or {}).values())
    base = _stub_base(batch, doc_id, revisions) if has_stub else None
    stored = intake_attachments(atts, new_pos=pos, replicated=True, base=base, follows=follows)
    _screen(batch, gate, doc, stored, doc_id=doc_id, rev=rev, parent_rev=None, revisions=revisions)
    if stored:
        body["_attachments"] = stored
    opts = {"status": "available", **({"deleted": True} if deleted else {})}
    batch.graft(doc_id, make_path(revisions, opts), rev, body, deleted)


def edit_one(batch: Batch, doc: Json, follows: dict[str, bytes] | None = None, gate: Gate | None = None,
             *, branch: bool = False) -> Json:
    """Apply one ordinary edit (``new_edits=true``); return ``{"ok", "id", "rev"}``.

    :param branch: let the edit's ``_rev`` be any revision of the tree, not only a leaf, and
        let an edit without ``_rev`` start a new root beside a live document: the edit then
        becomes a conflict branch (a quarantine release writes its correction so).
    """
    raw_id = doc.get("_id")
    doc_id = check_doc_id(raw_id) if raw_id is not None else uuid.uuid4().hex
    if doc_id.startswith("_local/"):
        return put_local_in_txn(batch.txn, doc_id, doc)
    body, deleted, atts = split_doc(doc)
    existing = batch.docs.get(doc_id)
    rev = doc.get("_rev")
    if rev is not None:
        parent: tuple[int, str] | None = parse_rev(rev)
        if existing is None or not (rev_exists if branch else is_leaf)(existing.rev_tree, rev):
            raise Conflict()
    elif existing is not None and not existing.deleted and not branch:
        raise Conflict()
    elif existing is not None and not existing.deleted:
        parent = None
    else:
        # Recreating a deleted document extends its deleted winner, as CouchDB does.
        parent = parse_rev(existing.winning_rev) if existing is not None else None
    parent_rev = format_rev(*parent) if parent else None
    base_body = batch.bodies_of(existing, [parent_rev]).get(parent_rev, {}) if parent_rev else {}
    new_pos = parent[0] + 1 if parent else 1
    stored = intake_attachments(atts, new_pos=new_pos, replicated=False,
                                base=base_body.get("_attachments"), follows=follows)
    if stored:
        body["_attachments"] = stored
    att_keys = [(n, m["content_type"], md5_of(m)) for n, m in (stored or {}).items()]
    new_hash = new_rev_hash(deleted, parent, {k: v for k, v in body.items() if k != "_attachments"},
                            att_keys)  # type: ignore[arg-type]
    ids = [new_hash] + ([parent[1]] if parent else [])
    opts = {"status": "available", **({"deleted": True} if deleted else {})}
    new_rev = format_rev(new_pos, new_hash)
    _screen(batch, gate, doc, stored, doc_id=doc_id, rev=new_rev, parent_rev=parent_rev)
    batch.graft(doc_id, make_path({"start": new_pos, "ids": ids}, opts), new_rev, body, deleted)
    return {"ok": True, "id": doc_id, "rev": new_rev}


def _item(doc: object, exc: CouchError, new_edits: bool) -> Json:
    """A per-document error item; replicated writes name the refused revision too."""
    item: Json = {"error": exc.error, "reason": exc.reason}
    if isinstance(exc, Refused):  # knows the id even when the server generated it
        return {"id": exc.doc_id, **({} if new_edits else {"rev": exc.rev}), **item}
    if isinstance(doc, dict) and isinstance(doc.get("_id"), str):
        rev = doc.get("_rev") if not new_edits and isinstance(doc.get("_rev"), str) else None
        item = {"id": doc["_id"], **({"rev": rev} if rev else {}), **item}
    return item


def _check_request(docs: list[Any], new_edits: bool) -> None:
    """Refuse the whole request, as CouchDB does, for malformed ids or missing revs."""
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        if "_id" in doc:
            check_doc_id(doc["_id"])
        split_doc(doc)  # an unknown "_" member refuses the request (doc_validation)
        if not new_edits and "_rev" not in doc and "_revisions" not in doc:
            raise BadRequest("Document rev is required when new_edits is false")


def bulk_docs(db_name: str, docs: list[Any], new_edits: bool = True, *, gate: Gate | None = None) -> list[Json]:
    """``_bulk_docs``: per-document results; with new_edits=false only the failures."""
    results: list[Json] = []
    _check_request(docs, new_edits)
    with write_lock(db_name) as txn:
        batch = Batch(txn)
        batch.load([d.get("_id") for d in docs if isinstance(d, dict)])
        for doc in docs:
            # Each step validates before it changes anything, so a refused document
            # leaves no trace and the rest of the batch goes on.
            try:
                if not isinstance(doc, dict):
                    raise BadRequest("Document must be a JSON object")
                if new_edits:
                    results.append(edit_one(batch, doc, gate=gate))
                else:
                    replicate_one(batch, doc, gate=gate)
            except CouchError as exc:
                results.append(_item(doc, exc, new_edits))
        batch.flush()
    return results


def put_doc(db_name: str, doc: Json, *, new_edits: bool = True,
            follows: dict[str, bytes] | None = None, gate: Gate | None = None) -> Json:
    """Write one document; raise its error instead of returning it as an item."""
    with write_lock(db_name) as txn:
        batch = Batch(txn)
        batch.load([doc.get("_id")])  # type: ignore[list-item]
        try:
            if new_edits:
                result = edit_one(batch, doc, follows, gate)
            else:
                replicate_one(batch, doc, follows, gate)
                result = {"ok": True, "id": doc["_id"], "rev": replicated_rev(doc)[0]}
        except Refused as exc:
            refused = exc  # raised after the commit: the quarantine keeps the revision
        else:
            refused = None
            batch.flush()
    if refused is not None:
        raise refused
    return result
