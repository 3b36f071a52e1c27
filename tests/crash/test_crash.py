"""SIGKILL of a real gunicorn server and a real ``wasl worker``, many times, during pushes, pulls and merges.

Two tablets (the project's device client), a stock PouchDB 9 tablet, a supervisor merging
duplicate patients over the REST API and an incremental feed reader work through the kills
on SQLite and on PostgreSQL. Afterwards every acknowledged write is on the server, every
replica holds the server's documents and revisions, the feed reader missed nothing, and the
central records equal a rebuild. The kills and the figures are printed (docs/crash.md).
"""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.pouch import require_peer

from .scenario import Plan, run

pytestmark = pytest.mark.pouchdb

SERVER_KILLS = ["push", "pull", "checkpoint", "revs_diff", "pull"]
WORKER_KILLS = ["resolve", "project", "resolve", "project"]


def plan(seed: int) -> Plan:
    """The seeded plan: five server kill points in a seeded order (plus the first merge), four worker kills."""
    rng = random.Random(seed)
    server = list(SERVER_KILLS)
    rng.shuffle(server)
    return Plan(seed=seed, server=server, worker=list(WORKER_KILLS))


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_kills_lose_no_acknowledged_write(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    require_peer()
    url = f"sqlite:///{tmp_path}/wasl.sqlite" if engine == "sqlite" else request.getfixturevalue("pg_fresh_url")
    report = run(tmp_path, url, plan(seed=2026 if engine == "sqlite" else 7))
    print(report.summary())
    kinds = {k.kind for k in report.kills}
    # The kills landed where the plan put them: inside pushes, pulls, a checkpoint, a merge, a resolution.
    assert {"push", "pull", "checkpoint", "merge", "resolve", "project"} <= kinds, [k.line() for k in report.kills]
    assert len(report.kills) >= 10
    assert report.by_actor["amina"] and report.by_actor["baraka"] and report.by_actor["chausiku"]
    assert report.peer_pushes > 0, "the PouchDB peer never completed a push between kills"
    assert report.resolutions > 0
