"""sync.merge: merging paths into revision trees, and stemming.

The tables port pouchdb's tests/unit/test.merge.js and CouchDB's
src/couch/test/eunit/couch_key_tree_tests.erl to pouchdb-merge's tree format.
"""
from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from sync.merge import MergeResult, merge, stem
from sync.revtree import collect_leaves, make_path, root_to_leaf, traverse_rev_tree, winning_rev

A = {"status": "available"}
M = {"status": "missing"}
D = {"status": "available", "deleted": True}


def node(rev_hash: str, *children: list[Any], opts: dict[str, Any] | None = None) -> list[Any]:
    return [rev_hash, {} if opts is None else dict(opts), list(children)]


def path(pos: int, root: list[Any]) -> dict[str, Any]:
    return {"pos": pos, "ids": root}


# --- pouchdb test.merge.js fixtures (opts are {} there) -----------------------------------
simple = path(1, node("1"))
two0 = path(1, node("1", node("2_0")))
two1 = path(1, node("1", node("2_1")))
newleaf = path(2, node("2_0", node("3")))
withnewleaf = path(1, node("1", node("2_0", node("3"))))
newbranch = path(1, node("1", node("2_0"), node("2_1")))
newdeepbranch = path(2, node("2_0", node("3_1")))
stemmededit = path(3, node("3"))
newbranchleaf = path(1, node("1", node("2_0", node("3")), node("2_1")))
newbranchleafbranch = path(1, node("1", node("2_0", node("3"), node("3_1")), node("2_1")))
stemmed2 = [path(1, node("1", node("2_1"))), path(2, node("2_0", node("3"), node("3_1")))]
stemmed3 = [path(2, node("2_1")), path(3, node("3")), path(3, node("3_1"))]
partialrecover = [path(1, node("1", node("2_0", node("3")))), path(2, node("2_1")), path(3, node("3_1"))]
one = path(1, node("1"))
two = path(1, node("2"))
three = path(1, node("3"))
two_child = path(1, node("1", node("1a", node("1aa"))))
two_child_sibs = path(1, node("1", node("1a"), node("1b")))
two_child_plus_sibs = path(1, node("1", node("1a", node("1aa")), node("1b")))
stemmed1b = path(2, node("1a"))
two_child_plus_sibs2 = path(1, node("1", node("1a"), node("1b", node("1bb"))))
stemmed1bb = path(3, node("1bb"))
stemmed_two_child_sibs2 = [path(2, node("1a")), path(2, node("1b", node("1bb")))]
stemmed1aa = path(3, node("1aa"))
stemmed1a = path(2, node("1a", node("1aa")))
one_child = path(1, node("1", node("1a")))
foo = path(1, node("foo", node("foo2"), node("foo3")))
bar = path(1, node("foo", node("foo3", node("foo4"))))
foo_bar = path(1, node("foo", node("foo2"), node("foo3", node("foo4"))))

POUCHDB_CASES = [
    # (name, tree, path, depth, expected tree, stemmed revs, conflicts)
    ("path into empty tree", [], simple, 10, [simple], [], "new_leaf"),
    ("remerge is reflexive", [simple], simple, 10, [simple], [], "internal_node"),
    ("multi-entry path into empty tree", [], two0, 10, [two0], [], "new_leaf"),
    ("multi-entry path is reflexive", [two0], two0, 10, [two0], [], "internal_node"),
    ("subpath into path", [two0], simple, 10, [two0], [], "internal_node"),
    ("new leaf", [two0], newleaf, 10, [withnewleaf], [], "new_leaf"),
    ("new branch", [two0], two1, 10, [newbranch], [], "new_branch"),
    ("merge order does not matter", [two1], two0, 10, [newbranch], [], "new_branch"),
    ("new leaf beside branches", [newbranch], newleaf, 10, [newbranchleaf], [], "new_leaf"),
    ("deep branch", [newbranchleaf], newdeepbranch, 10, [newbranchleafbranch], [], "new_branch"),
    ("reconnect stemming conflicts", [simple, stemmededit], withnewleaf, 10, [withnewleaf], [], "new_leaf"),
    ("simple stemming", [two0], newleaf, 2, [newleaf], ["1-1"], "new_leaf"),
    ("stemming with branches", [newbranchleafbranch], simple, 2, stemmed2, [], "internal_node"),
    ("stemming to leaves", [newbranchleafbranch], simple, 1, stemmed3, ["1-1", "2-2_0"], "internal_node"),
    ("unstemmed recovers", stemmed3, withnewleaf, 10, partialrecover, [], "internal_node"),
    # ---- pouchdb's port of CouchDB's kt-merging suite
    ("empty tree is identity", [], one, 10, [one], [], "new_leaf"),
    ("merging is reflexive", [one], one, 10, [one], [], "internal_node"),
    ("prefix of a tree", [one, two], one, 10, [one, two], [], "internal_node"),
    # pouchdb says "internal_node" for a new root; we follow couch_key_tree: "new_branch".
    ("third unrelated branch", [one, two], three, 10, [one, two, three], [], "new_branch"),
    ("two children reflexive", [two_child], two_child, 10, [two_child], [], "internal_node"),
    ("tree to itself", [two_child_sibs], two_child_sibs, 10, [two_child_sibs], [], "internal_node"),
    ("uneven length at node 2", [two_child], two_child_sibs, 10, [two_child_plus_sibs], [], "new_branch"),
    ("tree with a stem", [two_child_sibs], stemmed1b, 10, [two_child_sibs], [], "internal_node"),
    ("stem at a deeper level", [two_child_plus_sibs2], stemmed1bb, 10, [two_child_plus_sibs2], [],
     "internal_node"),
    ("stem against deeper paths", stemmed_two_child_sibs2, stemmed1bb, 10, stemmed_two_child_sibs2, [],
     "internal_node"),
    ("single tree, deeper stem", [two_child], stemmed1aa, 10, [two_child], [], "internal_node"),
    ("larger stem", [two_child], stemmed1a, 10, [two_child], [], "internal_node"),
    ("more merging", [stemmed1a], stemmed1aa, 10, [stemmed1a], [], "internal_node"),
    # pouchdb: "internal_node"; couch_key_tree (should_create_conflicts_on_merge): "new_branch".
    ("should create conflicts", [one_child], stemmed1aa, 10, [one_child, stemmed1aa], [], "new_branch"),
    ("should have no conflicts", [one_child, stemmed1aa], two_child, 10, [two_child], [], "new_leaf"),
    ("trees with conflicts", [foo], bar, 10, [foo_bar], [], "new_leaf"),
]


@pytest.mark.parametrize("name, tree, incoming, depth, expected, stemmed_revs, conflicts", POUCHDB_CASES,
                         ids=[case[0] for case in POUCHDB_CASES])
def test_pouchdb_merge_cases(name: str, tree: list[Any], incoming: dict[str, Any], depth: int,
                             expected: list[Any], stemmed_revs: list[str], conflicts: str) -> None:
    tree_before, path_before = copy.deepcopy(tree), copy.deepcopy(incoming)
    result = merge(tree, incoming, depth)
    assert result == MergeResult(expected, stemmed_revs, conflicts)
    assert tree == tree_before and incoming == path_before
    _assert_unshared(result.tree, tree, incoming)


# --- couch_key_tree_tests.erl: values "foo"/"bar"/"valN" are bodies, [] is ?REV_MISSING -----

def a(rev_hash: str, *children: list[Any]) -> list[Any]:
    return node(rev_hash, *children, opts=A)


def m(rev_hash: str, *children: list[Any]) -> list[Any]:
    return node(rev_hash, *children, opts=M)


c_one = path(1, a("1"))
c_two_sibs = [path(1, a("1")), path(1, a("2"))]
c_three_sibs = [path(1, a("1")), path(1, a("2")), path(1, a("3"))]
c_two_child = path(1, a("1", a("1a", a("1aa"))))
c_two_child_sibs = path(1, a("1", a("1a"), a("1b")))
c_two_child_plus_sibs = path(1, a("1", a("1a", a("1aa")), a("1b")))
c_two_child_sibs_deep = path(1, a("1", a("1a"), a("1b", a("1bb"))))
c_stemmed_sibs = [path(2, a("1a")), path(2, a("1b", a("1bb")))]
c_one_child = path(1, a("1", a("1a")))
c_stemmed_1aa = path(3, a("1aa"))
c_stemmed_1a = path(2, a("1a", a("1aa")))

COUCH_CASES = [
    ("should_merge_with_empty_tree", [], c_one, [c_one], "new_leaf"),
    ("should_merge_reflexive", [c_one], c_one, [c_one], "internal_node"),
    ("should_merge_prefix_of_a_tree_with_tree", c_two_sibs, c_one, c_two_sibs, "internal_node"),
    ("should_produce_conflict_on_merge_with_unrelated_branch", c_two_sibs, path(1, a("3")), c_three_sibs,
     "new_branch"),
    ("should_merge_reflexive_for_child_nodes", [c_two_child], c_two_child, [c_two_child], "internal_node"),
    ("should_merge_tree_of_odd_length", [c_two_child_sibs], c_two_child, [c_two_child_plus_sibs], "new_leaf"),
    ("should_merge_tree_with_stem", [c_two_child_sibs], path(2, a("1a")), [c_two_child_sibs],
     "internal_node"),
    ("should_merge_with_stem_at_deeper_level", [c_two_child_sibs_deep], path(3, a("1bb")),
     [c_two_child_sibs_deep], "internal_node"),
    ("should_merge_with_stem_at_deeper_level_with_deeper_paths", c_stemmed_sibs, path(3, a("1bb")),
     c_stemmed_sibs, "internal_node"),
    ("should_merge_single_tree_with_deeper_stem", [c_two_child], c_stemmed_1aa, [c_two_child],
     "internal_node"),
    ("should_merge_tree_with_large_stem", [c_two_child], c_stemmed_1a, [c_two_child], "internal_node"),
    ("should_merge_stems", [c_stemmed_1a], c_stemmed_1aa, [c_stemmed_1a], "internal_node"),
    ("should_create_conflicts_on_merge", [c_one_child], c_stemmed_1aa, [c_one_child, c_stemmed_1aa],
     "new_branch"),
    ("should_create_no_conflicts_on_merge", [c_one_child, c_stemmed_1aa], c_two_child, [c_two_child],
     "new_leaf"),
    # COUCHDB-902: the path's ancestors are ?REV_MISSING; the bodies we hold are kept.
    ("should_ignore_conflicting_branch", [path(1, a("foo", a("foo2"), a("foo3")))],
     path(1, m("foo", m("foo3", a("foo4")))), [path(1, a("foo", a("foo2"), a("foo3", a("foo4"))))],
     "new_leaf"),
]


@pytest.mark.parametrize("name, tree, incoming, expected, conflicts", COUCH_CASES,
                         ids=[case[0] for case in COUCH_CASES])
def test_couch_key_tree_merge_cases(name: str, tree: list[Any], incoming: dict[str, Any],
                                    expected: list[Any], conflicts: str) -> None:
    tree_before, path_before = copy.deepcopy(tree), copy.deepcopy(incoming)
    result = merge(tree, incoming, 10)       # merge_and_stem with ?DEPTH = 10
    assert (result.tree, result.conflicts, result.stemmed_revs) == (expected, conflicts, [])
    assert tree == tree_before and incoming == path_before
    _assert_unshared(result.tree, tree, incoming)


def test_couch_should_merge_tree_to_itself() -> None:
    # Each leaf's path, ancestors marked missing, folds back in as an internal node.
    tree = [c_two_child_sibs]
    for leaf_path in root_to_leaf(tree):
        ids = [leaf_hash for leaf_hash, _ in reversed(leaf_path["ids"])]
        incoming = make_path({"start": leaf_path["pos"] + len(ids) - 1, "ids": ids}, A)
        result = merge(tree, incoming, 10)
        assert (result.tree, result.conflicts) == ([c_two_child_sibs], "internal_node")
        tree = result.tree


# Outcomes where pouchdb's merge.js judges from the path's side; found by comparing this
# module with pouchdb-merge 9.0.0 on random histories. Trees and stemming agree.
OUTCOME_CASES = [
    ("ancestors prepended to a stemmed root (pouchdb: new_leaf)",
     [path(2, m("r1", a("r2", a("r3"))))], {"start": 2, "ids": ["r1", "r0"]},
     [path(1, m("r0", a("r1", a("r2", a("r3")))))], "internal_node"),
    ("known leaf under a stemmed root (pouchdb: new_branch)",
     [path(2, a("r1", a("r4"), a("r5")))], {"start": 3, "ids": ["r4", "r1", "r0"]},
     [path(1, m("r0", a("r1", a("r4"), a("r5"))))], "internal_node"),
    ("reconnect and add a sibling leaf (pouchdb and CouchDB: new_leaf)",
     [path(1, a("r0")), path(3, a("r2", a("r4")))], {"start": 4, "ids": ["r3", "r2", "r1", "r0"]},
     [path(1, a("r0", m("r1", a("r2", a("r3"), a("r4")))))], "new_branch"),
    ("extend a leaf below a deeper root (pouchdb: internal_node)",
     [path(2, a("r2", a("r3")))], {"start": 5, "ids": ["r5", "r4", "r3", "r2", "r0"]},
     [path(1, m("r0", a("r2", a("r3", m("r4", a("r5"))))))], "new_leaf"),
]


@pytest.mark.parametrize("name, tree, revisions, expected, conflicts", OUTCOME_CASES,
                         ids=[case[0] for case in OUTCOME_CASES])
def test_outcome_is_judged_from_the_tree(name: str, tree: list[Any], revisions: dict[str, Any],
                                         expected: list[Any], conflicts: str) -> None:
    assert merge(tree, make_path(revisions, A), 10) == MergeResult(expected, [], conflicts)


# --- stemming --------------------------------------------------------------------------------

STEM_CASES = [
    # couch_key_tree_tests stemming (positions shifted by +1)
    ("more levels than exist", [c_two_child], 3, [c_two_child], []),
    ("one deepest node", [c_two_child], 1, [path(3, a("1aa"))], ["1-1", "2-1a"]),
    ("two deepest nodes", [c_two_child], 2, [path(2, a("1a", a("1aa")))], ["1-1"]),
    # a node cut from a long branch survives through a short one
    ("short sibling keeps the root", [path(1, a("p", a("l1"), a("x", a("y", a("z", a("l2"))))))], 2,
     [path(1, a("p", a("l1"))), path(4, a("z", a("l2")))], ["2-x", "3-y"]),
    # every root-to-leaf path ends up within depth, even when no revision is dropped
    ("split without dropping", [path(1, a("p", a("n", a("l1"), a("a", a("b", a("l2"))))))], 3,
     [path(1, a("p", a("n", a("l1")))), path(3, a("a", a("b", a("l2"))))], []),
    # pouchdb would leave 2-r2 twice (as a root, and under 1-r0); a revision kept by one
    # path is joined to the branch that another path cut, as couch_key_tree does.
    ("overlapping branches stay joined", [path(1, a("r0", a("r2", a("r6", a("r9")), a("r8"))))], 3,
     [path(1, a("r0", a("r2", a("r6", a("r9")), a("r8"))))], []),
    ("overlap, one revision dropped", [path(1, a("r0", a("r2", a("r6", a("r9", a("rx"))), a("r8"))))], 3,
     [path(1, a("r0", a("r2", a("r8")))), path(3, a("r6", a("r9", a("rx"))))], []),
    ("duplicate roots are joined", [path(2, a("b", a("c"))), path(2, a("b", a("d")))], 5,
     [path(2, a("b", a("c"), a("d")))], []),
    ("empty tree", [], 3, [], []),
]


@pytest.mark.parametrize("name, tree, depth, expected, stemmed_revs", STEM_CASES,
                         ids=[case[0] for case in STEM_CASES])
def test_stem(name: str, tree: list[Any], depth: int, expected: list[Any], stemmed_revs: list[str]) -> None:
    before = copy.deepcopy(tree)
    assert stem(tree, depth) == (expected, stemmed_revs)
    assert tree == before
    _assert_unshared(stem(tree, depth)[0], tree)


@pytest.mark.parametrize("depth", [0, -1, 1.5, True, None])
def test_depth_must_be_a_positive_int(depth: Any) -> None:
    with pytest.raises(ValueError):
        stem([c_one], depth)
    with pytest.raises(ValueError):
        merge([c_one], c_one, depth)


# --- node opts: a body we hold is never forgotten, and a body that arrives is learnt ---------

@pytest.mark.parametrize("ours, theirs, merged", [
    (A, M, A),
    (M, A, A),
    (M, D, D),                                      # the flag comes with the body
    (A, D, A),                                      # same rev id: we keep what we hold
    (M, M, M),
    ({"status": "missing", "deleted": True}, M, {"status": "missing", "deleted": True}),
    ({}, M, M),
    ({}, {}, {}),
])
def test_opts_merge(ours: dict[str, Any], theirs: dict[str, Any], merged: dict[str, Any]) -> None:
    tree = [path(1, node("r", node("leaf", opts=A), opts=ours))]
    result = merge(tree, path(1, node("r", opts=theirs)), 10)
    assert result.tree == [path(1, node("r", node("leaf", opts=A), opts=merged))]
    assert result.conflicts == "internal_node"


def test_missing_ancestor_becomes_available() -> None:
    tree = [make_path({"start": 3, "ids": ["c", "b", "a"]}, A)]
    result = merge(tree, make_path({"start": 2, "ids": ["b", "a"]}, A), 10)
    assert result.tree == [path(1, m("a", a("b", a("c"))))]


# --- replication scenarios (new_edits=false) ------------------------------------------------

def test_replication_scenario() -> None:
    tree: list[Any] = []
    steps = [
        ({"start": 3, "ids": ["c", "b", "a"]}, A, "new_leaf", ["3-c"]),
        ({"start": 3, "ids": ["c2", "b2", "a"]}, A, "new_branch", ["3-c2", "3-c"]),
        ({"start": 3, "ids": ["c2", "b2", "a"]}, A, "internal_node", ["3-c2", "3-c"]),
        ({"start": 4, "ids": ["d", "c"]}, D, "new_leaf", ["4-d", "3-c2"]),
        ({"start": 2, "ids": ["b", "a"]}, A, "internal_node", ["4-d", "3-c2"]),
        ({"start": 1, "ids": ["z"]}, A, "new_branch", ["4-d", "3-c2", "1-z"]),
    ]
    for revisions, opts, conflicts, leaves in steps:
        result = merge(tree, make_path(revisions, opts), 1000)
        assert result.conflicts == conflicts
        assert [leaf.rev for leaf in collect_leaves(result.tree)] == leaves
        tree = result.tree
    assert winning_rev(tree) == "3-c2"          # 4-d is a deletion
    assert tree == [path(1, m("a", a("b", a("c", node("d", opts=D))), m("b2", a("c2")))),
                    path(1, a("z"))]


def test_graft_and_reconnect_in_one_merge() -> None:
    # The path extends 1-1 ─ 2-2a and also holds the root of the stemmed branch 4-4.
    tree = [path(1, a("1", a("2a"))), path(4, a("4"))]
    result = merge(tree, make_path({"start": 5, "ids": ["5", "4", "3", "2a"]}, A), 10)
    assert result.tree == [path(1, a("1", a("2a", m("3", a("4", a("5"))))))]
    assert result.conflicts == "new_leaf"
    keys = [(pos, h) for _, pos, h, _ in traverse_rev_tree(result.tree)]
    assert len(keys) == len(set(keys)) == 5


def test_revs_limit_stems_and_reports() -> None:
    tree = [make_path({"start": 3, "ids": ["c", "b", "a"]}, A)]
    result = merge(tree, make_path({"start": 5, "ids": ["e", "d", "c"]}, A), 3)
    assert result == MergeResult([path(3, a("c", m("d", a("e"))))], ["1-a", "2-b"], "new_leaf")


def test_deep_chain_merges_without_recursion() -> None:
    ids = [f"h{i}" for i in range(1500, 0, -1)]
    tree = [make_path({"start": 1500, "ids": ids}, A)]
    result = merge(tree, make_path({"start": 1501, "ids": ["next", "h1500"]}, A), 1000)
    assert result.conflicts == "new_leaf"
    assert result.stemmed_revs == [f"{i}-h{i}" for i in range(1, 502)]
    assert result.tree[0]["pos"] == 502
    assert winning_rev(result.tree) == "1501-next"


# --- properties on random histories ----------------------------------------------------------

def _random_history(rng: random.Random, size: int) -> list[tuple[int, str, int | None]]:
    """A random consistent history: (pos, hash, parent index) per revision."""
    nodes: list[tuple[int, str, int | None]] = [(1, "r0", None)]
    for i in range(1, size):
        parent = rng.randrange(len(nodes)) if rng.random() < 0.9 else None
        pos = 1 if parent is None else nodes[parent][0] + 1
        nodes.append((pos, f"r{i}", parent))
    return nodes


def _random_paths(rng: random.Random, nodes: list[tuple[int, str, int | None]]) -> list[dict[str, Any]]:
    """_revisions of random revisions, some cut short as a stemmed peer would send them."""
    paths = []
    for _ in range(len(nodes)):
        index: int | None = rng.randrange(len(nodes))
        ids = []
        while index is not None:
            ids.append(nodes[index][1])
            index = nodes[index][2]
        ids = ids[:rng.randint(1, len(ids))]
        paths.append({"start": nodes[int(ids[0][1:])][0], "ids": ids})
    return paths


@pytest.mark.parametrize("seed", range(40))
def test_merge_order_does_not_matter(seed: int) -> None:
    rng = random.Random(seed)
    history = _random_history(rng, rng.randint(2, 14))
    revisions = _random_paths(rng, history)
    trees = []
    for _ in range(3):
        rng.shuffle(revisions)
        tree: list[Any] = []
        for rev in revisions:
            tree = merge(tree, make_path(rev, A), 1000).tree
        trees.append(tree)
    assert trees[0] == trees[1] == trees[2]
    keys = [(pos, h) for _, pos, h, _ in traverse_rev_tree(trees[0])]
    assert len(keys) == len(set(keys))
    # Every revision sits at its own position, under its own parent when that is known.
    for tree_path in root_to_leaf(trees[0]):
        for offset, (rev_hash, _) in enumerate(tree_path["ids"]):
            pos, _, parent = history[int(rev_hash[1:])]
            assert pos == tree_path["pos"] + offset
            if offset:
                assert parent is not None and history[parent][1] == tree_path["ids"][offset - 1][0]


@pytest.mark.parametrize("seed", range(40))
def test_merge_invariants_with_stemming(seed: int) -> None:
    rng = random.Random(1000 + seed)
    revisions = _random_paths(rng, _random_history(rng, rng.randint(2, 14)))
    depth = rng.randint(1, 4)
    tree: list[Any] = []
    for rev in revisions:
        before = copy.deepcopy(tree)
        result = merge(tree, make_path(rev, A), depth)
        assert tree == before
        tree = result.tree
        _assert_within_depth(tree, depth)
        keys = [(pos, h) for _, pos, h, _ in traverse_rev_tree(tree)]
        assert len(keys) == len(set(keys))
        assert not set(result.stemmed_revs) & {f"{pos}-{h}" for pos, h in keys}
        for _, _, _, children_sorted in _sortedness(tree):
            assert children_sorted
        # Merging a path of the result again changes nothing.
        again = merge(tree, make_path(_leaf_revisions(tree), A), depth)
        assert (again.tree, again.conflicts) == (tree, "internal_node")


def _assert_within_depth(tree: list[Any], depth: int) -> None:
    """Every revision is among the newest ``depth`` of some root-to-leaf path."""
    newest = {(p["pos"] + i, h) for p in root_to_leaf(tree)
              for i, (h, _) in enumerate(p["ids"]) if i >= len(p["ids"]) - depth}
    assert newest == {(pos, h) for _, pos, h, _ in traverse_rev_tree(tree)}


def _leaf_revisions(tree: list[Any]) -> dict[str, Any]:
    first = root_to_leaf(tree)[0]
    return {"start": first["pos"] + len(first["ids"]) - 1, "ids": [h for h, _ in reversed(first["ids"])]}


def _sortedness(tree: list[Any]) -> list[tuple[int, str, int, bool]]:
    out = []
    stack = [(p["pos"], p["ids"]) for p in tree]
    while stack:
        pos, current = stack.pop()
        hashes = [child[0] for child in current[2]]
        out.append((pos, current[0], len(hashes), hashes == sorted(hashes)))
        stack.extend((pos + 1, child) for child in current[2])
    return out


def _assert_unshared(result: list[Any], *inputs: Any) -> None:
    """No list or dict of the result is an object of the inputs."""
    def ids(value: Any) -> set[int]:
        found, stack = set(), [value]
        while stack:
            item = stack.pop()
            if isinstance(item, (list, dict)):
                found.add(id(item))
                stack.extend(item.values() if isinstance(item, dict) else item)
        return found
    assert not ids(result) & ids(list(inputs))
