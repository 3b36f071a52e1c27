"""The device store as one side of a replication (``sync.endpoint.Endpoint``)."""
from __future__ import annotations

import base64
from typing import Any

from sync import jsoncodec
from sync.endpoint import ChangesBatch
from sync.errors import BadRequest, CouchError, TransientError
from sync.revs import format_rev, parse_rev
from sync.revtree import (collect_leaves, is_deleted, leaves_under, make_path, possible_ancestors, rev_ancestry,
                          rev_exists)
from sync.treecodec import unflatten

from .core import Att, DocRow, Json, StoreCore
from .docjson import check_doc_id, intake, needs_base, split_doc

LOCAL_PREFIX = "_local/"


def _since(since: Any, current: int) -> int:
    """Read a seq we handed out (an int, or its decimal text); "now" is the current seq."""
    if since is None:
        return 0
    if since == "now":
        return current
    if isinstance(since, int) and not isinstance(since, bool):
        return since
    if isinstance(since, str) and since.isdigit():
        return int(since)
    raise BadRequest(f"Malformed since: {since!r}")


def _replicated_path(doc: Json, deleted: bool) -> tuple[str, Json, Json]:
    """The revision a replicated document carries, its ``_revisions`` and path (``_revisions`` wins)."""
    revisions = doc.get("_revisions")
    if revisions is None:
        if doc.get("_rev") is None:
            raise BadRequest("Document rev is required when new_edits is false")
        pos, rev_hash = parse_rev(doc["_rev"])
        revisions = {"start": pos, "ids": [rev_hash]}
    opts = {"status": "available", **({"deleted": True} if deleted else {})}
    path = make_path(revisions, opts)  # validates _revisions with CouchDB's messages
    return format_rev(revisions["start"], revisions["ids"][0]), revisions, path


def _inline(atts: dict[str, Att]) -> Json:
    """``_attachments`` with base64 ``data`` (what ``bulk_get`` sends)."""
    return {name: {"content_type": a.content_type, "digest": a.digest, "length": a.length,
                   "revpos": a.revpos, "data": base64.b64encode(a.data or b"").decode("ascii")}
            for name, a in atts.items()}


class EndpointApi(StoreCore):
    """changes, revs_diff, bulk_get, bulk_docs_replicated and checkpoints."""

    def identifier(self) -> str:
        """This store's random uuid and its database name."""
        return f"{self._rows('SELECT value FROM meta WHERE key = ?', ('store_uuid',))[0][0]}/{self.db_name}"

    def update_seq(self) -> int:
        """The seq of the latest write."""
        return int(self._rows("SELECT value FROM meta WHERE key = 'update_seq'")[0][0])

    def changes(self, since: Any, limit: int) -> ChangesBatch:
        """Up to ``limit`` documents changed after ``since``, each once at its latest seq, every leaf."""
        start = _since(since, self.update_seq())
        rows = self._rows("SELECT doc_id, rev_tree, winning_rev, deleted, seq FROM docs WHERE seq > ?"
                          " ORDER BY seq LIMIT ?", (start, limit if limit and limit > 0 else -1))
        results = []
        for doc_id, tree, winner, deleted, seq in rows:
            leaves = [leaf.rev for leaf in collect_leaves(unflatten(jsoncodec.loads(tree)))]
            row: Json = {"seq": seq, "id": doc_id,
                         "changes": [{"rev": rev} for rev in [winner] + [r for r in leaves if r != winner]]}
            if deleted:
                row["deleted"] = True
            results.append(row)
        return ChangesBatch(results, rows[-1][4] if rows else start)

    def revs_diff(self, revs: dict[str, list[str]]) -> dict[str, Json]:
        """For each id, the revs this store lacks (and the leaves they may descend from)."""
        out: dict[str, Json] = {}
        for doc_id, wanted in revs.items():
            row = self._load(doc_id)
            missing = [rev for rev in dict.fromkeys(wanted) if row is None or not rev_exists(row.tree, rev)]
            if not missing:
                continue
            out[doc_id] = {"missing": missing}
            ancestors = possible_ancestors(row.tree, missing) if row is not None else []
            if ancestors:
                out[doc_id]["possible_ancestors"] = ancestors
        return out

    def bulk_get(self, requests: list[Json]) -> list[Json]:
        """The requested revisions (``rev`` absent: the winner; compacted: its leaves, as latest=true)."""
        out: list[Json] = []
        for request in requests:
            doc_id, rev = request.get("id"), request.get("rev")
            with self._lock:  # one consistent view of the tree, bodies and attachments
                row = self._load(doc_id) if isinstance(doc_id, str) else None
                revs = self._latest(doc_id, row, rev) if row is not None else []
                if not revs:
                    # As sync.remote does with a _bulk_get error item: a changes/read race, retried.
                    raise TransientError(f"bulk_get {doc_id} {rev}: not_found")
                out.extend(self._replicable(doc_id, row, leaf) for leaf in revs)  # type: ignore[arg-type]
        return out

    def _latest(self, doc_id: str, row: DocRow, rev: str | None) -> list[str]:
        """``rev`` if its body is held, else the leaves under it (an edit since compacted it)."""
        rev = rev or row.winning_rev
        if self._rows("SELECT 1 FROM revs WHERE doc_id = ? AND rev = ?", (doc_id, rev)):
            return [rev]
        return leaves_under(row.tree, rev)

    def _replicable(self, doc_id: str, row: DocRow, rev: str) -> Json:
        """A held revision as replication sends it: ``_revisions`` and inline attachments."""
        doc: Json = {"_id": doc_id, "_rev": rev, **(self._body(doc_id, rev) or {}),
                     "_revisions": {"start": parse_rev(rev)[0], "ids": rev_ancestry(row.tree, rev)}}
        if is_deleted(row.tree, rev):
            doc["_deleted"] = True
        atts = self._atts(doc_id, rev, data=True)
        if atts:
            doc["_attachments"] = _inline(atts)
        return doc

    def bulk_docs_replicated(self, docs: list[Json]) -> list[Json]:
        """Store revisions as given (new_edits=false), in one transaction; return per-document errors."""
        errors: list[Json] = []
        with self._tx():
            for doc in docs:
                # Each document is checked before anything is written, so a refused one leaves
                # no trace and the rest of the batch goes on (CouchDB's behaviour).
                try:
                    self._replicate_one(doc)
                except CouchError as exc:
                    item = {"id": doc.get("_id"), "rev": doc.get("_rev")} if isinstance(doc, dict) else {}
                    errors.append({**{k: v for k, v in item.items() if isinstance(v, str)}, **exc.to_json()})
        return errors

    def _replicate_one(self, doc: Json) -> None:
        """Graft one replicated revision unless it is already known."""
        body, deleted, found_atts = split_doc(doc)
        raw_atts = found_atts or {}
        if isinstance(doc.get("_id"), str) and doc["_id"].startswith(LOCAL_PREFIX):
            self._write_local(doc["_id"][len(LOCAL_PREFIX):], doc)
            return
        doc_id = check_doc_id(doc.get("_id"))
        rev, revisions, path = _replicated_path(doc, deleted)
        existing = self._load(doc_id)
        if existing is not None and rev_exists(existing.tree, rev):
            return  # idempotent: a re-pushed batch changes nothing, not even the seq
        base = self._stub_base(doc_id, existing, revisions) if needs_base(raw_atts) else {}
        atts = intake(raw_atts, base=base, new_pos=revisions["start"], replicated=True)
        self._write(doc_id, existing, path, rev, body, atts)

    def _stub_base(self, doc_id: str, existing: DocRow | None, revisions: Json) -> dict[str, Att]:
        """Attachments (with data) of the nearest ancestor on the incoming path whose body we hold."""
        if existing is None:
            return {}
        for offset, rev_hash in enumerate(revisions["ids"][1:], start=1):
            rev = format_rev(revisions["start"] - offset, rev_hash)
            if self._rows("SELECT 1 FROM revs WHERE doc_id = ? AND rev = ?", (doc_id, rev)):
                return self._atts(doc_id, rev, data=True)
        return {}

    def get_local(self, local_id: str) -> Json | None:
        """The ``_local/<local_id>`` checkpoint, or None."""
        local_id = local_id.removeprefix(LOCAL_PREFIX)
        rows = self._rows("SELECT rev, json FROM local WHERE id = ?", (local_id,))
        if not rows:
            return None
        return {**jsoncodec.loads(rows[0][1]), "_id": LOCAL_PREFIX + local_id, "_rev": f"0-{rows[0][0]}"}

    def put_local(self, local_id: str, doc: Json) -> None:
        """Write the checkpoint, replacing any previous one."""
        with self._tx():
            self._write_local(local_id.removeprefix(LOCAL_PREFIX), doc)

    def _write_local(self, local_id: str, doc: Json) -> None:
        """Replace a ``_local`` document (inside ``_tx``); its rev counts writes, like CouchDB's ``0-N``."""
        body = {key: value for key, value in doc.items() if key not in ("_id", "_rev")}
        self._conn.execute("INSERT INTO local (id, rev, json) VALUES (?, 1, ?)"
                           " ON CONFLICT (id) DO UPDATE SET rev = rev + 1, json = excluded.json",
                           (local_id, jsoncodec.dumps(body)))
