"""An encrypted DeviceStore replicating with Wasl's live server and with pouchdb-server 4.2.0.

After every sync both sides are compared doc by doc (helpers.assert_same): the same ids, deleted
flags, winners with their ``_conflicts``, leaf revisions with ``_revisions`` and bodies, and
attachment metadata and bytes.
"""
from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.pool import NullPool

from models import db as sqla
from sync.device import DeviceStore
from sync.remote import RemoteDatabase
from sync.replicator import replicate, sync_both

from ..conftest import make_app, serve_in_thread
from ..replication.helpers import ADMIN, Db, inline, new_db
from ..replication.conftest import pouchdb_server  # noqa: F401  (a module-scoped fixture)
from .helpers import FAST, PIN, assert_same

# Small batches, so every run spans several batches and checkpoints; no back-off sleeps.
OPTIONS: dict[str, Any] = {"batch_size": 3, "sleep": lambda s: None}
Check = Callable[[], dict[str, Any]]
PHOTO = bytes(range(256)) * 41 + b"\x00tail"


@pytest.fixture(params=["wasl-sqlite", pytest.param("wasl-postgresql", marks=pytest.mark.postgres),
                        "pouchdb-server"])
def peer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(kind, CouchDB root) of the peer: Wasl served on loopback (as ``live_server``), or pouchdb-server."""
    if request.param == "pouchdb-server":
        yield request.param, request.getfixturevalue("pouchdb_server")
        return
    # The ``app``/``live_server`` fixtures, spelled out: they cannot be requested per parameter here.
    url = (f"sqlite:///{tmp_path}/wasl.sqlite" if request.param == "wasl-sqlite"
           else request.getfixturevalue("pg_fresh_url"))
    app = make_app(url, SQLALCHEMY_ENGINE_OPTIONS={"poolclass": NullPool})
    try:
        for base in serve_in_thread(app):
            yield request.param, base + "/couch"
    finally:
        with app.app_context():
            sqla.session.remove()
            sqla.engine.dispose()
        gc.collect()


@pytest.fixture
def server(peer: tuple[str, str]) -> Iterator[Db]:
    """A fresh database on the peer."""
    database = new_db(peer[1])
    yield database
    database.close()


@pytest.fixture
def same(peer: tuple[str, str], store: DeviceStore, server: Db) -> Check:
    """Compare both sides doc by doc (helpers.assert_same); return the state."""
    # pouchdb-server's LevelDB adapter sets every stored attachment's revpos to the generation
    # of the revision that carries it, even under new_edits=false (saveAttachment in
    # pouchdb-adapter-leveldb-core): CouchDB and Wasl keep the revpos the replicator sent.
    return lambda: assert_same(store, server, revpos=peer[0] != "pouchdb-server")


@pytest.fixture
def remote(server: Db) -> Iterator[RemoteDatabase]:
    """The replicator's view of the same database."""
    with RemoteDatabase(server.url, auth=ADMIN) as rdb:
        yield rdb


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DeviceStore]:
    """A fresh encrypted device store."""
    with DeviceStore.create(str(tmp_path / "device.sqlite"), PIN, kdf_params=FAST) as opened:
        yield opened


def ok(*results: Any) -> None:
    """Every run succeeded without per-document errors."""
    for result in results:
        assert result.ok and not result.errors, result


def assert_quiet(store: DeviceStore, remote: RemoteDatabase) -> None:
    """A further sync moves nothing either way."""
    push, pull = sync_both(store, remote, **OPTIONS)
    ok(push, pull)
    assert (push.docs_read, pull.docs_read) == (0, 0), (push, pull)


def fill_device(store: DeviceStore) -> None:
    """Docs, an edited doc, a deleted doc and a doc with an attachment, written on the device."""
    for i in range(7):
        store.put({"_id": f"d-{i}", "type": "visit", "n": i, "nested": {"list": [i, "x"], "ok": True}})
    rev = store.get("d-1")["_rev"]
    store.put({"_id": "d-1", "_rev": rev, "type": "visit", "n": 100})
    store.delete("d-2", store.get("d-2")["_rev"])
    store.put_attachment("d-att", None, "photo-1.jpg", "image/jpeg", PHOTO)


def fill_server(server: Db) -> None:
    """The same kinds of change, written on the server."""
    for i in range(7):
        server.put({"_id": f"s-{i}", "type": "visit", "n": i, "unicode": "Lilongwe — ✓"})
    server.update("s-1", n=100)
    server.delete("s-2")
    server.put({"_id": "s-att", "_attachments": {"photo-1.jpg": inline(PHOTO, "image/jpeg")}})


def test_push(store: DeviceStore, server: Db, remote: RemoteDatabase, same: Check) -> None:
    fill_device(store)
    result = replicate(store, remote, **OPTIONS)
    ok(result)
    assert result.docs_written == 8 and result.batches >= 3
    state = same()
    assert state["d-2"]["deleted"] and state["d-1"]["winner"]["n"] == 100
    assert server.attachment("d-att", "photo-1.jpg") == PHOTO
    assert_quiet(store, remote)


def test_pull(store: DeviceStore, server: Db, remote: RemoteDatabase, same: Check) -> None:
    fill_server(server)
    result = replicate(remote, store, **OPTIONS)
    ok(result)
    assert result.docs_written == 8
    state = same()
    assert state["s-2"]["deleted"] and state["s-1"]["winner"]["unicode"] == "Lilongwe — ✓"
    assert store.get_attachment("s-att", "photo-1.jpg") == PHOTO
    assert_quiet(store, remote)


def test_sync_both_then_edits_on_both_sides(store: DeviceStore, server: Db, remote: RemoteDatabase,
                                            same: Check) -> None:
    fill_device(store)
    fill_server(server)
    ok(*sync_both(store, remote, **OPTIONS))
    assert len(same()) == 16
    # Edit each other's docs, delete each other's docs, update attachment docs on both sides.
    store.put({**store.get("s-3"), "n": 33})
    store.delete("s-4", store.get("s-4")["_rev"])
    store.put_attachment("s-att", store.get("s-att")["_rev"], "photo-2.jpg", "image/jpeg", b"second photo")
    server.update("d-3", n=33)
    server.delete("d-4")
    server.update("d-att", checked=True)  # keeps the attachment as a stub
    ok(*sync_both(store, remote, **OPTIONS))
    state = same()
    assert state["s-3"]["winner"]["n"] == 33 and state["d-3"]["winner"]["n"] == 33
    assert state["s-4"]["deleted"] and state["d-4"]["deleted"]
    assert state["s-att"]["bytes"] == {"photo-1.jpg": PHOTO, "photo-2.jpg": b"second photo"}
    assert state["d-att"]["bytes"] == {"photo-1.jpg": PHOTO} and state["d-att"]["winner"]["checked"]
    assert_quiet(store, remote)


def test_concurrent_edits_converge_to_one_winner(store: DeviceStore, server: Db, remote: RemoteDatabase,
                                                 same: Check) -> None:
    store.put({"_id": "hh-1", "head": "Banda"})
    store.put({"_id": "hh-2", "head": "Mwale"})
    store.put({"_id": "hh-3", "head": "Tembo"})
    ok(replicate(store, remote, **OPTIONS))
    # hh-1: one edit here, two there (the server's branch is longer and wins).
    store.put({**store.get("hh-1"), "head": "Banda J."})
    server.update("hh-1", head="Phiri")
    server.update("hh-1", gps=[-13.9, 33.7])
    # hh-2: one edit on each side (the winner is decided by the rev hashes alone).
    store.put({**store.get("hh-2"), "head": "Mwale A."})
    server.update("hh-2", head="Mwale B.")
    # hh-3: deleted on the device, edited on the server: the live edit wins.
    store.delete("hh-3", store.get("hh-3")["_rev"])
    server.update("hh-3", head="Tembo K.")
    ok(*sync_both(store, remote, **OPTIONS))
    state = same()
    for doc_id in ("hh-1", "hh-2", "hh-3"):
        assert len(state[doc_id]["leaves"]) == 2, doc_id
        winner = state[doc_id]["winner"]
        live = {rev for rev, leaf in state[doc_id]["leaves"].items() if not leaf.get("_deleted")}
        assert winner.get("_conflicts", []) == sorted(live - {winner["_rev"]}), doc_id
        assert server.get(doc_id, conflicts="true")["_rev"] == store.get(doc_id)["_rev"]
    assert state["hh-1"]["winner"]["_rev"].startswith("3-")
    assert state["hh-3"]["winner"]["head"] == "Tembo K." and "_conflicts" not in state["hh-3"]["winner"]
    assert_quiet(store, remote)

    # Resolve: the device deletes hh-1's losing leaf, the server deletes hh-2's; both sides agree again.
    loser = store.get("hh-1")["_conflicts"][0]
    store.delete("hh-1", loser)
    server.call("DELETE", "hh-2", rev=server.get("hh-2", conflicts="true")["_conflicts"][0])
    ok(*sync_both(store, remote, **OPTIONS))
    state = same()
    assert "_conflicts" not in state["hh-1"]["winner"] and "_conflicts" not in state["hh-2"]["winner"]
    assert len(state["hh-1"]["leaves"]) == 2  # the deleted leaf stays a leaf
    assert_quiet(store, remote)


def test_conflicting_attachments_and_deleted_conflicts(store: DeviceStore, server: Db, remote: RemoteDatabase,
                                                       same: Check) -> None:
    store.put_attachment("att", None, "photo-1.jpg", "image/jpeg", PHOTO)
    store.put({"_id": "gone", "v": 1})
    ok(replicate(store, remote, **OPTIONS))
    # Both sides replace the same attachment with different bytes: two leaves, each with its own bytes.
    store.put_attachment("att", store.get("att")["_rev"], "photo-1.jpg", "image/jpeg", b"device bytes")
    doc = server.get("att")
    server.put({**doc, "_attachments": {"photo-1.jpg": inline(b"server bytes!", "image/jpeg")}})
    # Both sides delete the same doc (with different bodies): two deleted leaves, the doc stays deleted.
    store.delete("gone", store.get("gone")["_rev"])
    server.put({**server.get("gone"), "_deleted": True, "why": "duplicate"})
    ok(*sync_both(store, remote, **OPTIONS))
    state = same()
    assert len(state["att"]["leaves"]) == 2
    assert state["att"]["bytes"]["photo-1.jpg"] in (b"device bytes", b"server bytes!")
    loser = state["att"]["winner"]["_conflicts"][0]
    other = b"server bytes!" if state["att"]["bytes"]["photo-1.jpg"] == b"device bytes" else b"device bytes"
    assert store.get_attachment("att", "photo-1.jpg", loser) == other
    assert state["gone"]["deleted"] and len(state["gone"]["leaves"]) == 2
    assert_quiet(store, remote)
