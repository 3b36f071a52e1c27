"""Merging a revision path into a revision tree, and stemming the tree to revs_limit.

Data format (pouchdb-merge's, see ``sync/__init__.py``)::

    RevTree = list[RevPath]                  # several roots are possible after stemming
    RevPath = {"pos": int, "ids": RevNode}   # pos = depth of the root node (>= 1)
    RevNode = [hash, opts, children]         # children sorted by hash

Ported from pouchdb-merge src/merge.js (doMerge, mergeTree, stem) and CouchDB's
couch_key_tree.erl (merge_tree/merge_at/merge_extend, value_pref, repair_tree), with
these deliberate differences:

* A path that shares no node with the tree becomes a new root and is reported as
  ``"new_branch"`` (CouchDB), not ``"internal_node"`` (pouchdb): it adds a conflicting leaf.
* Nodes match by (pos, hash) wherever they are: a path that both extends one root and
  contains the root of a stemmed branch reconnects them into one tree, and no (pos, hash)
  is left twice in the result (pouchdb can leave such duplicates behind).
* Node opts merge like couch_key_tree's value_pref: a held body ("available") always wins.
* ``stem`` rebuilds the tree by merging the shortened root-to-leaf paths, as
  couch_key_tree:repair_tree does. The result is pouchdb's, except where pouchdb would
  leave one revision in two places: there the branches stay joined.

Inputs are never mutated: both are copied first and only the copies are edited.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Literal

from sync.revs import format_rev
from sync.revtree import RevNode, RevPath, RevTree, copy_tree, root_to_leaf, traverse_rev_tree

Conflicts = Literal["new_leaf", "new_branch", "internal_node"]
# Ranked so that the most significant outcome of one merge is the one reported.
_OUTCOMES: tuple[Conflicts, ...] = ("internal_node", "new_leaf", "new_branch")
_INTERNAL, _NEW_LEAF, _NEW_BRANCH = range(3)


@dataclass(frozen=True)
class MergeResult:
    """The merged (and stemmed) tree, the revs stemming removed, and what the path added.

    ``conflicts``, judged against the tree as it was: "new_branch" if a node that had
    children gained one, or the path became a root of its own (a conflict was added);
    else "new_leaf" if a leaf gained a child, or the tree was empty; else "internal_node"
    (the path was known already, or only filled in ancestors). Exact for linear paths,
    which is what ``sync.revtree.make_path`` builds.
    """

    tree: RevTree
    stemmed_revs: list[str]
    conflicts: Conflicts


def merge(tree: RevTree, path: RevPath, depth: int) -> MergeResult:
    """Graft ``path`` into ``tree`` by (pos, hash), then stem to ``depth`` revisions."""
    _check_depth(depth)
    branches = copy_tree(tree)
    incoming = copy_tree([path])[0]
    if not branches:
        merged, outcome = [incoming], _NEW_LEAF
    else:
        merged, outcome = _merge_into(branches, incoming)
    stemmed, stemmed_revs = stem(merged, depth)
    return MergeResult(stemmed, stemmed_revs, _OUTCOMES[outcome])


def _merge_into(branches: RevTree, incoming: RevPath) -> tuple[RevTree, int]:
    """Merge a copied path into copied, non-empty branches; return them and the outcome."""
    outcome = None
    kept = []
    # Roots deeper than the path may be stemmed remnants of its history: fold them into
    # the path first, so that the path reconnects them when it is grafted below.
    for branch in branches:
        target = None
        if branch["pos"] > incoming["pos"]:
            target = _node_at(incoming["ids"], branch["pos"] - incoming["pos"], branch["ids"][0])
        if target is None:
            kept.append(branch)
            continue
        # Merge from the tree's point of view (the branch is what we had), then put the
        # result where the path's copy of that node was.
        found = _merge_nodes(branch["ids"], target)
        target[:] = branch["ids"]
        outcome = found if outcome is None else max(outcome, found)
    grafted = _graft(kept, incoming)
    if grafted is not None:
        return kept, grafted if outcome is None else max(outcome, grafted)
    # No branch holds the path's root: the path becomes a root. Unless it reconnected
    # stemmed branches, its leaf is one more leaf beside the others: a conflict.
    return sorted(kept + [incoming], key=_root_order), _NEW_BRANCH if outcome is None else outcome


def _graft(branches: RevTree, incoming: RevPath) -> int | None:
    """Merge the path below the first branch holding its root; None if none does."""
    for branch in branches:
        if branch["pos"] <= incoming["pos"]:
            distance = incoming["pos"] - branch["pos"]
            target = _node_at(branch["ids"], distance, incoming["ids"][0])
            if target is not None:
                return _merge_nodes(target, incoming["ids"])
    return None


def _node_at(root: RevNode, distance: int, rev_hash: str) -> RevNode | None:
    """The first node ``distance`` levels below ``root`` whose hash is ``rev_hash``."""
    level = [root]
    for _ in range(distance):
        level = [child for node in level for child in node[2]]
    return next((node for node in level if node[0] == rev_hash), None)


def _merge_nodes(existing: RevNode, incoming: RevNode) -> int:
    """Merge ``incoming`` into ``existing`` (same key), in place; return the outcome."""
    outcome = _INTERNAL
    stack = [(existing, incoming)]
    while stack:
        ours, theirs = stack.pop()
        ours[1] = _merge_opts(ours[1], theirs[1])
        for child in theirs[2]:
            match = next((node for node in ours[2] if node[0] == child[0]), None)
            if match is not None:
                stack.append((match, child))
            elif not ours[2]:
                ours[2].append(child)
                outcome = max(outcome, _NEW_LEAF)
            else:
                # Children stay sorted by hash, as in couch_key_tree and pouchdb.
                bisect.insort(ours[2], child, key=lambda node: node[0])
                outcome = _NEW_BRANCH
    return outcome


def _merge_opts(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """Opts of one revision known twice: a held body is never forgotten, and is learnt."""
    if ours.get("status") == "available":
        return ours
    if theirs.get("status") == "available":
        # Take theirs whole: it comes with the body, so its "deleted" flag is the truth.
        return dict(theirs)
    if "status" in ours or "status" in theirs:
        return {**ours, "status": "missing"}
    return ours


def stem(tree: RevTree, depth: int) -> tuple[RevTree, list[str]]:
    """Keep the newest ``depth`` revisions of every root-to-leaf path; return the dropped revs.

    A revision survives if it is among the newest ``depth`` of at least one path, so a
    path can stay longer than ``depth`` where it shares revisions with a shorter branch.
    """
    _check_depth(depth)
    result: RevTree = []
    cut: set[tuple[int, str]] = set()
    for path in root_to_leaf(tree):
        drop = max(len(path["ids"]) - depth, 0)
        cut.update((path["pos"] + i, rev_hash) for i, (rev_hash, _) in enumerate(path["ids"][:drop]))
        shortened = {"pos": path["pos"] + drop, "ids": _chain(path["ids"][drop:])}
        # Rebuild by merging the shortened paths (couch_key_tree:repair_tree). An edge
        # survives only inside some path's newest `depth` revisions, so branches split
        # where pouchdb's stem splits them; but a revision kept by one path and cut to a
        # root by another is joined, not duplicated (pouchdb would keep it twice).
        result = _merge_into(result, shortened)[0] if result else [shortened]
    result.sort(key=_root_order)
    # A revision cut from one path may survive in another (a shorter sibling branch).
    kept = {(pos, rev_hash) for _, pos, rev_hash, _ in traverse_rev_tree(result)}
    return result, [format_rev(pos, rev_hash) for pos, rev_hash in sorted(cut - kept)]


def _chain(ids: list[tuple[str, dict[str, Any]]]) -> RevNode:
    """A linear branch from ``[(hash, opts), ...]`` listed root first."""
    node: RevNode = [ids[-1][0], dict(ids[-1][1]), []]
    for rev_hash, opts in reversed(ids[:-1]):
        node = [rev_hash, dict(opts), [node]]
    return node


def _root_order(path: RevPath) -> tuple[int, str]:
    """Roots sort by (pos, hash), like couch_key_tree's lists:sort of its branches."""
    return path["pos"], path["ids"][0]


def _check_depth(depth: int) -> None:
    """revs_limit must be a positive int: a depth of 0 would stem every revision away."""
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise ValueError(f"depth must be a positive integer, not {depth!r}")
