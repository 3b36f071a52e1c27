"""One run over the lossy links: a tablet client and a PouchDB peer, each in its own village and namespace.

Server side (over loopback, never through a link): areas ``north/d1/v1`` and ``north/d1/v2``, the
CHW ``amina`` in v1 (the tablet, device 0) and ``bakari`` in v2 (PouchDB, device 1), the records
database, and for each device ``down`` visits made on the server and ``shared`` visits that the
device already holds (as if synced yesterday). Then both sides work offline:

- the device writes ``up`` new visits, deletes the visit ``old-0`` and sets ``follow_up`` on every shared visit;
- the server edits each of its new visits once and sets ``reviewed_by`` on every shared visit.

The server is ``wasl serve`` (gunicorn and the records worker, which merges the conflicting edits of
the shared visits as soon as both sides' leaves are on the server). The tablet is enrolled off the
link (at the office), then runs ``wasl device sync`` inside its namespace until it holds the
server's winners (a second sync fetches merges made after its pull). The peer runs one live
PouchDB sync (retry: true) until it holds ``p-srv-last``, which the server writes once the worker
has merged the peer's shared visits (``close_day``).
Both devices run at the same time.

Ids say who made what: ``{t|p}-new-N`` (device), ``{t|p}-srv-N`` (server), ``{t|p}-both-N`` (shared).
"""
from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from .lossyclients import DeviceCli, Json, run_peer, village_visit
from .lossylink import LinkSet

DB_NAME = "records"
ADMIN = ("admin", "lossy-secret")
LAST = "p-srv-last"  # the visit that ends the peer's session
CLOSE_DAY_TIMEOUT_S = 900  # how long the shared visits may take to be merged
MAX_SYNCS = 4  # a tablet syncs again while the server holds merges it has not seen
DEVICES = (("t", "amina", "pw-amina-1", "north/d1/v1"), ("p", "bakari", "pw-bakari-1", "north/d1/v2"))


@dataclass(frozen=True)
class Plan:
    """How much each device and the server write."""

    up: int = 20
    down: int = 20
    shared: int = 3
    seed: int = 7

    @property
    def docs(self) -> int:
        """Distinct documents that cross one device's link (each shared visit counted once, the deletion too)."""
        return self.up + self.down + self.shared + 1


@dataclass
class DeviceRun:
    """What one device did and what its link carried."""

    tag: str
    seconds: float = 0.0
    runs: int = 0
    failed_runs: int = 0
    failures: list[str] = field(default_factory=list)  # how each failed run ended (tablet client only)
    counts: dict[str, Any] = field(default_factory=dict)
    peer: Json | None = None
    store: Path | None = None
    device_id: str | None = None
    converged: bool = False  # the device ended holding the server's winners
    note: str = ""  # why it did not converge, when the scenario knows


class Admin:
    """The admin's HTTP view of the records database, straight to the server (not over a link)."""

    def __init__(self, base: str, auth: tuple[str, str] = ADMIN) -> None:
        self.url = f"{base}/couch/{DB_NAME}"
        self.session = requests.Session()
        self.session.auth = auth

    def call(self, method: str, path: str = "", body: Any = None, **params: Any) -> Any:
        """A JSON request that must succeed."""
        resp = self.session.request(method, f"{self.url}/{path}", json=body, params=params or None, timeout=60)
        assert resp.status_code < 300, (method, path, resp.status_code, resp.text[:500])
        return resp.json()

    def winners(self, prefix: str) -> dict[str, str]:
        """The winning rev of every live doc whose id starts with ``prefix``."""
        rows = self.call("GET", "_all_docs", startkey=json.dumps(prefix), endkey=json.dumps(prefix + "\ufff0"))
        return {row["id"]: row["value"]["rev"] for row in rows["rows"]}

    def write(self, docs: list[Json]) -> list[str]:
        """``_bulk_docs`` (new edits) that must accept every doc; the new revs."""
        answer = self.call("POST", "_bulk_docs", {"docs": docs})
        assert all("rev" in item for item in answer), answer
        return [item["rev"] for item in answer]


def setup_server(app: Any) -> None:
    """Areas, the two CHWs and the records database (in the app's own context)."""
    from sync.access import add_area, add_user, assign
    from sync.store import create_database
    with app.app_context():
        for path, kind in (("north", "region"), ("north/d1", "district"), ("north/d1/v1", "village"),
                           ("north/d1/v2", "village")):
            add_area(path, kind, path.rsplit("/", 1)[-1], actor="bench")
        for _, user, password, village in DEVICES:
            add_user(user, password, ["chw"], actor="bench")
            assign(user, village, "works_in", actor="bench")
        create_database(DB_NAME)


def seed(admin: Admin, plan: Plan, index: int) -> list[Json]:
    """The server's visits for device ``index``; return those the device holds, at rev 1 with ``_revisions``.

    The device holds ``{tag}-old-0`` (which it deletes) and the shared visits (which both sides edit).
    """
    tag, user, _, village = DEVICES[index]
    rng = random.Random(plan.seed * 100 + index)

    def visit(doc_id: str) -> Json:
        return {**village_visit(rng, doc_id, user), "area": village}
    shared = [visit(f"{tag}-both-{i}") for i in range(plan.shared)]
    made = [visit(f"{tag}-srv-{i}") for i in range(plan.down)]
    admin.write([visit(f"{tag}-old-0"), *shared, *made])
    held = [admin.call("GET", doc["_id"], revs="true") for doc in [{"_id": f"{tag}-old-0"}, *shared]]
    docs = [admin.call("GET", doc["_id"]) for doc in made]
    edits = [{k: v for k, v in doc.items() if k != "_revisions"} for doc in docs + held[1:]]
    admin.write([{**doc, "kind": "screening", "reviewed_by": "supervisor"} for doc in edits])
    return held


def device_visits(plan: Plan, index: int) -> list[Json]:
    """The new visits device ``index`` writes offline."""
    tag, user, _, village = DEVICES[index]
    rng = random.Random(plan.seed * 100 + 50 + index)
    return [{**village_visit(rng, f"{tag}-new-{i}", user), "area": village} for i in range(plan.up)]


def run_tablet(links: LinkSet, plan: Plan, held: list[Json], code: str, folder: Path, admin: Admin,
               settle: Callable[[], None]) -> DeviceRun:
    """Device 0: enrol (at the office, off the link), offline work, then sync over the link until converged."""
    from sync.device import DeviceStore
    run = DeviceRun("t", store=folder / "tablet.db")
    cli = DeviceCli([], run.store)
    run.device_id = cli.enrol(links.base_url(0), code, DB_NAME)
    with DeviceStore.open(str(run.store), cli.pin) as store:
        store.bulk_docs_replicated(held)
        for doc in device_visits(plan, 0):
            store.put(doc)
        store.delete("t-old-0", held[0]["_rev"])
        for doc in held[1:]:
            store.put({**store.get(doc["_id"]), "follow_up": f"home visit {doc['_id']}"})
    cli.prefix, cli.runs, cli.seconds, started = links.prefix(0), [], [], time.monotonic()
    for _ in range(MAX_SYNCS):
        cli.sync()
        settle()  # the worker has merged what the sync brought; did the tablet see the merges?
        with DeviceStore.open(str(run.store), cli.pin) as store:
            mine = {doc["_id"]: doc["_rev"] for doc in store.all_docs()}
        if mine == admin.winners("t-"):
            run.converged = True
            break
    run.seconds, run.runs, run.failed_runs = time.monotonic() - started, len(cli.runs), cli.failed_runs
    run.failures = cli.failures
    return run


def peer_script(links: LinkSet, plan: Plan, held: list[Json]) -> Json:
    """Device 1's whole session as one PouchDB peer script."""
    _, user, password, _ = DEVICES[1]
    host = links.base_url(1).replace("http://", f"http://{user}:{password}@")
    # The supervisor's last visit is written once the worker has merged the shared visits (``close_day``);
    # changes arrive in seq order, so when it is on the peer, so is everything before it.
    until = {"db": "local", "id": LAST, "field": "reviewed_by", "value": "supervisor"}
    steps: list[Json] = [
        {"op": "bulkDocs", "docs": held, "new_edits": False},
        {"op": "bulkDocs", "docs": device_visits(plan, 1)},
        *[{"op": "update", "id": doc["_id"], "set": {"follow_up": f"home visit {doc['_id']}"}} for doc in held[1:]],
        {"op": "remove", "id": "p-old-0"},
        {"op": "sync", "source": "local", "target": "server", "options": {"live": True, "retry": True},
         "background": True, "as": "live"},
        {"op": "stop", "handle": "live", "until": until, "as": "sync"},
    ]
    return {"remotes": {"server": f"{host}/couch/{DB_NAME}"}, "steps": steps, "snapshot": ["local"],
            "step_timeout_ms": 600_000}


def run_pouch(links: LinkSet, plan: Plan, held: list[Json], folder: Path) -> DeviceRun:
    """Device 1: the PouchDB peer's session, inside its namespace."""
    run = DeviceRun("p")
    run.peer = run_peer(links.prefix(1), peer_script(links, plan, held), timeout=900)
    (folder / "peer.json").write_text(json.dumps(run.peer, indent=1))  # for a look after a failure
    run.seconds, run.runs, run.converged = run.peer["seconds"], 1, bool(run.peer["ok"])
    return run


def close_day(admin: Admin, plan: Plan, settle: Callable[[], None], timeout: float = CLOSE_DAY_TIMEOUT_S) -> list[str]:
    """Once the worker has merged every shared visit of village 2, write the supervisor's last visit there.

    Returns the shared visits still unmerged when ``timeout`` ran out (the day is closed then
    anyway): stock PouchDB's back-off after failed requests grows to minutes, and a run where
    its edits never arrived is a result to report, not a reason to lose the other figures.
    """
    deadline = time.monotonic() + timeout
    while True:
        settle()
        docs = [admin.call("GET", f"p-both-{i}", conflicts="true") for i in range(plan.shared)]
        unmerged = [f"{doc['_id']} {'in conflict' if '_conflicts' in doc else 'without the edit'}"
                    for doc in docs if "_conflicts" in doc or "follow_up" not in doc]
        if not unmerged or time.monotonic() > deadline:
            break
        time.sleep(1)
    settle()
    admin.write([{**village_visit(random.Random(plan.seed), LAST, DEVICES[1][1]), "area": DEVICES[1][3],
                  "reviewed_by": "supervisor"}])
    return unmerged


def settled(app: Any) -> Callable[[], None]:
    """``settle()``: wait until the server's records worker has projected (and merged) every change."""
    from models import db
    from sync.records.worker import status

    def settle(timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with app.app_context():
            while True:
                db.session.commit()  # a fresh snapshot for each look
                now = status(DB_NAME)
                if now["pending"] == 0 and now["checkpoint"] == now["update_seq"]:
                    return
                assert time.monotonic() < deadline, f"the worker did not catch up in {timeout} s: {now}"
                time.sleep(0.2)
    return settle


def run_both(links: LinkSet, plan: Plan, admin: Admin, code: str, folder: Path,
             settle: Callable[[], None]) -> tuple[DeviceRun, DeviceRun]:
    """Seed the server, then run the tablet and the peer at the same time; fill in each link's counts."""
    held = [seed(admin, plan, index) for index in range(len(DEVICES))]
    lock = threading.Lock()  # one settle at a time: it polls the database

    def locked_settle() -> None:
        with lock:
            settle()
    with ThreadPoolExecutor(3) as pool:
        tablet = pool.submit(run_tablet, links, plan, held[0], code, folder, admin, locked_settle)
        pouch = pool.submit(run_pouch, links, plan, held[1], folder)
        closed = pool.submit(close_day, admin, plan, locked_settle)
        runs = (tablet.result(), pouch.result())
        unmerged = closed.result()
    if unmerged:
        runs[1].converged = False
        runs[1].note = f"unmerged on the server after {CLOSE_DAY_TIMEOUT_S} s: {', '.join(unmerged)}"
    links.check()
    for index, run in enumerate(runs):
        run.counts = {side: vars(value) for side, value in links.counts(index).items()}
    return runs
