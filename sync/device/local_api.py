"""The app's API on the device: CouchDB-style edits (new_edits=true), reads and attachments."""
from __future__ import annotations

from sync.errors import Conflict, NotFound
from sync.revs import format_rev, new_rev_hash, parse_rev
from sync.revtree import collect_conflicts, is_deleted, is_leaf, make_path

from .core import DocRow, Json, StoreCore
from .docjson import check_doc_id, intake, md5_bytes, needs_base, split_doc


def _parent(existing: DocRow | None, rev: object) -> tuple[int, str] | None:
    """The revision an edit extends; Conflict unless ``_rev`` is a leaf (or absent for new/deleted)."""
    if rev is not None:
        parent = parse_rev(rev)
        if existing is None or not is_leaf(existing.tree, rev):  # type: ignore[arg-type]
            raise Conflict()
        return parent
    if existing is not None and not existing.deleted:
        raise Conflict()
    # Recreating a deleted document extends its deleted winner, as CouchDB does.
    return parse_rev(existing.winning_rev) if existing is not None else None


class LocalApi(StoreCore):
    """put/get/delete, attachments and all_docs for the app."""

    def put(self, doc: Json) -> str:
        """Write a new revision of ``doc`` (``_rev`` must be a current leaf, or absent); return its rev."""
        body, deleted, found_atts = split_doc(doc)
        raw_atts = found_atts or {}
        doc_id = check_doc_id(doc.get("_id"))
        with self._tx():
            existing = self._load(doc_id)
            parent = _parent(existing, doc.get("_rev"))
            base = self._atts(doc_id, format_rev(*parent), data=True) if parent and needs_base(raw_atts) else {}
            new_pos = parent[0] + 1 if parent else 1
            atts = intake(raw_atts, base=base, new_pos=new_pos, replicated=False)
            keys = [(name, a.content_type, md5_bytes(a.digest) or b"") for name, a in atts.items()]
            rev_hash = new_rev_hash(deleted, parent, body, keys)
            rev = format_rev(new_pos, rev_hash)
            opts = {"status": "available", **({"deleted": True} if deleted else {})}
            path = make_path({"start": new_pos, "ids": [rev_hash] + ([parent[1]] if parent else [])}, opts)
            self._write(doc_id, existing, path, rev, body, atts)
        return rev

    def get(self, doc_id: str, rev: str | None = None) -> Json:
        """The winning revision (or ``rev``) with attachment stubs and ``_conflicts``; NotFound otherwise."""
        with self._lock:  # one consistent view: a concurrent write may compact what we read
            return self._get(doc_id, rev)

    def _get(self, doc_id: str, rev: str | None) -> Json:
        """``get`` under the lock."""
        row = self._load(doc_id)
        if row is None:
            raise NotFound("missing")
        if rev is None and row.deleted:
            raise NotFound("deleted")
        rev = rev or row.winning_rev
        body = self._body(doc_id, rev)
        if body is None:
            raise NotFound("missing")
        doc: Json = {"_id": doc_id, "_rev": rev, **body}
        if is_deleted(row.tree, rev):
            doc["_deleted"] = True
        atts = self._atts(doc_id, rev, data=False)
        if atts:
            doc["_attachments"] = {name: att.stub() for name, att in atts.items()}
        conflicts = collect_conflicts(row.tree) if rev == row.winning_rev else []
        if conflicts:
            doc["_conflicts"] = conflicts
        return doc

    def delete(self, doc_id: str, rev: str) -> str:
        """Write a deletion (tombstone) on top of leaf ``rev``; return its rev."""
        return self.put({"_id": doc_id, "_rev": rev, "_deleted": True})

    def put_attachment(self, doc_id: str, rev: str | None, name: str, content_type: str, data: bytes) -> str:
        """Add or replace attachment ``name`` on top of leaf ``rev`` (None: a new document); return the rev."""
        doc: Json = {"_id": doc_id} if rev is None else self.get(doc_id, rev)
        doc.pop("_conflicts", None)
        doc["_attachments"] = {**doc.get("_attachments", {}),
                               name: {"content_type": content_type, "data": bytes(data)}}
        return self.put(doc)

    def get_attachment(self, doc_id: str, name: str, rev: str | None = None) -> bytes:
        """The decrypted bytes of attachment ``name`` of the winner (or ``rev``); NotFound otherwise."""
        rev = rev or self.get(doc_id)["_rev"]
        rows = self._rows("SELECT envelope FROM attachments WHERE doc_id = ? AND rev = ? AND name = ?",
                          (doc_id, rev, name))
        if not rows:
            raise NotFound("Document is missing attachment")
        return self._open(rows[0][0], doc_id, rev, name)

    def all_docs(self) -> list[Json]:
        """Every live document (winning revision, as ``get`` returns it), by id."""
        ids = self._rows("SELECT doc_id FROM docs WHERE deleted = 0 ORDER BY doc_id")
        return [self.get(doc_id) for (doc_id,) in ids]
