"""Read-only queries over a document's revision tree, plus building a path to merge.

Data format (pouchdb-merge's, see ``sync/__init__.py``)::

    RevTree = list[RevPath]                  # several roots are possible after stemming
    RevPath = {"pos": int, "ids": RevNode}   # pos = depth of the root node (>= 1)
    RevNode = [hash, opts, children]         # children: list[RevNode]
    opts    = {"status": "available" | "missing", "deleted": True (only when deleted)}

Ported from pouchdb-merge (src/traverseRevTree.js, winningRev.js, collectLeaves.js,
collectConflicts.js, rootToLeaf.js, revExists.js, latest.js, isDeleted.js, compactTree.js)
and CouchDB (couch_key_tree.erl ``get_key_leafs``/``get_full_key_paths``, couch_doc.erl
``to_doc_info_path``, couch_db.erl ``doc_meta_info`` and ``find_missing``).

Nothing here mutates its arguments. Every walk is iterative: a 1000-revision chain is
2000 levels of nested lists, deeper than Python's default recursion limit.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sync.errors import DocValidation, InvalidRev
from sync.revs import format_rev, parse_rev

RevNode = list[Any]            # [hash: str, opts: dict, children: list[RevNode]]
RevPath = dict[str, Any]       # {"pos": int, "ids": RevNode}
RevTree = list[RevPath]


@dataclass(frozen=True)
class Leaf:
    """A leaf revision: ``rev`` ("N-hash"), its ``pos`` N, and a copy of its opts."""

    rev: str
    pos: int
    opts: dict[str, Any]


@dataclass(frozen=True)
class _Entry:
    """A visited node with a link to its parent's entry, to rebuild ancestry lazily."""

    pos: int
    node: RevNode
    parent: _Entry | None


def _entries(tree: RevTree) -> Iterator[_Entry]:
    """Pre-order walk: roots in list order, children in list order."""
    stack = [_Entry(path["pos"], path["ids"], None) for path in reversed(tree)]
    while stack:
        entry = stack.pop()
        yield entry
        stack.extend(_Entry(entry.pos + 1, child, entry) for child in reversed(entry.node[2]))


def traverse_rev_tree(tree: RevTree) -> Iterator[tuple[bool, int, str, dict[str, Any]]]:
    """Yield ``(is_leaf, pos, hash, opts)`` for every node, in pre-order."""
    for entry in _entries(tree):
        yield not entry.node[2], entry.pos, entry.node[0], dict(entry.node[1])


def copy_tree(tree: RevTree) -> RevTree:
    """A deep copy of a tree (iterative, unlike copy.deepcopy)."""
    copies = [{"pos": path["pos"], "ids": [path["ids"][0], dict(path["ids"][1]), []]} for path in tree]
    stack = [(path["ids"], copy["ids"]) for path, copy in zip(tree, copies)]
    while stack:
        source, target = stack.pop()
        for child in source[2]:
            target[2].append([child[0], dict(child[1]), []])
            stack.append((child, target[2][-1]))
    return copies


def _find(tree: RevTree, rev: str) -> _Entry | None:
    """The first node whose (pos, hash) is ``rev``'s; InvalidRev if rev is malformed."""
    pos, rev_hash = parse_rev(rev)
    return next((e for e in _entries(tree) if e.pos == pos and e.node[0] == rev_hash), None)


def _lineage(entry: _Entry | None) -> Iterator[_Entry]:
    """The entry and its ancestors, newest first."""
    while entry is not None:
        yield entry
        entry = entry.parent


def collect_leaves(tree: RevTree) -> list[Leaf]:
    """Every leaf, highest pos first (ties: higher hash first)."""
    leaves: dict[str, Leaf] = {}
    for entry in _entries(tree):
        rev = format_rev(entry.pos, entry.node[0])
        # setdefault: a rev duplicated under two roots (possible after stemming) counts once.
        if not entry.node[2]:
            leaves.setdefault(rev, Leaf(rev, entry.pos, dict(entry.node[1])))
    # pouchdb sorts by pos only; ordering by (pos, hash) keeps the order independent of
    # how the tree happens to be laid out.
    return sorted(leaves.values(), key=lambda leaf: (leaf.pos, leaf.rev), reverse=True)


def _winner_key(leaf: Leaf) -> tuple[bool, int, str]:
    """The winning-revision order (PROTOCOL.md 2.2): larger key wins."""
    return not leaf.opts.get("deleted", False), leaf.pos, leaf.rev.split("-", 1)[1]


def winning_rev(tree: RevTree) -> str:
    """The deterministic winner among the leaves; ValueError for an empty tree."""
    leaves = collect_leaves(tree)
    if not leaves:
        raise ValueError("an empty revision tree has no winning revision")
    # Rule (couch_doc:to_doc_info_path, pouchdb winningRev.js): a non-deleted leaf beats a
    # deleted one, then the higher pos wins, then the higher hash by string comparison.
    return max(leaves, key=_winner_key).rev


def is_deleted(tree: RevTree, rev: str | None = None) -> bool:
    """Whether the winner (or the given rev) is deleted; False when rev is unknown."""
    entry = _find(tree, winning_rev(tree) if rev is None else rev)
    return entry is not None and bool(entry.node[1].get("deleted"))


def _other_leaves(tree: RevTree, deleted: bool) -> list[str]:
    """Leaves other than the winner whose deleted flag equals ``deleted``."""
    winner = winning_rev(tree)
    return [leaf.rev for leaf in collect_leaves(tree)
            if leaf.rev != winner and bool(leaf.opts.get("deleted")) == deleted]


def collect_conflicts(tree: RevTree) -> list[str]:
    """``_conflicts``: non-deleted leaves other than the winner, by descending (pos, hash)."""
    return _other_leaves(tree, deleted=False)


def collect_deleted_conflicts(tree: RevTree) -> list[str]:
    """``_deleted_conflicts``: deleted leaves other than the winner, same order."""
    return _other_leaves(tree, deleted=True)


def root_to_leaf(tree: RevTree) -> list[dict[str, Any]]:
    """One ``{"pos": root pos, "ids": [(hash, opts), ...root..leaf]}`` per leaf, in pre-order."""
    paths = []
    for entry in _entries(tree):
        if not entry.node[2]:
            chain = [(e.node[0], dict(e.node[1])) for e in _lineage(entry)]
            paths.append({"pos": entry.pos - len(chain) + 1, "ids": chain[::-1]})
    return paths


def rev_exists(tree: RevTree, rev: str) -> bool:
    """Whether the tree holds a node at rev's (pos, hash), with or without a body."""
    return _find(tree, rev) is not None


def rev_status(tree: RevTree, rev: str) -> dict[str, Any] | None:
    """A copy of the opts of rev's node, or None when rev is unknown."""
    entry = _find(tree, rev)
    return None if entry is None else dict(entry.node[1])


def is_leaf(tree: RevTree, rev: str) -> bool:
    """Whether rev is a known node without children."""
    entry = _find(tree, rev)
    return entry is not None and not entry.node[2]


def leaves_under(tree: RevTree, rev: str) -> list[str]:
    """The leaves descending from rev (rev itself if a leaf); [] when unknown (latest=true)."""
    pos, rev_hash = parse_rev(rev)
    found = set()
    for entry in _entries(tree):
        # A stemmed tree may hold the same (pos, hash) under two roots: check every path.
        if not entry.node[2] and any(e.pos == pos and e.node[0] == rev_hash
                                     for e in _lineage(entry)):
            found.add((entry.pos, entry.node[0]))
    return [format_rev(p, h) for p, h in sorted(found, reverse=True)]


def rev_ancestry(tree: RevTree, rev: str) -> list[str] | None:
    """Hashes from rev back to its root, newest first (``_revisions.ids``); None if unknown."""
    entry = _find(tree, rev)
    return None if entry is None else [e.node[0] for e in _lineage(entry)]


def revs_info(tree: RevTree, rev: str) -> list[dict[str, str]]:
    """``_revs_info`` from rev back to its root; [] when rev is unknown."""
    # couch_db:doc_meta_info: no body -> missing; a body of a deletion -> deleted.
    return [{"rev": format_rev(e.pos, e.node[0]),
             "status": "missing" if e.node[1].get("status") != "available"
             else "deleted" if e.node[1].get("deleted") else "available"}
            for e in _lineage(_find(tree, rev))]


def compact(tree: RevTree) -> tuple[RevTree, list[str]]:
    """Mark non-leaf bodies missing; return the new tree and the revs whose bodies can go."""
    compacted = copy_tree(tree)
    dropped = []
    for entry in _entries(compacted):
        # Leaves keep their bodies: they are what readers and replicators fetch.
        if entry.node[2] and entry.node[1].get("status") == "available":
            entry.node[1]["status"] = "missing"
            dropped.append((entry.pos, entry.node[0]))
    return compacted, [format_rev(pos, rev_hash) for pos, rev_hash in sorted(dropped)]


def possible_ancestors(tree: RevTree, missing_revs: list[str]) -> list[str]:
    """Leaves whose pos is below the highest pos in missing_revs (``_revs_diff``)."""
    if not missing_revs:
        return []
    highest = max(parse_rev(rev)[0] for rev in missing_revs)
    return [leaf.rev for leaf in collect_leaves(tree) if leaf.pos < highest]


def make_path(revisions: dict[str, Any], leaf_opts: dict[str, Any]) -> RevPath:
    """The linear path for ``_revisions`` {"start", "ids": newest..oldest} to merge."""
    start, ids = _checked_revisions(revisions)
    node: RevNode = [ids[0], dict(leaf_opts), []]
    # Ancestors arrive as ids only: we know they existed, not their bodies.
    for rev_hash in ids[1:]:
        node = [rev_hash, {"status": "missing"}, [node]]
    return {"pos": start - len(ids) + 1, "ids": node}


def _checked_revisions(revisions: Any) -> tuple[int, list[str]]:
    """Validate ``_revisions`` with CouchDB's messages (couch_doc:transfer_fields)."""
    if not isinstance(revisions, dict):
        raise DocValidation("_revisions isn't an object.")
    start, ids = revisions.get("start"), revisions.get("ids")
    # JSON true is not an integer to CouchDB, though bool subclasses int in Python.
    if not isinstance(start, int) or isinstance(start, bool):
        raise DocValidation("_revisions.start isn't an integer.")
    if not isinstance(ids, list):
        raise DocValidation("_revisions.ids isn't a array.")
    if not all(isinstance(rev_hash, str) for rev_hash in ids):
        raise DocValidation("RevId isn't a string")
    if not ids or start < len(ids):
        raise InvalidRev("_revisions.start must be at least the number of _revisions.ids,"
                         " and ids must not be empty")
    if not all(ids):
        raise InvalidRev("_revisions.ids must not contain an empty id")
    try:
        for offset, rev_hash in enumerate(ids):
            parse_rev(format_rev(start - offset, rev_hash))  # the rules of a _rev
    except InvalidRev:
        # pos and hash are valid by now: only a 32-character non-hex id can fail.
        raise DocValidation("RevId isn't a valid hexadecimal") from None
    return start, ids
