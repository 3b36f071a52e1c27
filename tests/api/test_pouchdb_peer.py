"""A stock PouchDB 9 peer replicating with the server; every test checks the data on both sides."""
from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import requests

from tests.pouch import docs_by_id, require_peer, run_peer, step_result

pytestmark = pytest.mark.pouchdb

DIRECTIONS = ("push", "pull", "sync")
TEXT = b"hello"
TEXT_DIGEST = "md5-XUFAKrxLKna5cZ2REBfFkg=="  # what PouchDB computes for b"hello" (PROTOCOL.md 2.5)
BINARY = bytes(range(256)) * 4
ODD_IDS = ("a/b", "visits/2024/06/01", "عيادة/١", "naïve café", "😀 emoji", "a+b=c&d?e#f", "100%", "%2F")


class Server:
    """The server under test, reached with ``requests`` as the admin."""

    def __init__(self, root: str) -> None:
        parts = urlsplit(root)
        self.peer_root = root  # PouchDB takes the credentials inside the URL
        self.root = root.replace(f"{parts.username}:{parts.password}@", "") if parts.username else root
        self.session = requests.Session()
        if parts.username:
            self.session.auth = (parts.username, parts.password or "")

    def peer_url(self, db: str) -> str:
        """The database URL as the peer gets it, credentials included."""
        return f"{self.peer_root}/{quote(db, safe='')}"

    def url(self, db: str, doc_id: str | None = None, att: str | None = None) -> str:
        """Percent-encode like PouchDB: the whole doc id, attachment names segment by segment."""
        url = f"{self.root}/{quote(db, safe='')}"
        if doc_id is not None:
            url += "/" + quote(doc_id, safe="")
        if att is not None:
            url += "/" + quote(att, safe="/")
        return url

    def call(self, method: str, db: str, doc_id: str | None = None, att: str | None = None,
             expect: int | tuple[int, ...] = (200, 201), **kwargs: Any) -> Any:
        """Send a request and return its JSON body, asserting the status first."""
        resp = self.session.request(method, self.url(db, doc_id, att), timeout=60, **kwargs)
        wanted = (expect,) if isinstance(expect, int) else expect
        assert resp.status_code in wanted, f"{method} {resp.url} -> {resp.status_code} {resp.text[:500]}"
        return resp.json()

    def create(self, db: str) -> None:
        """Create ``db``."""
        self.call("PUT", db, expect=201)

    def bulk_docs(self, db: str, docs: list[dict[str, Any]], new_edits: bool = True) -> list[dict[str, Any]]:
        """Write ``docs`` with ``_bulk_docs``; normal writes must all succeed."""
        body: dict[str, Any] = {"docs": docs} if new_edits else {"docs": docs, "new_edits": False}
        result: list[dict[str, Any]] = self.call("POST", db, "_bulk_docs", json=body, expect=201)
        assert not [r for r in result if "error" in r], result
        return result

    def put(self, db: str, doc: dict[str, Any]) -> str:
        """PUT one doc and return its new rev."""
        rev: str = self.call("PUT", db, doc["_id"], json=doc, expect=201)["rev"]
        return rev

    def all_docs(self, db: str) -> dict[str, dict[str, Any]]:
        """Map id -> doc of ``_all_docs?include_docs=true&conflicts=true``."""
        params = {"include_docs": "true", "conflicts": "true"}
        return docs_by_id(self.call("GET", db, "_all_docs", params=params))

    def doc(self, db: str, doc_id: str, expect: int = 200, **params: str) -> Any:
        """GET one doc with query ``params``."""
        return self.call("GET", db, doc_id, params=params, expect=expect)

    def leaves(self, db: str, doc_id: str) -> dict[str, bool]:
        """Map leaf rev -> deleted, from ``?open_revs=all``."""
        found = self.call("GET", db, doc_id, params={"open_revs": "all"},
                          headers={"Accept": "application/json"})
        return {r["ok"]["_rev"]: bool(r["ok"].get("_deleted")) for r in found if "ok" in r}

    def info(self, db: str) -> Any:
        """GET the database info."""
        return self.call("GET", db)


@pytest.fixture(autouse=True)
def _peer() -> None:
    """Skip (or fail under CI=true) when node or the peer's node_modules is missing."""
    require_peer()


@pytest.fixture
def couch_root(couch_url: str) -> str:
    """The CouchDB root with credentials: Wasl's, or WASL_PEER_SERVER's (to try the tests elsewhere)."""
    external = os.environ.get("WASL_PEER_SERVER")
    return external.rstrip("/") if external else couch_url


@pytest.fixture
def server(couch_root: str) -> Iterator[Server]:
    srv = Server(couch_root)
    yield srv
    srv.session.close()


@pytest.fixture
def db(server: Server) -> str:
    """A fresh database name (unique, so WASL_PEER_SERVER runs do not collide)."""
    name = f"peer-{uuid.uuid4().hex[:12]}"
    server.create(name)
    return name


# ------------------------------------------------------------------------------------------------- helpers
def visit(i: int, side: str) -> dict[str, Any]:
    """A small visit-like doc."""
    return {"_id": f"{side}-{i:04d}", "type": "visit", "patient": f"p-{i % 7}", "side": side, "n": i}


def replicate(direction: str, remote: str, local: str = "local", options: dict[str, Any] | None = None,
              name: str | None = None) -> dict[str, Any]:
    """One peer step replicating ``local`` with ``remote`` in ``direction``."""
    step: dict[str, Any] = {"op": "sync" if direction == "sync" else "replicate",
                            "source": remote if direction == "pull" else local,
                            "target": local if direction == "pull" else remote,
                            "options": options or {}}
    if name:
        step["as"] = name
    return step


def totals(result: dict[str, Any]) -> dict[str, int]:
    """docs_read/docs_written/doc_write_failures/denied summed over a sync's two directions."""
    parts = [result["push"], result["pull"]] if "push" in result else [result]
    keys = ("docs_read", "docs_written", "doc_write_failures", "denied")
    return {key: sum(part[key] or 0 for part in parts) for key in keys}


def assert_replicated(rep: dict[str, Any]) -> None:
    """The replication completed with no failed or denied doc."""
    assert rep["ok"], rep
    assert not [e for e in rep.get("errors", [])], rep
    sums = totals(rep)
    assert sums["doc_write_failures"] == 0 and sums["denied"] == 0, rep


def winner_of(leaves: dict[str, bool]) -> str:
    """The winning rev by CouchDB/PouchDB's rule: not deleted, then higher pos, then higher rev id."""
    def key(rev: str) -> tuple[bool, int, str]:
        pos, rev_id = rev.split("-", 1)
        return (not leaves[rev], int(pos), rev_id)
    return max(leaves, key=key)


def md5_digest(data: bytes) -> str:
    """CouchDB/PouchDB's attachment digest."""
    return "md5-" + base64.b64encode(hashlib.md5(data).digest()).decode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def without_revpos(docs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Drop attachment revpos: PouchDB's leveldb-core resets it to the doc's rev pos on each inline write."""
    out = {}
    for doc_id, doc in docs.items():
        atts = {name: {k: v for k, v in att.items() if k != "revpos"}
                for name, att in doc.get("_attachments", {}).items()}
        out[doc_id] = {**doc, "_attachments": atts} if atts else doc
    return out


# ------------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("batch_size", [None, 2])
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_replication_copies_docs(server: Server, db: str, direction: str, batch_size: int | None) -> None:
    count = 5
    server_docs = [visit(i, "server") for i in range(count)] if direction != "push" else []
    peer_docs = [visit(i, "peer") for i in range(count)] if direction != "pull" else []
    if server_docs:
        server.bulk_docs(db, server_docs)
    options = {"batch_size": batch_size} if batch_size else {}
    result = run_peer({"steps": [
        {"op": "bulkDocs", "docs": peer_docs},
        replicate(direction, server.peer_url(db), options=options, name="rep"),
    ]})
    rep = step_result(result, "rep")
    assert_replicated(rep)
    assert totals(rep)["docs_written"] == len(server_docs) + len(peer_docs)
    expected = {d["_id"] for d in server_docs + peer_docs}
    on_server = server.all_docs(db)
    on_peer = docs_by_id(result["dbs"]["local"])
    assert set(on_server) == set(on_peer) == expected
    assert on_server == on_peer
    for doc in server_docs + peer_docs:
        assert {k: v for k, v in on_server[doc["_id"]].items() if not k.startswith("_")} == \
            {k: v for k, v in doc.items() if not k.startswith("_")}
    assert server.info(db)["doc_count"] == len(expected)


@pytest.mark.parametrize(("mode", "writer"), [("sync", "python"), ("sync", "peer"), ("pull", "python")])
def test_live_replication_picks_up_new_changes(server: Server, db: str, tmp_path: Path, mode: str,
                                               writer: str) -> None:
    server.put(db, {"_id": "before", "v": 0})
    remote = server.peer_url(db)
    signal = tmp_path / "live-started"
    until: list[dict[str, Any]] = [{"db": "local", "id": "late", "field": "v", "value": 2}]
    steps: list[dict[str, Any]] = []
    if mode == "sync":
        steps.append({"op": "put", "doc": {"_id": "local-first", "v": 1}})
    steps += [
        {**replicate(mode, remote, options={"live": True}), "background": True, "as": "live"},
        # 'paused' with no error = caught up and parked in a longpoll: only now is the next write "new".
        {"op": "wait", "handle": "live", "event": "paused"},
        {"op": "touch", "path": str(signal)},
    ]
    if writer == "peer":
        steps.append({"op": "put", "db": remote, "doc": {"_id": "late", "v": 2}})
    if mode == "sync":
        steps.append({"op": "put", "doc": {"_id": "early", "v": 3}})
        until.append({"db": remote, "id": "early"})
    steps.append({"op": "stop", "handle": "live", "until": until, "as": "live"})

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(run_peer, {"steps": steps, "step_timeout_ms": 60000, "trace": True})
        if writer == "python":
            deadline = time.monotonic() + 60
            while not signal.exists() and not future.done() and time.monotonic() < deadline:
                time.sleep(0.02)
            if not signal.exists():
                future.result(timeout=120)  # surfaces the peer's own error, if it failed
                pytest.fail("the live replication never reached 'paused'")
            server.put(db, {"_id": "late", "v": 2})
        result = future.result(timeout=120)

    live = step_result(result, "live")
    assert live["status"] == "cancelled" and live["ok"], live
    assert "paused_error" not in live, live
    assert totals(live)["doc_write_failures"] == 0
    # The new doc came through the live phase: a longpoll on the server's _changes feed.
    urls = [r["url"] for step in result["steps"] for r in step.get("http", [])]
    assert any("/_changes?" in url and "feed=longpoll" in url for url in urls), urls
    on_server = server.all_docs(db)
    on_peer = docs_by_id(result["dbs"]["local"])
    expected = {"before", "late"} | ({"local-first", "early"} if mode == "sync" else set())
    assert set(on_peer) == expected
    assert set(on_server) == expected
    assert on_server == on_peer
    assert on_peer["late"]["v"] == 2


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_deletion_replicates(server: Server, db: str, direction: str) -> None:
    server.bulk_docs(db, [{"_id": "keep", "v": 1}, {"_id": "gone-on-peer", "v": 2},
                          {"_id": "gone-on-server", "v": 3}])
    remote = server.peer_url(db)
    deleted = {"push": ["gone-on-peer"], "pull": ["gone-on-server"],
               "sync": ["gone-on-peer", "gone-on-server"]}
    steps: list[dict[str, Any]] = [replicate("pull", remote, name="initial")]
    for doc_id in deleted[direction]:
        # A deletion on the server goes through its own DELETE /db/id?rev= (PouchDB's http adapter).
        steps.append({"op": "remove", "db": remote if doc_id == "gone-on-server" else "local", "id": doc_id,
                      "as": f"removed {doc_id}"})
    steps.append(replicate(direction, remote, name="rep"))
    for doc_id in deleted[direction]:
        steps.append({"op": "get", "id": doc_id, "may_fail": True, "as": f"get {doc_id}"})
    result = run_peer({"steps": steps})

    assert_replicated(step_result(result, "rep"))
    assert totals(step_result(result, "rep"))["docs_written"] == len(deleted[direction])
    on_server = server.all_docs(db)
    on_peer = docs_by_id(result["dbs"]["local"])
    survivors = {"keep", "gone-on-peer", "gone-on-server"} - set(deleted[direction])
    assert set(on_server) == set(on_peer) == survivors
    assert on_server == on_peer
    feed = server.call("GET", db, "_changes", params={"style": "all_docs"})
    changes = {row["id"]: row for row in feed["results"]}
    for doc_id in deleted[direction]:
        rev = step_result(result, f"removed {doc_id}")["rev"]
        assert rev.startswith("2-")
        assert server.doc(db, doc_id, expect=404) == {"error": "not_found", "reason": "deleted"}
        tomb = server.doc(db, doc_id, rev=rev)
        assert tomb["_deleted"] is True and tomb["_rev"] == rev
        assert changes[doc_id].get("deleted") is True and changes[doc_id]["changes"] == [{"rev": rev}]
        peer_get = step_result(result, f"get {doc_id}")
        assert peer_get["error"]["status"] == 404 and peer_get["error"]["reason"] == "deleted", peer_get
    assert server.info(db)["doc_count"] == len(survivors)


CONCURRENT_CASES = {
    # name: (peer edits, peer deletes after editing, server edits, server deletes after editing)
    "same-depth": (1, False, 1, False),
    "peer-deeper": (3, False, 1, False),
    "server-deeper": (1, False, 2, False),
    "peer-deleted": (1, True, 1, False),
    "server-deleted": (2, False, 1, True),
}


@pytest.mark.parametrize("case", CONCURRENT_CASES.values(), ids=list(CONCURRENT_CASES))
def test_concurrent_offline_edits_same_winner(server: Server, db: str,
                                              case: tuple[int, bool, int, bool]) -> None:
    peer_edits, peer_deletes, server_edits, server_deletes = case
    base = {"_id": "shared", "v": 0}
    base_rev = server.put(db, base)
    # The peer starts from the server's own rev 1 (as after a pull), then both sides edit while "offline".
    rev = base_rev
    for n in range(server_edits):
        rev = server.put(db, {**base, "_rev": rev, "by": "server", "n": n})
    if server_deletes:
        server.call("DELETE", db, "shared", params={"rev": rev})
    steps: list[dict[str, Any]] = [
        {"op": "bulkDocs", "docs": [{**base, "_rev": base_rev}], "new_edits": False}]
    steps += [{"op": "update", "id": "shared", "set": {"by": "peer", "n": n}} for n in range(peer_edits)]
    if peer_deletes:
        steps.append({"op": "remove", "id": "shared"})
    steps += [replicate("sync", server.peer_url(db), name="sync"),
              {"op": "get", "id": "shared", "options": {"conflicts": True}, "as": "winner"},
              {"op": "get", "id": "shared", "options": {"open_revs": "all"}, "as": "leaves"}]
    result = run_peer({"steps": steps})

    assert_replicated(step_result(result, "sync"))
    peer_leaves = {r["ok"]["_rev"]: bool(r["ok"].get("_deleted")) for r in step_result(result, "leaves")}
    server_leaves = server.leaves(db, "shared")
    assert server_leaves == peer_leaves
    assert len(peer_leaves) == 2
    expected = winner_of(peer_leaves)
    peer_doc = step_result(result, "winner")
    server_doc = server.doc(db, "shared", conflicts="true", revs="true")
    assert peer_doc["_rev"] == server_doc["_rev"] == expected
    assert peer_doc.get("_conflicts", []) == server_doc.get("_conflicts", [])
    live_losers = [r for r, deleted in peer_leaves.items() if r != expected and not deleted]
    assert server_doc.get("_conflicts", []) == live_losers
    assert {k: v for k, v in peer_doc.items() if k != "_conflicts"} == \
        {k: v for k, v in server_doc.items() if k not in ("_conflicts", "_revisions")}
    assert server_doc["_revisions"]["start"] == int(expected.split("-")[0])
    assert server.all_docs(db) == docs_by_id(result["dbs"]["local"])


def rev_id(label: str) -> str:
    """A realistic 32-hex rev id."""
    return hashlib.md5(label.encode()).hexdigest()


@pytest.mark.parametrize("direction", ["push", "pull"])
def test_conflict_tree_travels_intact(server: Server, db: str, direction: str) -> None:
    a, b, c, d, e = (rev_id(x) for x in "abcde")
    # 1-a -> 2-b -> 3-d (deleted); 1-a -> 2-c; 1-a -> 2-b -> 3-e. Winner 3-e, conflict 2-c, deleted 3-d.
    branches = [
        {"_id": "tree", "_rev": f"3-{d}", "_deleted": True, "_revisions": {"start": 3, "ids": [d, b, a]}},
        {"_id": "tree", "_rev": f"2-{c}", "v": "c", "_revisions": {"start": 2, "ids": [c, a]}},
        {"_id": "tree", "_rev": f"3-{e}", "v": "e", "_revisions": {"start": 3, "ids": [e, b, a]}},
    ]
    if direction == "pull":
        server.bulk_docs(db, branches, new_edits=False)
    result = run_peer({"steps": [
        {"op": "bulkDocs", "docs": branches if direction == "push" else [], "new_edits": False},
        replicate(direction, server.peer_url(db), name="rep"),
        {"op": "get", "id": "tree", "options": {"conflicts": True, "revs": True}, "as": "winner"},
        {"op": "get", "id": "tree", "options": {"open_revs": "all"}, "as": "leaves"},
    ]})
    assert_replicated(step_result(result, "rep"))
    expected_leaves = {f"3-{d}": True, f"2-{c}": False, f"3-{e}": False}
    peer_leaves = {r["ok"]["_rev"]: bool(r["ok"].get("_deleted")) for r in step_result(result, "leaves")}
    assert peer_leaves == server.leaves(db, "tree") == expected_leaves
    server_doc = server.doc(db, "tree", conflicts="true", revs="true")
    peer_doc = step_result(result, "winner")
    assert server_doc == peer_doc
    assert server_doc["_rev"] == f"3-{e}" and server_doc["_conflicts"] == [f"2-{c}"]
    assert server_doc["_revisions"] == {"start": 3, "ids": [e, b, a]}
    assert server.doc(db, "tree", rev=f"3-{d}")["_deleted"] is True
    assert server.all_docs(db) == docs_by_id(result["dbs"]["local"])


@pytest.mark.parametrize("direction", ["push", "pull"])
def test_attachments_replicate(server: Server, db: str, direction: str) -> None:
    files = {"note.txt": ("text/plain", TEXT), "photos/front.png": ("image/png", BINARY)}
    inline = {"_id": "inline", "kind": "inline", "_attachments": {
        "a.bin": {"content_type": "application/octet-stream", "data": b64(BINARY[:100])}}}
    steps: list[dict[str, Any]] = []
    if direction == "push":
        steps.append({"op": "bulkDocs", "docs": [inline]})
        steps += [{"op": "putAttachment", "id": "withatt", "name": name, "data": b64(data),
                   "content_type": ctype} for name, (ctype, data) in files.items()]
    else:
        rev = None
        for name, (ctype, data) in files.items():
            params = {"rev": rev} if rev else {}
            rev = server.call("PUT", db, "withatt", name, data=data, params=params,
                              headers={"Content-Type": ctype}, expect=201)["rev"]
        server.put(db, inline)
    steps += [replicate(direction, server.peer_url(db), name="rep"),
              {"op": "get", "id": "withatt", "options": {"attachments": True}, "as": "full"},
              {"op": "get", "id": "inline", "options": {"attachments": True}, "as": "inline"}]
    result = run_peer({"steps": steps})

    assert_replicated(step_result(result, "rep"))
    on_server = server.all_docs(db)
    on_peer = docs_by_id(result["dbs"]["local"])
    assert without_revpos(on_server) == without_revpos(on_peer)
    # Each attachment keeps the revpos of the rev that added it (note.txt: rev 1, the photo: rev 2).
    assert {name: att["revpos"] for name, att in on_server["withatt"]["_attachments"].items()} == \
        {"note.txt": 1, "photos/front.png": 2}
    expected = {name: data for name, (_, data) in files.items()}
    full = step_result(result, "full")["_attachments"]
    for name, (ctype, data) in files.items():
        stub = on_server["withatt"]["_attachments"][name]
        assert stub["stub"] is True and stub["length"] == len(data)
        assert stub["digest"] == on_peer["withatt"]["_attachments"][name]["digest"] == md5_digest(data)
        raw = server.session.get(server.url(db, "withatt", name), timeout=60)
        assert raw.status_code == 200, raw.text
        assert raw.content == expected[name]
        assert raw.headers["Content-Type"].startswith(ctype)
        assert full[name]["data"] == b64(data) and full[name]["content_type"] == ctype
    assert on_server["withatt"]["_attachments"]["note.txt"]["digest"] == TEXT_DIGEST
    assert step_result(result, "inline")["_attachments"]["a.bin"]["data"] == b64(BINARY[:100])
    assert server.doc(db, "inline", attachments="true")["_attachments"]["a.bin"]["data"] == b64(BINARY[:100])


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_second_run_resumes_from_checkpoint(server: Server, db: str, direction: str) -> None:
    if direction != "push":
        server.bulk_docs(db, [visit(i, "server") for i in range(4)])
    remote = server.peer_url(db)
    result = run_peer({"trace": True, "steps": [
        {"op": "bulkDocs", "docs": [visit(i, "peer") for i in range(4)] if direction != "pull" else []},
        replicate(direction, remote, name="first"),
        {"op": "info", "db": remote, "as": "info"},
        replicate(direction, remote, name="second"),
    ]})
    first, second = step_result(result, "first"), step_result(result, "second")
    assert_replicated(first)
    assert_replicated(second)
    assert totals(first)["docs_written"] == (8 if direction == "sync" else 4)
    assert totals(second)["docs_read"] == 0 and totals(second)["docs_written"] == 0, second
    first_trace, second_trace = result["steps"][1]["http"], result["steps"][3]["http"]
    assert not [r for r in second_trace if "_bulk_docs" in r["url"] or "_bulk_get" in r["url"]], second_trace
    # The checkpoint PouchDB wrote on the server is there, readable, and says where to resume.
    puts = [r["url"] for r in first_trace if r["method"] == "PUT" and "/_local/" in r["url"]]
    assert puts, first_trace
    for url in set(puts):
        checkpoint = server.session.get(url, timeout=60).json()
        assert checkpoint["_id"].startswith("_local/") and checkpoint["replicator"] == "pouchdb", checkpoint
        assert checkpoint["_rev"].startswith("0-") and checkpoint["last_seq"] is not None, checkpoint
    # Checkpoints are _local docs: they move neither update_seq nor doc_count, nor show in _all_docs.
    info = server.info(db)
    assert info["update_seq"] == step_result(result, "info")["update_seq"]
    assert info["doc_count"] == (8 if direction == "sync" else 4)
    assert server.all_docs(db) == docs_by_id(result["dbs"]["local"])


def test_many_docs_push_then_pull(server: Server, db: str) -> None:
    count = 2500
    docs = [{**visit(i, "bulk"), "notes": "x" * (i % 200)} for i in range(count)]
    remote = server.peer_url(db)
    result = run_peer({"step_timeout_ms": 280000, "steps": [
        {"op": "bulkDocs", "docs": docs},
        replicate("push", remote, name="push"),
        replicate("pull", remote, local="copy", name="pull"),
    ]}, timeout=600)
    push, pull = step_result(result, "push"), step_result(result, "pull")
    assert_replicated(push)
    assert_replicated(pull)
    assert push["docs_written"] == count and pull["docs_written"] == count
    on_server = server.all_docs(db)
    assert len(on_server) == count == server.info(db)["doc_count"]
    assert on_server == docs_by_id(result["dbs"]["local"]) == docs_by_id(result["dbs"]["copy"])


@pytest.mark.parametrize("direction", ["push", "pull"])
def test_odd_doc_ids(server: Server, db: str, direction: str) -> None:
    docs = [{"_id": doc_id, "label": f"{doc_id} ✓", "n": n} for n, doc_id in enumerate(ODD_IDS)]
    if direction == "pull":
        server.bulk_docs(db, docs)
    result = run_peer({"steps": [
        {"op": "bulkDocs", "docs": docs if direction == "push" else []},
        replicate(direction, server.peer_url(db), name="rep"),
        *[{"op": "get", "id": doc_id, "as": doc_id} for doc_id in ODD_IDS],
    ]})
    assert_replicated(step_result(result, "rep"))
    on_server = server.all_docs(db)
    assert on_server == docs_by_id(result["dbs"]["local"])
    assert set(on_server) == set(ODD_IDS)
    for doc in docs:
        got = server.doc(db, doc["_id"])
        assert got["_id"] == doc["_id"] and got["label"] == doc["label"]
        assert got == step_result(result, doc["_id"])


@pytest.mark.parametrize("direction", ["push", "pull"])
def test_doc_ids_filter(server: Server, db: str, direction: str) -> None:
    docs = [visit(i, "f") for i in range(6)]
    wanted = [docs[1]["_id"], docs[4]["_id"], "no-such-doc"]
    if direction == "pull":
        server.bulk_docs(db, docs)
    result = run_peer({"steps": [
        {"op": "bulkDocs", "docs": docs if direction == "push" else []},
        replicate(direction, server.peer_url(db), options={"doc_ids": wanted, "batch_size": 1}, name="rep"),
    ]})
    rep = step_result(result, "rep")
    assert_replicated(rep)
    assert rep["docs_written"] == 2
    on_server = server.all_docs(db)
    on_peer = docs_by_id(result["dbs"]["local"])
    target, source = (on_server, on_peer) if direction == "push" else (on_peer, on_server)
    assert set(target) == set(wanted[:2])
    assert len(source) == 6
    assert {i: source[i] for i in wanted[:2]} == target
