"""A hundred tablets sync at once with two Wasl servers (gunicorn, three workers each) sharing one PostgreSQL.

Eighty are the project's device client (encrypted store + replicator), twenty are stock
PouchDB 9 tablets in one node process; each is a CHW with a device token, in one of 25
villages, syncing with its home server and now and then with the other. They register
households and patients, record visits, edit the village's shared records (so tablets of one
village make conflicts that the worker resolves) and delete some of their own visits. After
a short run and a settling sync, bench/fleetrun.py checks: every tablet equals the server's
documents of its village (leaves, bodies, winners), nothing lost or invented, no live
conflict left, incremental change-feed readers on both servers missed nothing, the central
records equal a rebuild, nothing refused, no sync failed or retried, no server error.
The figures are printed (``-s``); bench/scale.py runs the same for minutes.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bench.fleet import Plan
from bench.fleetrun import run_fleet
from bench.scale import figures, table
from tests.pouch import require_peer

pytestmark = pytest.mark.pouchdb

PLAN = Plan(devices=100, pouch=20, villages=25, servers=2, workers=3, seconds=10)


def test_hundred_tablets_on_two_servers_converge(pg_fresh_url: str, tmp_path: Path) -> None:
    require_peer()
    outcome = run_fleet(PLAN, tmp_path, pg_fresh_url)
    print("\n" + table(figures(outcome)))

    assert outcome.problems == {"conflicts": [], "replicas": [], "feed": [], "central": [], "quarantine": [],
                                "syncs": [], "logs": []}
    # The run was what it claims: every tablet synced at least twice during the load, both kinds with both servers,
    # some tablets with both; conflicts were made and resolved; deletions happened.
    per_tablet = Counter(s.device for s in outcome.syncs)
    assert len(per_tablet) == PLAN.devices and min(per_tablet.values()) >= 2, per_tablet
    assert {(s.kind, s.server) for s in outcome.syncs} == {(k, n) for k in ("python", "pouchdb") for n in (0, 1)}
    servers_of = {name: {s.server for s in outcome.syncs if s.device == name} for name in per_tablet}
    assert sum(len(used) == 2 for used in servers_of.values()) >= 5
    # Every tablet worked at least once after its first sync, so each pushed at least one revision.
    accepted: Counter[str] = Counter()
    for s in outcome.syncs + outcome.settle_syncs:
        accepted[s.device] += s.pushed
    assert len(accepted) == PLAN.devices and min(accepted.values()) >= 1, accepted
    assert outcome.resolutions > 0 and outcome.deleted > 0
    assert outcome.documents > PLAN.villages * PLAN.households * 3
    assert outcome.central_rows >= outcome.documents - outcome.deleted
