"""Storing revision trees flat.

A nested tree of 1000 revisions is 2000 levels of JSON lists, beyond what ``json``
can encode or decode with Python's recursion limit. On disk a tree is therefore a
list of rows ``[pos, hash, parent_row, opts]`` in pre-order (``parent_row`` is -1 for
a root), turned back into the nested pouchdb-merge form without recursion.
"""
from __future__ import annotations

from typing import Any

from .revtree import RevNode, RevTree

Row = list[Any]  # [pos: int, hash: str, parent_row: int, opts: dict]


def flatten(tree: RevTree) -> list[Row]:
    """The rows of ``tree``, parents before children."""
    rows: list[Row] = []
    stack: list[tuple[int, RevNode, int]] = [(p["pos"], p["ids"], -1) for p in reversed(tree)]
    while stack:
        pos, node, parent = stack.pop()
        rows.append([pos, node[0], parent, node[1]])
        index = len(rows) - 1
        stack.extend((pos + 1, child, index) for child in reversed(node[2]))
    return rows


def unflatten(rows: list[Row]) -> RevTree:
    """Rebuild the nested tree from ``flatten``'s rows."""
    nodes: list[RevNode] = []
    tree: RevTree = []
    for pos, rev_hash, parent, opts in rows:
        node: RevNode = [rev_hash, opts, []]
        nodes.append(node)
        if parent < 0:
            tree.append({"pos": pos, "ids": node})
        else:
            nodes[parent][2].append(node)
    return tree
