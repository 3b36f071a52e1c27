"""What the lossy-link test checks after the devices are done: the peer, the central records, the figures."""
from __future__ import annotations

from typing import Any

from bench.lossy import table
from bench.lossylink import LinkSet
from bench.lossyscenario import DB_NAME, DeviceRun, Plan
from sync.records.worker import rebuild, run_once, snapshot, status

Json = dict[str, Any]


def assert_peer_matches(peer: Json, state: dict[str, Json], plan: Plan) -> None:
    """The peer holds exactly its village's live visits, each with the server's winner and body."""
    rows = peer["dbs"]["local"]["rows"]
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)), "a document twice on the peer"
    live = {doc_id for doc_id, entry in state.items() if doc_id.startswith("p-") and not entry["deleted"]}
    assert set(ids) == live
    assert state["p-old-0"]["deleted"]  # the peer's deletion arrived
    assert len(live) == plan.up + plan.down + plan.shared + 1  # and the supervisor's last visit
    for row in rows:
        # Same rev, body and (no) _conflicts.
        assert row["doc"] == state[row["id"]]["winner"], (row["doc"], state[row["id"]])
    for i in range(plan.shared):
        leaves = state[f"p-both-{i}"]["leaves"]
        assert len(leaves) >= 2, leaves  # both sides' edits reached the server as a conflict...
        assert "_conflicts" not in state[f"p-both-{i}"]["winner"]  # ...which the worker merged


def assert_central_rows_rebuild(state: dict[str, Json]) -> None:
    """The central visit rows are the server's live visits, and equal a rebuild row for row (app context)."""
    run_once(DB_NAME)
    assert status(DB_NAME)["pending"] == 0
    incremental = snapshot(DB_NAME)
    live = {doc_id for doc_id, entry in state.items() if not entry["deleted"]}
    rows = {row["doc_id"]: row for row in incremental["visit"] if not row["deleted"]}
    assert set(rows) == live
    for doc_id, row in rows.items():  # each row projected from the winner both sides hold
        assert row["rev"] == state[doc_id]["winner"]["_rev"], doc_id
    assert len(incremental["visit"]) == len({row["doc_id"] for row in incremental["visit"]})  # nothing twice
    rebuild(DB_NAME)
    assert snapshot(DB_NAME) == incremental


def print_figures(links: LinkSet, plan: Plan, runs: tuple[DeviceRun, ...]) -> str:
    """The bytes-on-the-wire table, with the links it was measured on."""
    return f"bytes on the wire ({links.describe()}):\n{table(plan, runs)}"
