"""The encrypted tablet store syncing over a link that drops, stalls, truncates and
answers 503, for hundreds of cycles: it converges with nothing lost or duplicated."""
from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

import pytest

from sync.device import DeviceStore
from sync.errors import NotFound
from sync.remote import RemoteDatabase
from sync.replicator import sync_both

from ..replication.faultproxy import FaultProxy
from ..replication.helpers import ADMIN, new_db, remote
from ..replication.test_faults import MAX_RUNS, READ_TIMEOUT, edit, proxy, until_ok, write_some  # noqa: F401
from .helpers import FAST, PIN, assert_same

CYCLES = 200


def tablet_writes(store: DeviceStore, rng: random.Random, ids: list[str], created: set[str]) -> None:
    """A CHW's offline work: new visits, and edits or deletions of known records."""
    for _ in range(rng.randint(1, 3)):
        doc_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        store.put({"_id": doc_id, "type": "visit", "n": rng.randrange(1000)})
        ids.append(doc_id)
        created.add(doc_id)
    if ids and rng.random() < 0.5:
        tablet_edit(store, rng, rng.choice(ids))


def tablet_edit(store: DeviceStore, rng: random.Random, doc_id: str) -> None:
    try:
        doc = store.get(doc_id)
    except NotFound:
        return
    if rng.random() < 0.2:
        store.delete(doc_id, doc["_rev"])
    else:
        store.put({**{k: v for k, v in doc.items() if k != "_conflicts"}, "n": rng.randrange(1000)})


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_tablet_converges_through_faults(live_server: str, proxy: FaultProxy, tmp_path: Path) -> None:  # noqa: F811
    server = new_db(live_server + "/couch")
    through_proxy = f"http://127.0.0.1:{proxy.port}/couch/{server.url.rsplit('/', 1)[1]}"
    rng, ids, created = random.Random(11), [], set()
    retries = 0
    with DeviceStore.create(str(tmp_path / "tablet.db"), PIN, kdf_params=FAST) as store, \
            RemoteDatabase(through_proxy, auth=ADMIN, timeout=(1.0, READ_TIMEOUT)) as link:
        for _ in range(CYCLES):
            side = rng.random()
            if side < 0.55 or side >= 0.9:
                tablet_writes(store, rng, ids, created)
            if side >= 0.45:
                write_some(server, rng, ids, created)
            if side >= 0.9 and ids:
                shared = rng.choice(ids)  # both sides edit one record offline: a conflict
                tablet_edit(store, rng, shared)
                edit(server, rng, shared)
            for source, target in ((store, link), (link, store)):
                retries += until_ok(source, target).retries  # type: ignore[arg-type]
        state: dict[str, Any] = assert_same(store, server)
        assert set(state) == created  # nothing lost, nothing invented
        assert any(len(doc["leaves"]) > 1 for doc in state.values()), "the cycles should have made conflicts"
        with remote(server) as direct:
            push, pull = sync_both(store, direct, sleep=lambda s: None)
        assert (push.ok, pull.ok, push.docs_written, pull.docs_written) == (True, True, 0, 0)
    assert sum(n for kind, n in proxy.counts.items() if kind != "pass") >= CYCLES, proxy.counts
    assert retries > 0 and MAX_RUNS > 1
