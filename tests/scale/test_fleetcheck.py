"""The fleet's checks (bench/fleetcheck.py) catch what they are there to catch, on small hand-made states."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from bench.fleetcheck import device_state, differences, feed_misses, live_conflicts, row_key
from bench.fleetdevice import FAST, PIN
from sync.device import DeviceStore

Json = dict[str, Any]


def leaf(rev: str, deleted: bool = False, **body: Any) -> Json:
    doc: Json = {"_id": "d1", "_rev": rev, "_revisions": {"start": int(rev[0]), "ids": [rev[2:]]}, **body}
    if deleted:
        doc["_deleted"] = True
    return doc


SERVER: dict[str, Json] = {
    "d1": {"deleted": False, "leaves": {"2-b": leaf("2-b", phone="+254 700 000001")},
           "winner": {"_id": "d1", "_rev": "2-b", "phone": "+254 700 000001"}},
    "d2": {"deleted": True, "leaves": {"3-c": leaf("3-c", deleted=True)}, "winner": None},
}


def changed(path: list[str], value: Any) -> dict[str, Json]:
    """A copy of SERVER with one value replaced."""
    state = copy.deepcopy(SERVER)
    target = state
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return state


@pytest.mark.parametrize("replica, found", [
    (SERVER, []),
    ({"d1": SERVER["d1"]}, ["t: lacks d2"]),
    ({**SERVER, "d3": SERVER["d2"]}, ["t: holds d3, which the server does not show it"]),
    (changed(["d2", "deleted"], False), ["t: d2 deleted=False, server True"]),
    (changed(["d1", "leaves"], {"2-b": SERVER["d1"]["leaves"]["2-b"], "2-a": leaf("2-a")}),
     ["t: d1 leaves ['2-a', '2-b'], server ['2-b']"]),
    (changed(["d1", "leaves", "2-b", "phone"], "+254 700 000002"), ["t: d1 leaf bodies differ"]),
    (changed(["d1", "winner", "_conflicts"], ["2-a"]), ["t: d1 winner"]),
])
def test_differences_name_each_kind_of_divergence(replica: dict[str, Json], found: list[str]) -> None:
    got = differences(SERVER, replica, "t")
    assert [g[:len(f)] for g, f in zip(got, found)] == found and len(got) == len(found), got


def test_live_conflicts_counts_live_leaves_only() -> None:
    state = changed(["d1", "leaves"], {"2-b": leaf("2-b"), "2-a": leaf("2-a", deleted=True)})
    assert live_conflicts(state) == []
    state["d1"]["leaves"]["2-c"] = leaf("2-c")
    assert live_conflicts(state) == ["d1"]


def test_feed_misses_catch_a_skipped_or_stale_row() -> None:
    full = [{"seq": 4, "id": "a", "changes": [{"rev": "1-x"}]},
            {"seq": 7, "id": "b", "changes": [{"rev": "2-y"}, {"rev": "2-z"}], "deleted": True}]
    seen = {row["id"]: row_key(row) for row in full}
    assert feed_misses(full, seen) == []
    assert len(feed_misses(full, {"a": seen["a"]})) == 1  # b was skipped
    assert len(feed_misses(full, {**seen, "b": (5, ("2-y",), False)})) == 1  # b seen at an older change only
    assert len(feed_misses(full, {**seen, "c": (6, ("1-q",), False)})) == 1  # a row no full read lists


def test_device_state_reads_leaves_and_winner_of_a_store(tmp_path: Path) -> None:
    with DeviceStore.create(str(tmp_path / "t.sqlite"), PIN, kdf_params=FAST, db_name="records") as store:
        rev = store.put({"_id": "d1", "type": "household", "name": "A"})
        gone = store.put({"_id": "d2", "type": "household", "name": "B"})
        store.delete("d2", gone)
        state = device_state(store)
    assert sorted(state) == ["d1", "d2"]
    assert state["d1"]["winner"] == {"_id": "d1", "_rev": rev, "type": "household", "name": "A"}
    assert state["d1"]["leaves"][rev]["_revisions"] == {"start": 1, "ids": [rev[2:]]}
    assert state["d2"]["deleted"] and state["d2"]["winner"] is None
    assert list(state["d2"]["leaves"].values())[0]["_deleted"] is True
