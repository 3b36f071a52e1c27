"""Replication over a link that drops, stalls, truncates and refuses: it must converge anyway."""
from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from sync.remote import RemoteDatabase
from sync.replicator import ReplicationResult, replicate, sync_both

from .faultproxy import FaultProxy
from .helpers import ADMIN, Db, inline, new_db, remote

CYCLES = 160
READ_TIMEOUT = 0.5
MAX_RUNS = 40  # per direction and cycle; the seeded fault rate needs far fewer


@pytest.fixture
def proxy(live_server: str) -> Iterator[FaultProxy]:
    """A fault proxy in front of the live server."""
    fault_proxy = FaultProxy(urlsplit(live_server).port or 80, seed=20240611, stall=READ_TIMEOUT + 0.3).start()
    yield fault_proxy
    fault_proxy.close()


def write_some(db: Db, rng: random.Random, ids: list[str], created: set[str]) -> None:
    """Create one to three docs, and sometimes edit or delete a known one (conflicts when both sides do)."""
    for _ in range(rng.randint(1, 3)):
        doc_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        doc: dict[str, Any] = {"_id": doc_id, "type": "visit", "n": rng.randrange(1000)}
        if rng.random() < 0.1:
            doc["_attachments"] = {"photo.bin": inline(rng.randbytes(rng.randrange(1, 3000)))}
        db.put(doc)
        ids.append(doc_id)
        created.add(doc_id)
    if ids and rng.random() < 0.5:
        edit(db, rng, rng.choice(ids))


def edit(db: Db, rng: random.Random, target: str) -> None:
    """Edit or delete ``target`` where it is alive on ``db``."""
    resp = db.session.get(f"{db.url}/{quote(target)}", timeout=30)
    if resp.status_code != 200:  # not there yet, or deleted there: nothing to edit
        return
    body = resp.json()
    if rng.random() < 0.2:
        db.call("DELETE", quote(target), rev=body["_rev"])
    else:
        db.put({**body, "n": rng.randrange(1000), "edited": True})


def until_ok(source: RemoteDatabase, target: RemoteDatabase) -> ReplicationResult:
    """Replicate again and again until a run reports ok, as a device would on each connection."""
    for _ in range(MAX_RUNS):
        result = replicate(source, target, retries=6, backoff=(0.001, 0.01), sleep=lambda s: None)
        if result.ok:
            return result
    raise AssertionError(f"no successful run in {MAX_RUNS}: {result.failure!r}")


def leaves_and_winners(db: Db) -> dict[str, Any]:
    """Every doc's leaf revs, deleted flag and winner (cheaper than full snapshots)."""
    rows = db.call("GET", "_changes", style="all_docs")["results"]
    alive = {row["id"]: row["value"]["rev"] for row in db.call("GET", "_all_docs")["rows"]}
    return {row["id"]: (sorted(c["rev"] for c in row["changes"]), bool(row.get("deleted")), alive.get(row["id"]))
            for row in rows}


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_replication_converges_through_faults(live_server: str, proxy: FaultProxy) -> None:
    started = time.monotonic()
    root = live_server + "/couch"
    local, server = new_db(root), new_db(root)
    through_proxy = f"http://127.0.0.1:{proxy.port}/couch/{server.url.rsplit('/', 1)[1]}"
    rng, ids, created = random.Random(7), [], set()
    runs: list[ReplicationResult] = []
    with remote(local) as device, RemoteDatabase(through_proxy, auth=ADMIN, timeout=(1.0, READ_TIMEOUT)) as link:
        for _ in range(CYCLES):
            side = rng.random()
            if side < 0.55 or side >= 0.9:
                write_some(local, rng, ids, created)
            if side >= 0.45:
                write_some(server, rng, ids, created)
            if side >= 0.9 and ids:
                shared = rng.choice(ids)  # both sides edit one doc offline: a conflict
                edit(local, rng, shared)
                edit(server, rng, shared)
            runs += [until_ok(device, link), until_ok(link, device)]
    state = leaves_and_winners(local)
    assert state == leaves_and_winners(server)
    assert set(state) == created and len(state) == len(created)  # nothing lost, nothing invented
    assert any(len(leaves) > 1 for leaves, _, _ in state.values()), "the cycles should have made conflicts"
    with remote(local) as device, remote(server) as direct:
        push, pull = sync_both(device, direct, sleep=lambda s: None)
    assert (push.ok, pull.ok, push.docs_written, pull.docs_written) == (True, True, 0, 0)
    faults = sum(n for kind, n in proxy.counts.items() if kind != "pass")
    assert faults >= CYCLES, proxy.counts  # the link really was bad
    assert sum(r.retries for r in runs) > 0
    assert time.monotonic() - started < 120
    local.close()
    server.close()
