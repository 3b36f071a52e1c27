"""The replicator between Wasl and pouchdb-server 4.2.0 (bench/peer), both ways."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from sync.replicator import replicate, sync_both

from .helpers import Db, inline, new_db, remote

NO_SLEEP = {"sleep": lambda s: None}


@pytest.fixture
def wasl_and_pouch(live_server: str, pouchdb_server: str) -> Iterator[tuple[Db, Db]]:
    """A fresh database on each server."""
    ours, theirs = new_db(live_server + "/couch"), new_db(pouchdb_server)
    yield ours, theirs
    ours.close()
    theirs.close()


def fill(db: Db, prefix: str) -> None:
    """Docs, an edited doc, a deleted doc and an attachment."""
    db.put({"_id": f"{prefix}-1", "v": 1})
    db.put({"_id": f"{prefix}-2", "v": 1})
    db.update(f"{prefix}-2", v=2)
    db.put({"_id": f"{prefix}-3", "v": 1})
    db.delete(f"{prefix}-3")
    db.put({"_id": f"{prefix}-att", "_attachments": {"a.bin": inline(bytes(range(256)) * 40)}})


@pytest.mark.parametrize("direction", ["push", "pull", "sync"])
def test_replicator_works_with_pouchdb_server(wasl_and_pouch: tuple[Db, Db], direction: str) -> None:
    ours, theirs = wasl_and_pouch
    if direction in ("push", "sync"):
        fill(ours, "w")
    if direction in ("pull", "sync"):
        fill(theirs, "p")
    with remote(ours) as a, remote(theirs) as b:
        runs = {"push": lambda: [replicate(a, b, **NO_SLEEP)], "pull": lambda: [replicate(b, a, **NO_SLEEP)],
                "sync": lambda: list(sync_both(a, b, **NO_SLEEP))}[direction]()
        assert all(r.ok and not r.errors for r in runs), runs
        again = sync_both(a, b, **NO_SLEEP)
        assert [r.docs_read for r in again] == [0, 0]
    assert ours.snapshot() == theirs.snapshot()
    prefix = "w" if direction == "push" else "p"
    assert ours.attachment(f"{prefix}-att", "a.bin") == theirs.attachment(f"{prefix}-att", "a.bin")


def test_conflicts_converge_between_wasl_and_pouchdb_server(wasl_and_pouch: tuple[Db, Db]) -> None:
    ours, theirs = wasl_and_pouch
    ours.put({"_id": "hh-1", "head": "Banda"})
    with remote(ours) as a, remote(theirs) as b:
        assert replicate(a, b, **NO_SLEEP).ok
        ours.update("hh-1", head="Banda J.")
        theirs.update("hh-1", head="Phiri")
        theirs.update("hh-1", gps=[-13.9, 33.7])
        assert all(r.ok for r in sync_both(a, b, **NO_SLEEP))
    snap = ours.snapshot()
    assert snap == theirs.snapshot()
    assert len(snap["hh-1"]["leaves"]) == 2 and snap["hh-1"]["winner"].startswith("3-")
