"""Flat storage of revision trees round-trips, also for trees too deep for nested JSON."""
from __future__ import annotations

import json

from sync.merge import merge
from sync.revtree import make_path, winning_rev
from sync.treecodec import flatten, unflatten


def test_branching_tree_round_trips() -> None:
    tree = [{"pos": 1, "ids": ["a", {"status": "missing"}, [
        ["b", {"status": "available"}, []],
        ["c", {"status": "available", "deleted": True}, [["d", {"status": "available"}, []]]]]]},
        {"pos": 4, "ids": ["x", {"status": "available"}, []]}]
    rows = flatten(tree)
    assert rows[0] == [1, "a", -1, {"status": "missing"}]
    assert [r[1] for r in rows] == ["a", "b", "c", "d", "x"]
    assert unflatten(json.loads(json.dumps(rows))) == tree


def test_thousand_revision_chain_survives_json() -> None:
    ids = [f"h{n:04d}" for n in range(1000, 0, -1)]
    tree = merge([], make_path({"start": 1000, "ids": ids}, {"status": "available"}), 1000).tree
    text = json.dumps(flatten(tree))  # nested, this would hit the recursion limit
    back = unflatten(json.loads(text))
    assert winning_rev(back) == "1000-h1000"
    assert flatten(back) == flatten(tree)
