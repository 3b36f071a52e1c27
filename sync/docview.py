"""How a stored revision becomes the JSON a client sees, and finding the rows to build it from.

``build_doc`` is the one place a stored revision becomes a document. Most documents a
replication moves have a tree without branches; ``linear_hashes`` recognises them so the
winner's ``_revisions`` and leaves are read off the chain instead of walking the tree.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass

from . import jsoncodec
from .docs import Json
from .revs import format_rev, parse_rev
from .revtree import (collect_conflicts, collect_deleted_conflicts, collect_leaves, rev_ancestry, revs_info)
from .rows import DocRow, bodies_of, doc_by_id, docs_by_ids
from .scopefeed import Reader, visible
from .store import load_blob


@dataclass(frozen=True)
class ReadOptions:
    """What to add to a document (the query options of ``GET /db/doc``)."""

    revs: bool = False
    revs_info: bool = False
    conflicts: bool = False
    deleted_conflicts: bool = False
    attachments: bool = False
    atts_since: tuple[str, ...] = ()
    local_seq: bool = False


def find_doc(database_id: int, doc_id: str, reader: Reader | None = None) -> DocRow | None:
    """The document's row, or None if it is absent or outside the reader's scope."""
    doc = doc_by_id(database_id, doc_id)
    if doc is not None and reader is not None and not visible(reader, [doc.id]):
        return None
    return doc


def find_docs(database_id: int, doc_ids: list[str], reader: Reader | None = None) -> dict[str, DocRow]:
    """The rows of the given documents that exist and that the reader sees, by doc id."""
    docs = docs_by_ids(database_id, doc_ids)
    if reader is not None:
        seen = visible(reader, [d.id for d in docs.values()])
        docs = {doc_id: d for doc_id, d in docs.items() if d.id in seen}
    return docs


def load_bodies(pairs: list[tuple[int, str]]) -> dict[tuple[int, str], Json]:
    """Bodies for (document pk, rev) pairs, fetched in a few queries."""
    return bodies_of(pairs)


def linear_hashes(doc: DocRow) -> list[str] | None:
    """The hashes from the winner back to the root when the tree is one unbranched path, else None."""
    if len(doc.rev_tree) != 1:
        return None
    node = doc.rev_tree[0]["ids"]
    hashes = [node[0]]
    while node[2]:
        if len(node[2]) > 1:
            return None
        node = node[2][0]
        hashes.append(node[0])
    hashes.reverse()
    return hashes


def leaf_revs(doc: DocRow) -> list[str]:
    """Every leaf's rev, highest first (``style=all_docs``)."""
    if linear_hashes(doc) is not None:
        return [doc.winning_rev]
    return [leaf.rev for leaf in collect_leaves(doc.rev_tree)]


def ancestry(doc: DocRow, rev: str) -> list[str]:
    """Hashes from ``rev`` back to its root (``_revisions.ids``); [] when the tree lacks it."""
    if rev == doc.winning_rev:
        hashes = linear_hashes(doc)
        if hashes is not None:
            return hashes
    return rev_ancestry(doc.rev_tree, rev) or []


def revisions(doc: DocRow, rev: str) -> Json:
    """``_revisions`` of ``rev``: its position and the hashes back to its root."""
    if rev == doc.winning_rev:
        hashes = linear_hashes(doc)
        if hashes is not None:
            return {"start": doc.rev_tree[0]["pos"] + len(hashes) - 1, "ids": hashes}
    return {"start": parse_rev(rev)[0], "ids": rev_ancestry(doc.rev_tree, rev) or []}


def _stub_limit(doc: DocRow, rev: str, atts_since: tuple[str, ...]) -> int:
    """Attachments with revpos at or below this position travel as stubs."""
    pos = parse_rev(rev)[0]
    known = {format_rev(pos - i, h) for i, h in enumerate(ancestry(doc, rev))}
    return max((parse_rev(r)[0] for r in atts_since if r in known), default=0)


def render_attachments(stored: Json, *, inline: bool, stub_limit: int = 0) -> Json:
    """Stored attachment metadata as stubs, or with base64 ``data`` when ``inline``."""
    out: Json = {}
    for name, meta in stored.items():
        entry = {k: meta[k] for k in ("content_type", "digest", "length", "revpos") if k in meta}
        if inline and meta.get("revpos", 0) > stub_limit:
            entry.pop("length", None)
            entry["data"] = base64.b64encode(load_blob(meta["sha256"])).decode()
        else:
            entry["stub"] = True
        out[name] = entry
    return out


def build_doc(doc: DocRow, rev: str, body: Json | None, opts: ReadOptions) -> Json:
    """The JSON of ``doc`` at ``rev``: ``_id``, ``_rev``, fields, and what ``opts`` asks for."""
    out: Json = {"_id": doc.doc_id, "_rev": rev}
    atts = None
    if body:
        out.update(body)
        atts = out.pop("_attachments", None)
    if atts:
        limit = _stub_limit(doc, rev, opts.atts_since) if opts.atts_since else 0
        out["_attachments"] = render_attachments(atts, inline=opts.attachments, stub_limit=limit)
    if leaf_deleted(doc, rev):
        out["_deleted"] = True
    if opts.revs:
        out["_revisions"] = revisions(doc, rev)
    if opts.revs_info:
        out["_revs_info"] = revs_info(doc.rev_tree, rev)
    if opts.conflicts and rev == doc.winning_rev:
        conflicts = collect_conflicts(doc.rev_tree)
        if conflicts:
            out["_conflicts"] = conflicts
    if opts.deleted_conflicts and rev == doc.winning_rev:
        deleted = collect_deleted_conflicts(doc.rev_tree)
        if deleted:
            out["_deleted_conflicts"] = deleted
    if opts.local_seq:
        out["_local_seq"] = doc.seq
    return out


def spliced_winner(doc: DocRow, text: str, opts: ReadOptions) -> jsoncodec.Spliced | None:
    """``build_doc`` of the winner of a live, unbranched document, written around its stored text; else None.

    A pull's ``_bulk_get`` asks for exactly this a hundred times a batch, and parsing each
    stored body only to write it out again was a tenth of the request. A body with ``"_``
    anywhere in its text (``_attachments``, which are rewritten as stubs, among them) is
    left to ``build_doc``, as is every option that adds more than ``_revisions``: an
    unbranched tree has no conflicts to list.
    """
    if doc.deleted or opts.revs_info or opts.local_seq or '"_' in text:
        return None
    if not (text.startswith("{") and text.endswith("}")):
        return None
    hashes = linear_hashes(doc)
    if hashes is None:
        return None
    head = f'{{"_id":{jsoncodec.dumps(doc.doc_id)},"_rev":{jsoncodec.dumps(doc.winning_rev)}'
    fields = text[1:-1].strip()
    parts = [head, "," + fields if fields else ""]
    if opts.revs:
        start = doc.rev_tree[0]["pos"] + len(hashes) - 1
        parts.append(f',"_revisions":{{"start":{start},"ids":{jsoncodec.dumps(hashes)}}}')
    parts.append("}")
    return jsoncodec.Spliced("".join(parts), doc.doc_id, doc.winning_rev)


def leaf_rank(doc: DocRow, rev: str) -> tuple[bool, int, str]:
    """The winner rule as a sort key (highest wins): live, then deeper, then higher hash."""
    pos, rev_hash = parse_rev(rev)
    return (not leaf_deleted(doc, rev), pos, rev_hash)


def leaf_deleted(doc: DocRow, rev: str) -> bool:
    """Whether ``rev`` is a deleted leaf of ``doc``."""
    if rev == doc.winning_rev:  # the common case, known without walking the tree
        return doc.deleted
    for leaf in collect_leaves(doc.rev_tree):
        if leaf.rev == rev:
            return bool(leaf.opts.get("deleted"))
    return False
