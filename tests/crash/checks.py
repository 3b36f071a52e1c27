"""What must hold after the kills: acknowledged writes kept, replicas equal, a complete feed, true central rows."""
from __future__ import annotations

from typing import Any

from sync.device import DeviceStore

from ..device.helpers import device_state
from ..replication.helpers import Db
from .actors import FeedReader, Rev

Json = dict[str, Any]


def _drop_design(state: dict[str, Json]) -> dict[str, Json]:
    return {doc_id: entry for doc_id, entry in state.items() if not doc_id.startswith("_design/")}


def missing_acknowledged(db: Db, acked: set[Rev]) -> list[Rev]:
    """The acknowledged revisions the server's revision trees do not hold (``_revs_diff``)."""
    wanted: dict[str, list[str]] = {}
    for doc_id, rev in acked:
        wanted.setdefault(doc_id, []).append(rev)
    missing: list[Rev] = []
    ids = sorted(wanted)
    for start in range(0, len(ids), 200):
        diff = db.call("POST", "_revs_diff", {i: wanted[i] for i in ids[start:start + 200]})
        missing += [(doc_id, rev) for doc_id, entry in diff.items() for rev in entry.get("missing", [])]
    return sorted(missing)


def assert_device_converged(name: str, store: DeviceStore, server: dict[str, Json],
                            everything: dict[str, Json]) -> None:
    """The tablet holds the server's ids, leaves (bodies, deleted flags) and winners, nothing more or less.

    ``server`` is what the tablet's CHW sees, ``everything`` what an admin sees. A document the tablet created
    and deleted before it ever synced reached the server as a bare tombstone: no access key, admins only
    (docs/access.md). The tablet keeps it; it must be on the server all the same.
    """
    mine = _drop_design(device_state(store))
    unseen = sorted(set(mine) - set(server))
    for doc_id in unseen:
        assert mine[doc_id]["deleted"] and everything.get(doc_id, {}).get("deleted"), (name, doc_id, "not seen")
        assert mine[doc_id]["leaves"] == everything[doc_id]["leaves"], (name, doc_id)
        server = {**server, doc_id: everything[doc_id]}
    assert sorted(mine) == sorted(server), (name, sorted(set(mine) ^ set(server)))
    for doc_id, entry in mine.items():
        other = server[doc_id]
        assert entry["deleted"] == other["deleted"], (name, doc_id)
        assert entry["leaves"] == other["leaves"], (name, doc_id, sorted(entry["leaves"]), sorted(other["leaves"]))
        assert entry["winner"] == other["winner"], (name, doc_id, entry["winner"], other["winner"])


def assert_peer_converged(docs: dict[str, Json], server: dict[str, Json]) -> None:
    """The PouchDB peer's live documents are the server's winners, body for body (``_conflicts`` included)."""
    live = {doc_id: entry["winner"] for doc_id, entry in server.items() if not entry["deleted"]}
    assert sorted(docs) == sorted(live), sorted(set(docs) ^ set(live))
    for doc_id, doc in docs.items():
        doc = {**doc, **({"_conflicts": sorted(doc["_conflicts"])} if "_conflicts" in doc else {})}
        assert doc == live[doc_id], (doc_id, doc, live[doc_id])


def the_server(db: Db) -> dict[str, Json]:
    """Every document but design documents as ``tests/device/helpers.server_state`` shows it (leaves with their
    ``_revisions``, winner with ``_conflicts``, deleted flag), read in three requests rather than two per document."""
    rows = [r for r in db.call("GET", "_changes", style="all_docs")["results"] if not r["id"].startswith("_design/")]
    wanted = [{"id": r["id"], "rev": c["rev"]} for r in rows for c in r["changes"]]
    leaves: dict[str, Json] = {}
    for result in db.call("POST", "_bulk_get", {"docs": wanted}, revs="true")["results"]:
        for item in result["docs"]:
            assert "ok" in item, item
            leaves.setdefault(result["id"], {})[item["ok"]["_rev"]] = item["ok"]
    live = {r["id"]: r["doc"] for r in db.call("POST", "_all_docs", {"keys": [r["id"] for r in rows]},
                                               include_docs="true", conflicts="true")["rows"] if r.get("doc")}
    state = {}
    for r in rows:
        winner = live.get(r["id"])
        if winner is not None and "_conflicts" in winner:
            winner = {**winner, "_conflicts": sorted(winner["_conflicts"])}
        state[r["id"]] = {"deleted": bool(r.get("deleted")), "leaves": leaves.get(r["id"], {}), "winner": winner,
                          "bytes": {}}
    return state


def assert_feed_complete(reader: FeedReader, db: Db) -> int:
    """The incremental reader ended with every document's current leaves; its seqs only grew; no id twice in a
    full read. Return the number of documents."""
    full = db.call("GET", "_changes", style="all_docs")["results"]
    ids = [row["id"] for row in full]
    assert len(ids) == len(set(ids)), "a document is listed twice in one feed read"
    info = db.call("GET")
    assert len(ids) == info["doc_count"] + info["doc_del_count"], (len(ids), info)
    truth = {row["id"]: (bool(row.get("deleted")), frozenset(c["rev"] for c in row["changes"])) for row in full}
    skipped = {doc_id: (reader.latest.get(doc_id), now) for doc_id, now in truth.items()
               if reader.latest.get(doc_id) != now}
    assert not skipped, f"the incremental reader missed changes: {skipped}"
    numbers = [int(str(seq).split("-", 1)[0]) for seq in reader.seqs]
    assert all(a < b for a, b in zip(numbers, numbers[1:])), "the feed went backwards"
    return len(ids)


def winners(db: Db) -> dict[str, tuple[str, bool]]:
    """Each document's winning rev and deleted flag (deleted ones included), from a full feed read."""
    return {row["id"]: (row["changes"][0]["rev"], bool(row.get("deleted")))
            for row in db.call("GET", "_changes")["results"] if not row["id"].startswith("_design/")}


def assert_central_at_winners(snapshot: dict[str, list[dict[str, Any]]], winners: dict[str, tuple[str, bool]]) -> None:
    """One central row per document at most, each at its document's winning rev; every live document has one.

    ``winners``: doc id -> (winning rev, deleted). A deleted document may lack a row: a tombstone the
    server never held a body for tells nothing of what it was.
    """
    rows = [(row["doc_id"], row["rev"]) for table in snapshot.values() for row in table]
    revs = dict(rows)
    assert len(rows) == len(revs), "a document has two central rows"
    wrong = {doc_id: (rev, winners.get(doc_id)) for doc_id, rev in revs.items()
             if winners.get(doc_id, ("",))[0] != rev}
    assert not wrong, f"central rows not at their document's winner: {wrong}"
    absent = sorted(doc_id for doc_id, (_, deleted) in winners.items() if not deleted and doc_id not in revs)
    assert not absent, f"live documents without a central row: {absent}"
