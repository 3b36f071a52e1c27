"""What the fleet checks afterwards: replicas equal the server, and incremental change-feed readers saw everything.

A replica's state is, per document id: the deleted flag, every leaf revision with its body and
``_revisions`` (as ``_bulk_get?revs=true`` returns it), and the winner as a plain read returns
it with ``_conflicts`` (sorted). The server's state is read over HTTP as the admin; a tablet's
expected state is the server's documents of its village.

``FeedReader`` reads a server's ``_changes`` incrementally, as a projection or an integration
would, for the whole run: each id's last row must equal the id's row in a full read at the end
(DESIGN decision 3: a sequence committed after a later one must not be skipped).
"""
from __future__ import annotations

import threading
import time
from typing import Any

import requests

from sync.device import DeviceStore

Json = dict[str, Any]
State = dict[str, Json]
CHUNK = 500


def _entry(deleted: bool) -> Json:
    return {"deleted": deleted, "leaves": {}, "winner": None}


def _winner(doc: Json) -> Json:
    doc = dict(doc)
    if "_conflicts" in doc:
        doc["_conflicts"] = sorted(doc["_conflicts"])
    return doc


def server_state(session: requests.Session, url: str) -> State:
    """Every document of the database at ``url`` (admin session): leaves with bodies, deleted flag, winner."""
    rows = _get(session, f"{url}/_changes", style="all_docs")["results"]
    state = {row["id"]: _entry(bool(row.get("deleted"))) for row in rows if not row["id"].startswith("_design/")}
    wanted = [{"id": row["id"], "rev": change["rev"]} for row in rows if row["id"] in state
              for change in row["changes"]]
    for start in range(0, len(wanted), CHUNK):
        resp = session.post(f"{url}/_bulk_get", params={"revs": "true"}, json={"docs": wanted[start:start + CHUNK]},
                            timeout=120)
        resp.raise_for_status()
        for item in resp.json()["results"]:
            for doc in item["docs"]:
                if "ok" not in doc:
                    raise RuntimeError(f"_bulk_get {item['id']}: {doc}")
                state[item["id"]]["leaves"][doc["ok"]["_rev"]] = doc["ok"]
    for row in _get(session, f"{url}/_all_docs", include_docs="true", conflicts="true")["rows"]:
        if row["id"] in state:
            state[row["id"]]["winner"] = _winner(row["doc"])
    return state


def _get(session: requests.Session, url: str, **params: str) -> Any:
    resp = session.get(url, params=params, timeout=120)
    resp.raise_for_status()
    return resp.json()


def device_state(store: DeviceStore) -> State:
    """The same view of a tablet's encrypted store."""
    state: State = {}
    for row in store.changes(0, 0).results:
        entry = state[row["id"]] = _entry(bool(row.get("deleted")))
        docs = store.bulk_get([{"id": row["id"], "rev": change["rev"]} for change in row["changes"]])
        entry["leaves"] = {doc["_rev"]: doc for doc in docs}
        if not entry["deleted"]:
            entry["winner"] = _winner(store.get(row["id"]))
    return state


def pouch_state(dumped: State) -> State:
    """A PouchDB tablet's state as bench/fleet.mjs dumps it, with ``_conflicts`` sorted."""
    return {doc_id: {**entry, "winner": _winner(entry["winner"]) if entry["winner"] else None}
            for doc_id, entry in dumped.items()}


def differences(expected: State, actual: State, name: str, limit: int = 5) -> list[str]:
    """How ``actual`` (a replica) differs from ``expected`` (the server's view of its scope), at most ``limit``."""
    out: list[str] = []
    for doc_id in sorted(expected.keys() - actual.keys())[:limit]:
        out.append(f"{name}: lacks {doc_id}")
    for doc_id in sorted(actual.keys() - expected.keys())[:limit]:
        out.append(f"{name}: holds {doc_id}, which the server does not show it")
    for doc_id in sorted(expected.keys() & actual.keys()):
        mine, theirs = actual[doc_id], expected[doc_id]
        if mine["deleted"] != theirs["deleted"]:
            out.append(f"{name}: {doc_id} deleted={mine['deleted']}, server {theirs['deleted']}")
        elif sorted(mine["leaves"]) != sorted(theirs["leaves"]):
            out.append(f"{name}: {doc_id} leaves {sorted(mine['leaves'])}, server {sorted(theirs['leaves'])}")
        elif mine["leaves"] != theirs["leaves"]:
            out.append(f"{name}: {doc_id} leaf bodies differ")
        elif mine["winner"] != theirs["winner"]:
            out.append(f"{name}: {doc_id} winner {mine['winner']}, server {theirs['winner']}")
        if len(out) >= limit:
            break
    return out[:limit]


def live_conflicts(state: State) -> list[str]:
    """Documents that still have more than one live leaf."""
    return sorted(doc_id for doc_id, entry in state.items()
                  if sum(not leaf.get("_deleted") for leaf in entry["leaves"].values()) > 1)


# ------------------------------------------------------------------------------------------------ feed readers
class FeedReader(threading.Thread):
    """Reads ``_changes`` of ``url`` from 0, again and again, until stopped; keeps each id's last row."""

    def __init__(self, url: str, auth: tuple[str, str], *, limit: int, longpoll: bool) -> None:
        super().__init__(name=f"feed-{'longpoll' if longpoll else 'normal'}", daemon=True)
        self.url, self.limit, self.longpoll = url, limit, longpoll
        self.session = requests.Session()
        self.session.auth = auth
        self.since: Any = 0
        self.last: dict[str, tuple[Any, tuple[str, ...], bool]] = {}
        self.reads = 0
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def read(self, longpoll: bool) -> int:
        """One read after ``since``; return the rows it brought."""
        params: dict[str, Any] = {"since": self.since, "limit": self.limit, "style": "all_docs"}
        if longpoll:
            params.update(feed="longpoll", timeout=500)
        resp = self.session.get(f"{self.url}/_changes", params=params, timeout=60)
        resp.raise_for_status()
        body = resp.json()
        for row in body["results"]:
            self.last[row["id"]] = row_key(row)
        self.since = body["last_seq"]
        self.reads += 1
        return len(body["results"])

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                if not self.read(self.longpoll) and not self.longpoll:
                    self._stop_event.wait(0.1)
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def stop(self) -> None:
        """Ask the reader to stop after its current read."""
        self._stop_event.set()

    def finish(self) -> dict[str, tuple[Any, tuple[str, ...], bool]]:
        """Stop, then read to the end of the feed; return each id's last row."""
        self.stop()
        self.join(30)
        if self.error is not None:
            raise RuntimeError(f"{self.name} failed: {self.error!r}") from self.error
        while self.read(False):
            pass
        self.session.close()
        return self.last


def row_key(row: Json) -> tuple[Any, tuple[str, ...], bool]:
    """What a change row says: its seq, its leaf revs, whether the document is deleted."""
    return row["seq"], tuple(sorted(c["rev"] for c in row["changes"])), bool(row.get("deleted"))


def feed_misses(full: list[Json], seen: dict[str, tuple[Any, tuple[str, ...], bool]], limit: int = 5) -> list[str]:
    """Rows of a full read at the end that an incremental reader did not end with."""
    out = []
    for row in full:
        if seen.get(row["id"]) != row_key(row):
            out.append(f"{row['id']}: full read {row_key(row)}, reader {seen.get(row['id'])}")
    extra = seen.keys() - {row["id"] for row in full}
    out += [f"{doc_id}: the reader saw it, the full read does not list it" for doc_id in sorted(extra)]
    return out[:limit]


def caught_up(app: Any, db_name: str) -> bool:
    """The worker's checkpoint equals the database's update_seq (read in ``app``'s database)."""
    from sqlalchemy import select

    from models import Database, db
    from models.health import WorkerCheckpoint
    with app.app_context():
        seq = db.session.scalar(select(Database.update_seq).where(Database.name == db_name))
        done = db.session.scalar(select(WorkerCheckpoint.seq).where(WorkerCheckpoint.db_name == db_name))
        db.session.remove()
    return bool(seq) and seq == done


def wait_for(check: Any, timeout: float, what: str) -> None:
    """Poll ``check()`` until it is true; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not reached in {timeout:.0f} s")
        time.sleep(0.1)
