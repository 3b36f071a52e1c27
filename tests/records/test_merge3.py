"""The field-level three-way merge (sync.records.merge3): rule tables, then properties."""
from __future__ import annotations

import ast
import itertools
import json
import pathlib
import sys
from datetime import timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.records.merge3 import Leaf, merge3, merge_set, parse_time

T0, T1, T2, T3 = ("2026-03-01T08:00:00Z", "2026-03-02T08:00:00Z", "2026-03-03T08:00:00+00:00",
                  "2026-03-04T08:00:00Z")
BASE = {"type": "patient", "area": "north/d1", "given_name": "Amina", "sex": "female", "phone": "+254 700 000001",
        "consent": {"share_with_partners": False}, "chronic_conditions": ["hypertension"],
        "updated_at": T0, "updated_by": "chw0"}


def edit(rev: str, when: str | None, by: str, base: dict[str, Any] | None = None, drop: tuple[str, ...] = (),
         **fields: Any) -> Leaf:
    """A leaf: ``base`` (BASE by default) with ``fields`` set and ``drop`` removed."""
    body = {k: v for k, v in {**(BASE if base is None else base), **fields}.items() if k not in drop}
    body.update({"updated_at": when, "updated_by": by})
    if when is None:
        del body["updated_at"]
    return Leaf.of(rev, body)


# (name, ancestor, leaves, expected changes against BASE in the merged body, conflicts: {field: picked rev})
CASES = [
    ("different fields merge", BASE,
     [edit("2-a", T1, "chw1", phone="+254 700 000002"), edit("2-b", T2, "chw2", given_name="Aminah")],
     {"phone": "+254 700 000002", "given_name": "Aminah", "updated_at": T2, "updated_by": "chw2"}, {}),
    ("same field: the later updated_at wins", BASE,
     [edit("3-f", T2, "chw1", phone="+254 700 000002"), edit("2-a", T3, "chw2", phone="+254 700 000003")],
     {"phone": "+254 700 000003", "updated_at": T3, "updated_by": "chw2"}, {"phone": "2-a"}),
    ("offsets are instants: 10:00+03:00 is before 08:00Z", BASE,
     [edit("2-a", "2026-03-02T10:00:00+03:00", "chw1", phone="1"),
      edit("2-b", "2026-03-02T08:00:00Z", "chw2", phone="2")],
     {"phone": "2", "updated_at": "2026-03-02T08:00:00Z", "updated_by": "chw2"}, {"phone": "2-b"}),
    ("same instant: the higher rank wins (longer branch)", BASE,
     [edit("3-a", T1, "chw1", phone="1"), edit("2-f", "2026-03-02T11:00:00+03:00", "chw2", phone="2")],
     {"phone": "1", "updated_at": T1, "updated_by": "chw1"}, {"phone": "3-a"}),
    ("same instant, same length: the higher hash wins", BASE,
     [edit("2-a", T1, "chw1", phone="1"), edit("2-b", T1, "chw2", phone="2")],
     {"phone": "2", "updated_at": T1, "updated_by": "chw2"}, {"phone": "2-b"}),
    ("a missing or unparsable updated_at loses to a valid one", BASE,
     [edit("9-z", None, "chw1", phone="1"), edit("8-z", "yesterday", "chw3", sex="male"),
      edit("2-a", T1, "chw2", phone="2")],
     {"phone": "2", "sex": "male", "updated_at": T1, "updated_by": "chw2"}, {"phone": "2-a"}),
    ("removal is a change, merged with other fields", BASE,
     [edit("2-a", T1, "chw1", drop=("phone",)), edit("2-b", T2, "chw2", given_name="Aminah")],
     {"phone": None, "given_name": "Aminah", "updated_at": T2, "updated_by": "chw2"}, {}),
    ("removal against an edit of the same field: the later one wins", BASE,
     [edit("2-a", T2, "chw1", drop=("phone",)), edit("2-b", T1, "chw2", phone="2")],
     {"phone": None, "updated_at": T2, "updated_by": "chw1"}, {"phone": "2-a"}),
    ("nested objects merge key by key", {**BASE, "gps": {"lat": 1.0, "lon": 2.0, "accuracy_m": 10}},
     [edit("2-a", T1, "chw1", base={**BASE, "gps": {"lat": 1.0, "lon": 2.0, "accuracy_m": 10}},
           gps={"lat": 1.5, "lon": 2.0, "accuracy_m": 10}),
      edit("2-b", T2, "chw2", base={**BASE, "gps": {"lat": 1.0, "lon": 2.0, "accuracy_m": 10}},
           gps={"lat": 1.0, "lon": 2.5, "accuracy_m": 5})],
     {"gps": {"lat": 1.5, "lon": 2.5, "accuracy_m": 5}, "updated_at": T2, "updated_by": "chw2"}, {}),
    ("nested conflict names the dotted field", BASE,
     [edit("2-a", T3, "chw1", consent={"share_with_partners": True}),
      edit("2-b", T2, "chw2", consent={"share_with_partners": None})],
     {"consent": {"share_with_partners": True}, "updated_at": T3, "updated_by": "chw1"},
     {"consent.share_with_partners": "2-a"}),
    ("sets: adds and removes of several branches", {**BASE, "chronic_conditions": ["hypertension", "asthma"]},
     [edit("2-a", T1, "chw1", chronic_conditions=["hypertension", "diabetes"]),
      edit("2-b", T2, "chw2", chronic_conditions=["asthma", "hiv", "hypertension"]),
      edit("2-c", T3, "chw3", chronic_conditions=["hypertension", "asthma", "copd"])],
     {"chronic_conditions": ["hypertension", "copd", "diabetes", "hiv"], "updated_at": T3, "updated_by": "chw3"},
     {}),
    ("three branches, three fields, one conflict", BASE,
     [edit("2-a", T1, "chw1", phone="1", given_name="Amina B."), edit("2-b", T2, "chw2", phone="2"),
      edit("2-c", T0, "chw3", sex="unknown")],
     {"phone": "2", "given_name": "Amina B.", "sex": "unknown", "updated_at": T2, "updated_by": "chw2"},
     {"phone": "2-b"}),
    ("no ancestor: fields in one leaf are kept, differing ones conflict, sets unite", None,
     [edit("1-a", T1, "chw1", phone="1", national_id="X1", chronic_conditions=["asthma"]),
      edit("1-b", T2, "chw2", phone="2", chronic_conditions=["hiv"])],
     {"phone": "2", "national_id": "X1", "chronic_conditions": ["asthma", "hiv"], "updated_at": T2,
      "updated_by": "chw2"}, {"phone": "1-b"}),
    ("attachments merge per name, each entry whole", {**BASE, "_attachments": {"p.jpg": {"digest": "md5-A"}}},
     [edit("2-a", T2, "chw1", base={**BASE, "_attachments": {"p.jpg": {"digest": "md5-A"}}},
           _attachments={"p.jpg": {"digest": "md5-B", "revpos": 2}, "q.jpg": {"digest": "md5-Q"}}),
      edit("2-b", T1, "chw2", base={**BASE, "_attachments": {"p.jpg": {"digest": "md5-A"}}},
           _attachments={"p.jpg": {"digest": "md5-C"}})],
     {"_attachments": {"p.jpg": {"digest": "md5-B", "revpos": 2}, "q.jpg": {"digest": "md5-Q"}},
      "updated_at": T2, "updated_by": "chw1"}, {"_attachments.p.jpg": "2-a"}),
]


@pytest.mark.parametrize("name, ancestor, leaves, changes, conflicts", CASES, ids=[c[0] for c in CASES])
def test_merge3_rules(name: str, ancestor: dict[str, Any] | None, leaves: list[Leaf], changes: dict[str, Any],
                      conflicts: dict[str, str]) -> None:
    expected = {k: v for k, v in {**BASE, **changes}.items() if v is not None}
    outcome = merge3(ancestor, leaves)
    assert outcome.body == expected
    assert {c.field: c.picked_rev for c in outcome.conflicts} == conflicts
    for conflict in outcome.conflicts:
        assert sorted(v["rev"] for v in conflict.values) == sorted(leaf.rev for leaf in leaves)


def test_merge3_reports_every_leafs_value_time_and_author() -> None:
    a = edit("2-a", T1, "chw1", phone="1")
    b = edit("2-b", T2, "chw2", drop=("phone",))
    c = edit("2-c", T0, "chw3", sex="male")
    [conflict] = merge3(BASE, [a, b, c]).conflicts
    assert conflict.path == ("phone",) and conflict.picked_rev == "2-b"
    assert conflict.values == [
        {"rev": "2-c", "value": BASE["phone"], "updated_at": T0, "updated_by": "chw3"},
        {"rev": "2-b", "value": None, "updated_at": T2, "updated_by": "chw2", "removed": True},
        {"rev": "2-a", "value": "1", "updated_at": T1, "updated_by": "chw1"},
    ]


def test_merge3_leaves_its_inputs_alone() -> None:
    ancestor = json.loads(json.dumps(BASE))
    leaves = [edit("2-a", T1, "chw1", consent={"share_with_partners": True}), edit("2-b", T2, "chw2", phone="9")]
    before = json.dumps([ancestor, [leaf.body for leaf in leaves]])
    merge3(ancestor, leaves).body["consent"]["share_with_partners"] = "mutated"
    assert json.dumps([ancestor, [leaf.body for leaf in leaves]]) == before


@pytest.mark.parametrize("stamp, expected", [
    ("2026-03-02T08:00:00Z", "2026-03-02T08:00:00+00:00"), ("2026-03-02t08:00:00z", "2026-03-02T08:00:00+00:00"),
    ("2026-03-02T10:30:00.250+02:30", "2026-03-02T08:00:00.250000+00:00"),
    ("2026-03-02T08:00:00", None), ("2026-03-02", None), ("soon", None), ("", None), (None, None), (17, None),
])
def test_parse_time_needs_an_offset(stamp: object, expected: str | None) -> None:
    parsed = parse_time(stamp)
    assert (None if parsed is None else parsed.astimezone(timezone.utc).isoformat()) == expected


@pytest.mark.parametrize("ancestor, lists, expected", [
    (["a", "b", "c"], [["a", "c"], ["a", "b", "c", "d"]], ["a", "c", "d"]),
    (["a", "a", "b"], [["b"], ["a", "b", "z", "z"]], ["b", "z"]),
    ([{"k": 1}], [[{"k": 1}, {"k": 2}], [{"k": 0}]], [{"k": 0}, {"k": 2}]),
])
def test_merge_set(ancestor: list[Any], lists: list[list[Any]], expected: list[Any]) -> None:
    assert merge_set(ancestor, lists) == expected
    assert merge_set(ancestor, lists[::-1]) == expected


def test_merge3_is_pure() -> None:
    source = pathlib.Path(__file__).resolve().parents[2] / "sync" / "records" / "merge3.py"
    imported = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported - set(sys.stdlib_module_names) == set()


# ---------------------------------------------------------------- properties
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["x", "y", "z", ""]))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3),
                   st.dictionaries(st.sampled_from(["lat", "lon", "k"]), SCALARS, max_size=3))
KEYS = st.sampled_from(["phone", "given_name", "gps", "consent", "chronic_conditions", "areas", "notes"])
BODIES = st.dictionaries(KEYS, VALUES, max_size=6)
STAMPS = st.one_of(st.none(), st.just("garbage"), st.sampled_from([T0, T1, T2, "2026-03-02T11:00:00+03:00"]))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[str, Any] | None, list[Leaf]]:
    """An ancestor (or None) and 1-4 leaves derived from it by random edits, with distinct revs."""
    ancestor = draw(st.one_of(st.none(), BODIES))
    count = draw(st.integers(1, 4))
    revs = draw(st.lists(st.tuples(st.integers(2, 4), st.sampled_from("abcdef")), min_size=count, max_size=count,
                         unique=True))
    leaves = []
    for pos, letter in revs:
        body = dict(ancestor or {})
        for key, value in draw(st.dictionaries(KEYS, st.one_of(VALUES, st.just("<drop>")), max_size=3)).items():
            if value == "<drop>":
                body.pop(key, None)
            else:
                body[key] = value
        stamp = draw(STAMPS)
        if stamp is not None:
            body["updated_at"] = stamp
        body["updated_by"] = f"chw-{letter}"
        leaves.append(Leaf.of(f"{pos}-{letter * 4}", body))
    return ancestor, leaves


def _dump(outcome: Any) -> str:
    return json.dumps([outcome.body, [(c.path, c.values, c.picked_rev) for c in outcome.conflicts],
                       outcome.newest_rev])


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.randoms())
def test_merge3_does_not_depend_on_leaf_order(scenario: tuple[Any, list[Leaf]], rnd: Any) -> None:
    ancestor, leaves = scenario
    shuffled = list(leaves)
    rnd.shuffle(shuffled)
    assert _dump(merge3(ancestor, shuffled)) == _dump(merge3(ancestor, leaves))  # byte-identical JSON


@settings(max_examples=40, deadline=None)
@given(scenarios())
def test_merge3_every_permutation_of_three_agrees(scenario: tuple[Any, list[Leaf]]) -> None:
    ancestor, leaves = scenario
    outcomes = {_dump(merge3(ancestor, list(order))) for order in itertools.permutations(leaves[:3])}
    assert len(outcomes) == 1


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_merging_a_leaf_with_itself_changes_nothing(scenario: tuple[Any, list[Leaf]]) -> None:
    ancestor, leaves = scenario
    leaf = leaves[0]
    assert merge3(ancestor, [leaf, leaf]).body == leaf.body
    twin = Leaf(leaf.rev[:-1] + "9", leaf.body, leaf.updated_at, (leaf.rank[0], leaf.rank[1] + "9"))
    outcome = merge3(ancestor, [leaf, twin])
    assert outcome.conflicts == [] and {k: v for k, v in outcome.body.items() if k != "updated_by"} == \
        {k: v for k, v in leaf.body.items() if k != "updated_by"}


@settings(max_examples=300, deadline=None)
@given(scenarios(), STAMPS)
def test_a_leaf_equal_to_the_ancestor_never_wins_a_conflict(scenario: tuple[Any, list[Leaf]],
                                                            stamp: str | None) -> None:
    ancestor, leaves = scenario
    unchanged = dict(ancestor or {})
    if stamp is not None:
        unchanged["updated_at"] = stamp  # even when its time is the latest
    outcome = merge3(unchanged, leaves + [Leaf.of("9-ffff", unchanged)])
    assert all(c.picked_rev != "9-ffff" for c in outcome.conflicts)
    # ... and merging the other leaves without it gives the same fields.
    alone = merge3(unchanged, leaves)
    assert {k: v for k, v in outcome.body.items() if k not in ("updated_at", "updated_by")} == \
        {k: v for k, v in alone.body.items() if k not in ("updated_at", "updated_by")}
