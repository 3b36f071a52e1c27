"""Resolution of conflicted shared records: a three-way merge written as a new revision.

When a document has more than one live leaf, ``resolve_document`` merges the leaves'
bodies against their common ancestor (sync.records.merge3) and writes, in one transaction
under the database's write lock: the merged body as a child of the winning leaf, a
tombstone on every other live leaf, a ``Resolution`` row, a ``ConflictRecord`` per field
changed differently, and an audit entry. Every replica that receives these revisions ends
with one live leaf (DESIGN decision 6).

Rev ids are CouchDB's deterministic hashes of (parent, body, attachments), so two servers
(or two workers) that merge the same leaves against the same ancestor write the same
revisions, and replicating them to each other adds no new conflict. The lock makes a
second resolver of the same database see the first one's result: one live leaf, nothing
to do.

The common ancestor is the deepest revision that is an ancestor of every live leaf and
whose body the store holds. The leaves an earlier resolution merged count as parents of
its merge revision (as a git merge commit has two parents): a tablet that goes on editing
a branch that was merged away is merged next time against what it last saw, so an
earlier pick is not reverted for fields it did not touch again. See docs/records.md.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select

from models import Document, db
from models.conflicts import ConflictRecord, Resolution
from sync.audit import record
from sync.docs import Json, md5_of
from sync.revs import format_rev, new_rev_hash, parse_rev
from sync.revtree import RevTree, collect_leaves, make_path, rev_ancestry, root_to_leaf
from sync.store import get_database, write_lock
from sync.writes import Author, Batch, DocState, edit_one

from .merge3 import Leaf, merge3

Progress = Callable[[int, int], None]
# The body field of a resolution's tombstone: the merge revision it belongs to.
RESOLVED_INTO = "resolved_into"


@dataclass
class History:
    """What earlier resolutions of one document left behind."""

    parents: dict[str, list[str]] = field(default_factory=dict)  # merge rev -> the leaves it merged
    tombstones: set[str] = field(default_factory=set)  # tombstones written by resolutions
    recorded: set[str] = field(default_factory=set)  # deleted leaves already recorded as delete_vs_edit


def load_history(db_name: str, doc_id: str | None = None) -> dict[str, History]:
    """Resolutions and delete-vs-edit records of one document (or a whole database), by doc id."""
    out: dict[str, History] = {}
    query = select(Resolution.doc_id, Resolution.merge_rev, Resolution.merged_revs).where(
        Resolution.db_name == db_name)
    marks = select(ConflictRecord.doc_id, ConflictRecord.values).where(
        ConflictRecord.db_name == db_name, ConflictRecord.kind == "delete_vs_edit")
    if doc_id is not None:
        query, marks = query.where(Resolution.doc_id == doc_id), marks.where(ConflictRecord.doc_id == doc_id)
    for row_id, merge_rev, merged in db.session.execute(query):
        history = out.setdefault(row_id, History())
        history.parents[merge_rev] = list(merged.get("leaves", []))
        history.tombstones.update(merged.get("tombstones", []))
    for row_id, values in db.session.execute(marks):
        out.setdefault(row_id, History()).recorded.update(v["rev"] for v in values if v.get("deleted"))
    return out


def _read_tombstones(batch: Batch, doc: DocState, deleted: list[str], history: History) -> None:
    """Add the resolution tombstones among ``deleted`` leaves, and their merge parents, to ``history``."""
    for rev, body in batch.bodies_of(doc, deleted).items():
        into = body.get(RESOLVED_INTO)
        ancestry = rev_ancestry(doc.rev_tree, rev) or []
        if isinstance(into, str) and len(ancestry) > 1:
            history.tombstones.add(rev)
            parent = format_rev(parse_rev(rev)[0] - 1, ancestry[1])
            if parent not in history.parents.setdefault(into, []):
                history.parents[into].append(parent)


def common_ancestors(tree: RevTree, leaves: list[str], parents: dict[str, list[str]]) -> list[str]:
    """Revisions whose body is held and that are ancestors of every leaf, deepest first.

    ``parents`` adds merge parents: each merge revision descends from the leaves it merged.
    """
    tree_parent: dict[str, str] = {}
    held: set[str] = set()
    for path in root_to_leaf(tree):
        revs = [format_rev(path["pos"] + i, node[0]) for i, node in enumerate(path["ids"])]
        for i, (rev, node) in enumerate(zip(revs, path["ids"])):
            if i:
                tree_parent.setdefault(rev, revs[i - 1])
            if node[1].get("status") == "available":
                held.add(rev)

    def lineage(rev: str) -> set[str]:
        seen: set[str] = set()
        stack = [rev]
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend([tree_parent[current]] if current in tree_parent else [])
                stack.extend(parents.get(current, []))
        return seen

    common = set.intersection(*(lineage(leaf) for leaf in leaves)) & held
    return sorted(common, key=parse_rev, reverse=True)


def needs_resolution(tree: RevTree, history: History) -> bool:
    """Whether a document has several live leaves, or a deleted leaf not yet recorded."""
    leaves = collect_leaves(tree)
    live = [leaf for leaf in leaves if not leaf.opts.get("deleted")]
    if len(live) > 1:
        return True
    return bool(live) and any(leaf.opts.get("deleted") and leaf.rev not in history.tombstones
                              and leaf.rev not in history.recorded for leaf in leaves)


def resolve_document(db_name: str, doc_id: str, *, actor: str = "server") -> str | None:
    """Resolve ``doc_id`` if it has more than one live leaf; return the new winning rev, or None."""
    with write_lock(db_name) as txn:
        batch = Batch(txn, author=Author(actor, "resolve"))
        batch.load([doc_id])
        doc = batch.docs.get(doc_id)
        if doc is None:
            return None
        history = load_history(db_name, doc_id).get(doc_id, History())
        leaves = collect_leaves(doc.rev_tree)
        _read_tombstones(batch, doc, [leaf.rev for leaf in leaves if leaf.opts.get("deleted")], history)
        live = [leaf.rev for leaf in leaves if not leaf.opts.get("deleted")]
        if not live:
            return None
        merged = _merge(batch, doc, live, history, actor) if len(live) > 1 else None
        merge_rev, body = merged if merged is not None else (None, None)
        deleted = [leaf.rev for leaf in leaves if leaf.opts.get("deleted") and leaf.rev not in history.tombstones
                   and leaf.rev not in history.recorded]
        _record_deletions(batch, doc, deleted, body, merge_rev, actor)
        batch.flush()
        return merge_rev


def _merge(batch: Batch, doc: DocState, live: list[str], history: History, actor: str) -> tuple[str, Json] | None:
    """Write the merge revision and the tombstones; record the resolution and its conflicts."""
    bodies = batch.bodies_of(doc, live)
    if any(rev not in bodies for rev in live):  # pragma: no cover - the store keeps every leaf's body
        return None
    ancestor_rev, ancestor = None, None
    for rev in common_ancestors(doc.rev_tree, live, history.parents):
        ancestor = batch.bodies_of(doc, [rev]).get(rev)  # the first one, unless its body went missing
        if ancestor is not None:
            ancestor_rev = rev
            break
    outcome = merge3(ancestor, [Leaf.of(rev, bodies[rev]) for rev in live])
    winner = doc.winning_rev
    merge_rev = write_child(batch, doc.doc_id, winner, bodies[winner], outcome.body)
    losers = [rev for rev in live if rev != winner]
    # The tombstone names the merge it belongs to: a replica that receives the resolution by
    # replication (with no Resolution row of its own) still knows these are not user deletions
    # and which leaves the merge combined. The merge rev is deterministic, so the tombstone is too.
    tombstones = [edit_one(batch, {"_id": doc.doc_id, "_rev": rev, "_deleted": True, RESOLVED_INTO: merge_rev})["rev"]
                  for rev in losers]
    now = time.time()
    db.session.add(Resolution(db_name=batch.txn.database.name, doc_id=doc.doc_id, merge_rev=merge_rev,
                              merged_revs={"leaves": live, "tombstones": tombstones}, ancestor_rev=ancestor_rev,
                              actor=actor, created_at=now))
    for conflict in outcome.conflicts:
        db.session.add(ConflictRecord(db_name=batch.txn.database.name, doc_id=doc.doc_id, field=conflict.field,
                                      path=list(conflict.path), kind="field", values=conflict.values,
                                      picked_rev=conflict.picked_rev, resolution_rev=merge_rev, state="open",
                                      created_at=now))
    record(actor, "conflict.resolve", db_name=batch.txn.database.name, doc_id=doc.doc_id, merge_rev=merge_rev,
           leaves=live, tombstones=tombstones, ancestor_rev=ancestor_rev,
           conflicts=[c.field for c in outcome.conflicts])
    return merge_rev, outcome.body


def write_child(batch: Batch, doc_id: str, parent_rev: str, parent_body: Json, body: Json) -> str:
    """Graft ``body`` (attachments as stored metadata) as a child of ``parent_rev``; return its rev.

    The rev is CouchDB's deterministic hash, so the same merge written twice is one revision.
    """
    pos, parent_hash = parse_rev(parent_rev)
    atts: Json = body.get("_attachments") or {}
    inherited = parent_body.get("_attachments") or {}
    for name, meta in atts.items():
        # An attachment from another branch is new on this one: a higher revpos makes
        # the server send its bytes to peers that hold only the parent's branch.
        if inherited.get(name) != meta:
            atts[name] = {**meta, "revpos": pos + 1}
    # CouchDB would make a random rev for a digest that is not md5; a fixed stand-in keeps it deterministic.
    keys = [(name, meta["content_type"], md5_of(meta) or bytes.fromhex(meta["sha256"])[:16])
            for name, meta in atts.items()]
    new_hash = new_rev_hash(False, (pos, parent_hash), {k: v for k, v in body.items() if k != "_attachments"},
                            keys)
    path = make_path({"start": pos + 1, "ids": [new_hash, parent_hash]}, {"status": "available"})
    batch.graft(doc_id, path, format_rev(pos + 1, new_hash), body, False)
    return format_rev(pos + 1, new_hash)


def _record_deletions(batch: Batch, doc: DocState, deleted: list[str], live_body: Json | None,
                      merge_rev: str | None, actor: str) -> None:
    """One delete_vs_edit record per deleted leaf beside the live winner (CouchDB keeps the edit)."""
    if not deleted:
        return
    winner = doc.winning_rev
    bodies = batch.bodies_of(doc, deleted + ([] if live_body is not None else [winner]))
    live = dict(live_body if live_body is not None else bodies.get(winner, {}))
    live.pop("_attachments", None)
    for rev in deleted:
        values = [_entry(rev, None, bodies.get(rev, {}), deleted=True), _entry(winner, live, live, deleted=False)]
        db.session.add(ConflictRecord(db_name=batch.txn.database.name, doc_id=doc.doc_id, field="", path=[],
                                      kind="delete_vs_edit", values=values, picked_rev=winner,
                                      resolution_rev=merge_rev, state="open", created_at=time.time()))
        record(actor, "conflict.delete_vs_edit", db_name=batch.txn.database.name, doc_id=doc.doc_id,
               deleted_rev=rev, live_rev=winner)


def _entry(rev: str, value: object, body: Json, *, deleted: bool) -> Json:
    """One leaf's line in a conflict record."""
    stamp, by = body.get("updated_at"), body.get("updated_by")
    return {"rev": rev, "value": value, "updated_at": stamp if isinstance(stamp, str) else None,
            "updated_by": by if isinstance(by, str) else None, "deleted": deleted}


def resolve_all(db_name: str, progress: Progress | None = None) -> int:
    """Resolve every document of ``db_name`` that needs it; return how many merges were written."""
    database = get_database(db_name)
    total, scanned, merged, last = database.doc_count, 0, 0, 0
    histories = load_history(db_name)
    while True:
        rows = db.session.execute(
            select(Document.id, Document.doc_id, Document.rev_tree)
            .where(Document.database_id == database.id, Document.id > last, Document.deleted.is_(False))
            .order_by(Document.id).limit(500)).all()
        if not rows:
            return merged
        for pk, doc_id, tree in rows:
            last, scanned = pk, scanned + 1
            if needs_resolution(tree, histories.get(doc_id, History())):
                merged += resolve_document(db_name, doc_id) is not None
            if progress is not None:
                progress(scanned, max(total, scanned))
