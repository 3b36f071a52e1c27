"""sync.revtree: queries over revision trees (cases from pouchdb-merge and couch_key_tree)."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from sync.errors import DocValidation, InvalidRev
from sync.revtree import (Leaf, collect_conflicts, collect_deleted_conflicts, collect_leaves, compact,
                          copy_tree, is_deleted, is_leaf, leaves_under, make_path, possible_ancestors,
                          rev_ancestry, rev_exists, rev_status, revs_info, root_to_leaf, traverse_rev_tree,
                          winning_rev)

A = {"status": "available"}
M = {"status": "missing"}
D = {"status": "available", "deleted": True}


def tree_conflicts() -> list[dict[str, Any]]:
    """1-a ─ 2-b ─ 3-c | 2-d (deleted) | 2-e ─ 3-f."""
    return [{"pos": 1, "ids": ["a", dict(M), [
        ["b", dict(M), [["c", dict(A), []]]],
        ["d", dict(D), []],
        ["e", dict(A), [["f", dict(A), []]]],
    ]]}]


def tree_stemmed() -> list[dict[str, Any]]:
    """Two roots left by stemming: 2-b ─ 3-c ─ 4-d, and 3-x."""
    return [{"pos": 2, "ids": ["b", dict(M), [["c", dict(A), [["d", dict(A), []]]]]]},
            {"pos": 3, "ids": ["x", dict(A), []]}]


def tree_deleted_longest() -> list[dict[str, Any]]:
    """1-a ─ 2-b ─ 3-c (deleted) | 2-x: the shorter live branch wins."""
    return [{"pos": 1, "ids": ["a", dict(A), [["b", dict(A), [["c", dict(D), []]]], ["x", dict(A), []]]]}]


def tree_all_deleted() -> list[dict[str, Any]]:
    return [{"pos": 1, "ids": ["a", dict(A), [["b", dict(D), [["c", dict(D), []]]], ["x", dict(D), []]]]}]


def chain(length: int, start: int = 1) -> list[dict[str, Any]]:
    node: list[Any] = [f"h{start + length - 1}", dict(A), []]
    for pos in range(start + length - 2, start - 1, -1):
        node = [f"h{pos}", dict(M), [node]]
    return [{"pos": start, "ids": node}]


TREES = [tree_conflicts, tree_stemmed, tree_deleted_longest, tree_all_deleted]


# ---------------------------------------------------------------- traversal, leaves, winner

def test_traverse_rev_tree_is_preorder() -> None:
    assert list(traverse_rev_tree(tree_conflicts())) == [
        (False, 1, "a", M), (False, 2, "b", M), (True, 3, "c", A),
        (True, 2, "d", D), (False, 2, "e", A), (True, 3, "f", A),
    ]
    assert [(pos, h) for _, pos, h, _ in traverse_rev_tree(tree_stemmed())] == [
        (2, "b"), (3, "c"), (4, "d"), (3, "x")]
    assert list(traverse_rev_tree([])) == []


def test_collect_leaves() -> None:
    assert collect_leaves(tree_conflicts()) == [
        Leaf("3-f", 3, A), Leaf("3-c", 3, A), Leaf("2-d", 2, D)]
    assert [leaf.rev for leaf in collect_leaves(tree_stemmed())] == ["4-d", "3-x"]
    assert collect_leaves([]) == []


def test_collect_leaves_sorts_pos_numerically() -> None:
    tree = [{"pos": 9, "ids": ["z", A, [["a", A, []]]]}, {"pos": 9, "ids": ["y", A, []]}]
    assert [leaf.rev for leaf in collect_leaves(tree)] == ["10-a", "9-y"]


@pytest.mark.parametrize("make_tree, winner, conflicts, deleted_conflicts, deleted", [
    (tree_conflicts, "3-f", ["3-c"], ["2-d"], False),
    (tree_stemmed, "4-d", ["3-x"], [], False),
    (tree_deleted_longest, "2-x", [], ["3-c"], False),
    (tree_all_deleted, "3-c", [], ["2-x"], True),
])
def test_winner_and_conflicts(make_tree: Any, winner: str, conflicts: list[str],
                              deleted_conflicts: list[str], deleted: bool) -> None:
    tree = make_tree()
    assert winning_rev(tree) == winner
    assert collect_conflicts(tree) == conflicts
    assert collect_deleted_conflicts(tree) == deleted_conflicts
    assert is_deleted(tree) is deleted


@pytest.mark.parametrize("tree, winner", [
    # pouchdb test.merge.js "winningRev returns the longest leaf"
    ([{"pos": 1, "ids": ["bfe70372c90ded1087239e5191984f76", {}, [
        ["44d71a718b90e4696c06a90e08912c8f", {}, []],
        ["56e657612d55ab1a402dcb281c874f2a", {}, [["93c3db16462f656f7172ccabd3cf6cd6", {}, []]]],
    ]]}], "3-93c3db16462f656f7172ccabd3cf6cd6"),
    # pouchdb test.merge.js "winningRev returns the longest leaf again" (issue #293)
    ([{"pos": 1, "ids": ["203db1a1810a838895d561f67b224b5d", {}, [
        ["bf5e08a4f9fa6d33a53f4a00ae3ea399", {}, [["28cd77a3ca30f79e1cfffcd6a41ca308", {}, []]]],
    ]]}, {"pos": 1, "ids": ["c6d5cce35bcfbef90b20f140d723cbdb", {}, [
        ["1b8dfbb1267e213328920bae43f2f597", {}, []],
        ["59ed830b84b276ab776c3c51aaf93a16", {}, [["64a9842c6aea50bf24660378e496e853", {}, []]]],
    ]]}], "3-64a9842c6aea50bf24660378e496e853"),
    # higher hash wins at equal pos, by string comparison ("9" > "10")
    ([{"pos": 1, "ids": ["r", A, [["10", A, []], ["9", A, []]]]}], "2-9"),
    ([{"pos": 1, "ids": ["r", A, [["aaa", A, []], ["bbb", A, []]]]}], "2-bbb"),
    # pos compares as a number: 10-a beats 9-z
    ([{"pos": 9, "ids": ["z", A, []]}, {"pos": 10, "ids": ["a", A, []]}], "10-a"),
    # a live leaf beats a longer deleted one, whatever its hash
    ([{"pos": 1, "ids": ["r", A, [["zzz", D, [["zzz", D, []]]], ["aaa", A, []]]]}], "2-aaa"),
])
def test_winning_rev_cases(tree: list[dict[str, Any]], winner: str) -> None:
    assert winning_rev(tree) == winner


def test_winning_rev_of_empty_tree() -> None:
    with pytest.raises(ValueError):
        winning_rev([])


def test_is_deleted_for_a_given_rev() -> None:
    tree = tree_conflicts()
    assert is_deleted(tree, "2-d") is True
    assert is_deleted(tree, "3-c") is False
    assert is_deleted(tree, "9-unknown") is False
    with pytest.raises(InvalidRev):
        is_deleted(tree, "garbage")


# ---------------------------------------------------------------- paths and lookups

def test_root_to_leaf() -> None:
    assert root_to_leaf(tree_conflicts()) == [
        {"pos": 1, "ids": [("a", M), ("b", M), ("c", A)]},
        {"pos": 1, "ids": [("a", M), ("d", D)]},
        {"pos": 1, "ids": [("a", M), ("e", A), ("f", A)]},
    ]
    assert root_to_leaf(tree_stemmed()) == [
        {"pos": 2, "ids": [("b", M), ("c", A), ("d", A)]},
        {"pos": 3, "ids": [("x", A)]},
    ]


def test_couch_key_tree_get_all_leafs_full() -> None:
    # couch_key_tree_tests should_retrieve_leaves_with_parent_node, positions shifted by +1
    stemmed = [{"pos": 2, "ids": ["1a", A, [["1aa", A, []]]]}]
    two_child_sibs = [{"pos": 1, "ids": ["1", A, [["1a", A, []], ["1b", A, []]]]}]
    assert root_to_leaf(stemmed) == [{"pos": 2, "ids": [("1a", A), ("1aa", A)]}]
    assert [p["ids"][-1][0] for p in root_to_leaf(two_child_sibs)] == ["1a", "1b"]
    # should_have_*_leaves / leaf counting
    assert [len(collect_leaves(t)) for t in ([], [{"pos": 1, "ids": ["1", A, []]}], two_child_sibs,
                                             [{"pos": 3, "ids": ["1bb", A, []]}])] == [0, 1, 2, 1]


@pytest.mark.parametrize("rev, exists, leaf, status", [
    ("1-a", True, False, M), ("2-d", True, True, D), ("3-f", True, True, A),
    ("2-a", False, False, None), ("3-b", False, False, None), ("1-zz", False, False, None),
])
def test_rev_exists_is_leaf_rev_status(rev: str, exists: bool, leaf: bool, status: Any) -> None:
    tree = tree_conflicts()
    assert rev_exists(tree, rev) is exists
    assert is_leaf(tree, rev) is leaf
    assert rev_status(tree, rev) == status


@pytest.mark.parametrize("bad", ["", "a-b", "0-a", "1-", None])
def test_lookups_reject_malformed_revs(bad: Any) -> None:
    for query in (rev_exists, rev_status, is_leaf, leaves_under, rev_ancestry, revs_info):
        with pytest.raises(InvalidRev):
            query(tree_conflicts(), bad)


def test_couch_key_tree_find_missing() -> None:
    # couch_key_tree_tests should_(not_)find_missing_leaves, positions shifted by +1
    two_child_sibs = [{"pos": 1, "ids": ["1", A, [["1a", A, []], ["1b", A, []]]]}]
    stemmed1 = [{"pos": 2, "ids": ["1a", A, [["1aa", A, []]]]}]
    stemmed2 = [{"pos": 3, "ids": ["1aa", A, []]}]

    def missing(tree: list[dict[str, Any]], revs: list[str]) -> list[str]:
        return [rev for rev in revs if not rev_exists(tree, rev)]

    assert missing(two_child_sibs, ["1-1", "2-1a"]) == []
    assert missing(two_child_sibs, ["1-1", "1-10", "2-1a", "101-x"]) == ["1-10", "101-x"]
    assert missing(stemmed1, ["1-1", "2-1a", "101-x"]) == ["1-1", "101-x"]
    assert missing(stemmed2, ["1-1", "2-1a", "101-x"]) == ["1-1", "2-1a", "101-x"]


@pytest.mark.parametrize("rev, leaves", [
    ("1-a", ["3-f", "3-c", "2-d"]),
    ("2-b", ["3-c"]),
    ("2-e", ["3-f"]),
    ("3-c", ["3-c"]),
    ("2-d", ["2-d"]),
    ("4-c", []),
    ("1-unknown", []),
])
def test_leaves_under(rev: str, leaves: list[str]) -> None:
    assert leaves_under(tree_conflicts(), rev) == leaves


def test_leaves_under_couch_key_tree_get_key_leafs() -> None:
    # couch_key_tree_tests should_gather_*: positions shifted by +1
    one_child = [{"pos": 1, "ids": ["1", A, [["1a", A, []]]]}]
    two_child_sibs = [{"pos": 1, "ids": ["1", A, [["1a", A, []], ["1b", A, []]]]}]
    assert leaves_under(two_child_sibs, "1-x") == []
    assert leaves_under(two_child_sibs, "2-1a") == ["2-1a"]
    assert leaves_under(two_child_sibs, "1-1") == ["2-1b", "2-1a"]
    assert leaves_under(one_child, "1-1") == ["2-1a"]


@pytest.mark.parametrize("make_tree, rev, ancestry", [
    (tree_conflicts, "3-c", ["c", "b", "a"]),
    (tree_conflicts, "2-d", ["d", "a"]),
    (tree_conflicts, "1-a", ["a"]),
    (tree_stemmed, "4-d", ["d", "c", "b"]),
    (tree_stemmed, "3-x", ["x"]),
    (tree_stemmed, "1-a", None),
    (tree_conflicts, "3-e", None),
])
def test_rev_ancestry(make_tree: Any, rev: str, ancestry: list[str] | None) -> None:
    assert rev_ancestry(make_tree(), rev) == ancestry


def test_revs_info() -> None:
    assert revs_info(tree_conflicts(), "3-c") == [
        {"rev": "3-c", "status": "available"},
        {"rev": "2-b", "status": "missing"},
        {"rev": "1-a", "status": "missing"},
    ]
    assert revs_info(tree_conflicts(), "2-d") == [
        {"rev": "2-d", "status": "deleted"}, {"rev": "1-a", "status": "missing"}]
    # a deleted revision whose body was compacted away is just missing
    assert revs_info([{"pos": 4, "ids": ["q", {"status": "missing", "deleted": True}, []]}], "4-q") == [
        {"rev": "4-q", "status": "missing"}]
    assert revs_info(tree_stemmed(), "4-d") == [
        {"rev": "4-d", "status": "available"}, {"rev": "3-c", "status": "available"},
        {"rev": "2-b", "status": "missing"}]
    assert revs_info(tree_conflicts(), "5-nope") == []


# ---------------------------------------------------------------- compaction, revs_diff

def test_compact() -> None:
    tree = [{"pos": 1, "ids": ["a", dict(A), [["b", dict(A), [["c", dict(A), []]]], ["d", dict(D), []]]]}]
    compacted, dropped = compact(tree)
    assert dropped == ["1-a", "2-b"]
    assert compacted == [{"pos": 1, "ids": ["a", M, [["b", M, [["c", A, []]]], ["d", D, []]]]}]
    again, dropped_again = compact(compacted)
    assert again == compacted and dropped_again == []
    assert compact([]) == ([], [])


@pytest.mark.parametrize("missing, ancestors", [
    (["4-x"], ["3-f", "3-c", "2-d"]),
    (["3-x"], ["2-d"]),
    (["2-y", "1-z"], []),
    (["2-y", "4-q"], ["3-f", "3-c", "2-d"]),   # the highest missing pos decides
    ([], []),
])
def test_possible_ancestors(missing: list[str], ancestors: list[str]) -> None:
    assert possible_ancestors(tree_conflicts(), missing) == ancestors


def test_possible_ancestors_rejects_malformed_revs() -> None:
    with pytest.raises(InvalidRev):
        possible_ancestors(tree_conflicts(), ["4-x", "bad"])


# ---------------------------------------------------------------- make_path

def test_make_path() -> None:
    path = make_path({"start": 3, "ids": ["c", "b", "a"]}, A)
    assert path == {"pos": 1, "ids": ["a", M, [["b", M, [["c", A, []]]]]]}
    assert make_path({"start": 5, "ids": ["x"]}, D) == {"pos": 5, "ids": ["x", D, []]}
    stemmed = make_path({"start": 1000, "ids": ["z", "y"]}, A)
    assert stemmed == {"pos": 999, "ids": ["y", M, [["z", A, []]]]}


def test_make_path_copies_leaf_opts() -> None:
    opts = {"status": "available"}
    path = make_path({"start": 1, "ids": ["a"]}, opts)
    path["ids"][1]["deleted"] = True
    assert opts == {"status": "available"}


@pytest.mark.parametrize("revisions, error, reason", [
    ({"start": "3", "ids": ["a"]}, DocValidation, "_revisions.start isn't an integer."),
    ({"start": True, "ids": ["a"]}, DocValidation, "_revisions.start isn't an integer."),
    ({"start": 1.0, "ids": ["a"]}, DocValidation, "_revisions.start isn't an integer."),
    ({"ids": ["a"]}, DocValidation, "_revisions.start isn't an integer."),
    ({"start": 1, "ids": "a"}, DocValidation, "_revisions.ids isn't a array."),
    ({"start": 1}, DocValidation, "_revisions.ids isn't a array."),
    ({"start": 2, "ids": ["a", 1]}, DocValidation, "RevId isn't a string"),
    ({"start": 1, "ids": ["g" * 32]}, DocValidation, "RevId isn't a valid hexadecimal"),
    ({"start": 1, "ids": []}, InvalidRev, None),
    ({"start": 0, "ids": []}, InvalidRev, None),
    ({"start": 1, "ids": ["b", "a"]}, InvalidRev, None),
    ({"start": -1, "ids": ["a"]}, InvalidRev, None),
    ({"start": 2, "ids": ["b", ""]}, InvalidRev, None),
    (["a"], DocValidation, "_revisions isn't an object."),
])
def test_make_path_rejects(revisions: Any, error: type[Exception], reason: str | None) -> None:
    with pytest.raises(error) as excinfo:
        make_path(revisions, A)
    assert excinfo.value.status == 400
    if reason is not None:
        assert excinfo.value.reason == reason


# ---------------------------------------------------------------- purity and depth

REV_QUERIES = (rev_exists, rev_status, is_leaf, leaves_under, rev_ancestry, revs_info, is_deleted)
QUERIES = [
    lambda t: list(traverse_rev_tree(t)), collect_leaves, winning_rev, is_deleted, collect_conflicts,
    collect_deleted_conflicts, root_to_leaf, compact, copy_tree,
    lambda t: possible_ancestors(t, ["9-z"]),
    *(lambda t, q=q: q(t, "3-c") for q in REV_QUERIES),
]


@pytest.mark.parametrize("make_tree", TREES)
@pytest.mark.parametrize("query", QUERIES)
def test_queries_leave_the_tree_unchanged(make_tree: Any, query: Any) -> None:
    tree = make_tree()
    before = copy.deepcopy(tree)
    result = query(tree)
    assert tree == before
    # Whatever comes back must not alias the input: edit every dict in it.
    _scribble(result)
    assert tree == before


def _scribble(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            item["scribbled"] = True
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, Leaf):
            stack.append(item.opts)


def test_copy_tree_is_deep() -> None:
    tree = tree_conflicts()
    copied = copy_tree(tree)
    assert copied == tree
    copied[0]["ids"][2][0][2][0][1]["status"] = "missing"
    copied[0]["ids"][2].pop()
    assert tree == tree_conflicts()


def test_deep_chain_does_not_recurse() -> None:
    # 1500 revisions nest 3000 lists deep: beyond the default recursion limit.
    tree = chain(1500)
    assert winning_rev(tree) == "1500-h1500"
    ancestry = rev_ancestry(tree, "1500-h1500")
    assert ancestry is not None and len(ancestry) == 1500 and ancestry[-1] == "h1"
    assert len(root_to_leaf(tree)[0]["ids"]) == 1500
    assert leaves_under(tree, "1-h1") == ["1500-h1500"]
    assert len(revs_info(tree, "1500-h1500")) == 1500
    compacted, dropped = compact(copy_tree(tree))
    assert dropped == []       # chain() keeps ancestors missing already
    assert sum(1 for _ in traverse_rev_tree(compacted)) == 1500
