"""One fleet run: tablets sync at once for a while, then settle, then everything is checked.

The run: start the cluster (bench.fleet), enrol the tablets, seed the villages, start two
incremental change-feed readers (one polling server 0 with small pages, one long-polling
server 1), and let every tablet loop (sync, offline work, pause) for ``plan.seconds``. Then
settle: every tablet syncs twice more, with a wait for the worker to catch up (resolving
the conflicts) in between. The checks, each a list of problems that must be empty:

- ``replicas``: every tablet holds exactly the server's documents of its village: ids,
  deleted flags, leaf revisions with bodies and ``_revisions``, winner with ``_conflicts``;
  and the server holds exactly the documents seeded or created by a tablet.
- ``conflicts``: no document on the server has more than one live leaf.
- ``feed``: each reader's last row per id equals a full read of ``_changes`` at the end.
- ``central``: the central records equal a rebuild, and every live record's row has its winning rev.
- ``quarantine``: no write was refused; ``syncs``: no sync failed or was retried; ``logs``: no server error.
"""
from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select

from bench import fleetcheck
from bench.fleet import ADMIN, DB_NAME, Plan, cluster, enrol_fleet, init, make_app, seed
from bench.fleetcpu import CpuMeter, WaitSampler
from bench.fleetdevice import Behaviour, PyDevice, SyncRecord, run_devices, sync_devices
from bench.fleetpouch import PouchFleet

CENTRAL_TYPES = ("household", "patient", "visit")


@dataclass
class Outcome:
    """Figures and check results of one run."""

    plan: Plan
    pause: tuple[float, float] = (0.0, 0.0)  # the tablets' pause between syncs
    seconds: float = 0.0  # wall time of the load phase
    syncs: list[SyncRecord] = field(default_factory=list)  # load phase only
    settle_syncs: list[SyncRecord] = field(default_factory=list)
    resolutions: int = 0
    field_conflicts: int = 0
    documents: int = 0
    deleted: int = 0  # documents whose winner is a deletion
    central_rows: int = 0
    feed_reads: int = 0
    problems: dict[str, list[str]] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)  # wall seconds of setup, load, settle, checks
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds of each part during the load phase
    waits: dict[str, float] = field(default_factory=dict)  # mean PostgreSQL connections per state, load phase

    @property
    def accepted(self) -> int:
        """Revisions the servers accepted from tablets during the load phase."""
        return sum(s.pushed for s in self.syncs)

    def percentile(self, q: float) -> float:
        """A percentile (0..100) of the load phase's sync times, in seconds."""
        times = sorted(s.seconds for s in self.syncs)
        if len(times) < 2:
            return times[0] if times else 0.0
        return statistics.quantiles(times, n=100, method="inclusive")[round(q) - 1]

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return not any(self.problems.values())


def _sync_all(py: list[PyDevice], pouch: PouchFleet | None, direction: str) -> list[SyncRecord]:
    """One more sync of every tablet in ``direction`` (push or pull), all at once, without work."""
    out: list[SyncRecord] = []
    if pouch is not None:
        pouch.send({"op": "sync", "direction": direction})
    sync_devices(py, direction, out)
    if pouch is not None:
        out += pouch.records(pouch.answer())
    return out


def _central(app: Any, server: fleetcheck.State, outcome: Outcome) -> list[str]:
    """Compare the central records with a rebuild, and with the server's winners."""
    from models import db
    from models.conflicts import ConflictRecord, Resolution
    from models.quarantine import QuarantinedRevision
    from sync.records.worker import rebuild, snapshot
    with app.app_context():
        before = snapshot(DB_NAME)
        rebuild(DB_NAME)
        after = snapshot(DB_NAME)
        outcome.resolutions = db.session.scalar(select(func.count()).select_from(Resolution)) or 0
        outcome.field_conflicts = db.session.scalar(select(func.count()).select_from(ConflictRecord)) or 0
        held = db.session.scalars(select(QuarantinedRevision.reason)).all()
        db.session.remove()
    outcome.problems["quarantine"] = [f"refused: {reason}" for reason in held[:5]]
    outcome.central_rows = sum(len(rows) for rows in before.values())
    problems = [] if before == after else [f"table {t}: the rebuild differs" for t in before
                                           if before[t] != after.get(t)]
    revs = {row["doc_id"]: row["rev"] for rows in before.values() for row in rows}
    for doc_id, entry in server.items():
        winner = entry["winner"]
        if winner and winner.get("type") in CENTRAL_TYPES and revs.get(doc_id) != winner["_rev"]:
            problems.append(f"{doc_id}: central rev {revs.get(doc_id)}, winner {winner['_rev']}")
    return problems[:10]


class Fleet:
    """The tablets, servers and readers of one run, between its phases."""

    def __init__(self, plan: Plan, how: Behaviour, workdir: Path, database_url: str) -> None:
        self.plan, self.how, self.workdir, self.database_url = plan, how, workdir, database_url
        self.outcome = Outcome(plan, how.pause)
        init(workdir, database_url)
        self.app = make_app(database_url)

    def start(self, stack: ExitStack) -> None:
        """Servers, worker, accounts, seed records, feed readers and tablets."""
        plan, workdir = self.plan, self.workdir
        self.running = stack.enter_context(cluster(workdir, self.database_url, plan))
        # Accounts and tablet stores are made while the servers start.
        self.tablets = enrol_fleet(self.app, plan)
        self.pouch_tablets = [t for t in self.tablets if t.pouch]
        self.pouch = None
        if self.pouch_tablets:
            self.pouch = PouchFleet(self.pouch_tablets, self.running.roots, self.how, workdir / "pouch.log")
            stack.callback(self.pouch.close)
        with ThreadPoolExecutor(4) as pool:
            self.py = list(pool.map(lambda t: PyDevice.create(
                str(workdir / f"{t.name}.sqlite"), t.name, t.user, t.village, t.token, self.running.roots, t.home,
                t.seed, DB_NAME), [t for t in self.tablets if not t.pouch]))
        for device in self.py:
            stack.callback(device.close)
        self.running.wait_up()
        self.owner = seed(self.running, plan, self.tablets)  # doc id -> village, for every document made
        last = plan.servers - 1
        self.readers = [fleetcheck.FeedReader(self.running.db_url(0), ADMIN, limit=37, longpoll=False),
                        fleetcheck.FeedReader(self.running.db_url(last), ADMIN, limit=100, longpoll=True)]
        for reader in self.readers:
            reader.start()
            stack.callback(reader.stop)

    def load(self) -> None:
        """Every tablet loops (sync, work, pause) for ``plan.seconds``; CPU is metered meanwhile."""
        started, outcome, pouch = time.monotonic(), self.outcome, self.pouch
        meter = CpuMeter(self.running, pouch, self.database_url)
        sampler = WaitSampler(self.database_url) if self.database_url.startswith("postgresql") else None
        if sampler is not None:
            sampler.start()
        if pouch is not None:
            pouch.send({"op": "run", "seconds": self.plan.seconds})
        run_devices(self.py, self.how, self.plan.seconds, outcome.syncs)
        if pouch is not None:
            answer = pouch.answer()
            outcome.syncs += pouch.records(answer)
            villages = {t.name: t.village for t in self.pouch_tablets}
            for name, ids in answer["created"].items():
                self.owner.update(dict.fromkeys(ids, villages[name]))
        outcome.seconds = time.monotonic() - started
        outcome.cpu = meter.used()
        outcome.waits = sampler.means() if sampler is not None else {}
        for device in self.py:
            self.owner.update(dict.fromkeys(device.created, device.village))

    def settle(self) -> None:
        """Every tablet pushes, the worker resolves every conflict, every tablet pulls."""
        self.outcome.settle_syncs += _sync_all(self.py, self.pouch, "push")
        fleetcheck.wait_for(lambda: fleetcheck.caught_up(self.app, DB_NAME), 120, "the worker catching up")
        self.outcome.settle_syncs += _sync_all(self.py, self.pouch, "pull")
        fleetcheck.wait_for(lambda: fleetcheck.caught_up(self.app, DB_NAME), 60, "the worker catching up again")

    def check_replicas(self, server: fleetcheck.State) -> list[str]:
        """Every tablet against the server's documents of its village; the server against what was made."""
        owner = self.owner
        problems = [f"the server holds {i}, which no tablet made" for i in sorted(server.keys() - owner.keys())][:5]
        problems += [f"the server lacks {i}" for i in sorted(owner.keys() - server.keys())][:5]
        states = {d.name: fleetcheck.device_state(d.store) for d in self.py}
        if self.pouch is not None:
            dumped = self.pouch.call({"op": "dump"})["states"]
            states.update({name: fleetcheck.pouch_state(state) for name, state in dumped.items()})
        for tablet in self.tablets:
            expected = {i: entry for i, entry in server.items() if owner.get(i) == tablet.village}
            problems += fleetcheck.differences(expected, states[tablet.name], tablet.name)
        return problems

    def check_feed(self) -> list[str]:
        """Each reader's last row per id against a full read of the feed now."""
        resp = requests.get(f"{self.running.db_url(0)}/_changes", params={"style": "all_docs"}, auth=ADMIN,
                            timeout=120)
        resp.raise_for_status()
        full, problems = resp.json()["results"], []
        for reader in self.readers:
            seen = reader.finish()
            self.outcome.feed_reads += reader.reads
            problems += [f"{reader.name}: {miss}" for miss in fleetcheck.feed_misses(full, seen)][:5]
        return problems

    def check(self) -> None:
        """Run every check into ``outcome.problems``."""
        outcome, problems = self.outcome, self.outcome.problems
        with requests.Session() as session:
            session.auth = ADMIN
            server = fleetcheck.server_state(session, self.running.db_url(0))
        outcome.documents = len(server)
        outcome.deleted = sum(entry["deleted"] for entry in server.values())
        problems["conflicts"] = [f"{i} has several live leaves" for i in fleetcheck.live_conflicts(server)][:10]
        problems["replicas"] = self.check_replicas(server)
        problems["feed"] = self.check_feed()
        status = self.running.stop_worker()
        problems["central"] = [] if status == 0 else [f"the worker exited with {status}"]
        problems["central"] += _central(self.app, server, outcome)
        problems["syncs"] = [f"{s.device} ({s.kind}) on server {s.server}: {s.error or 'retried'}"
                             for s in outcome.syncs + outcome.settle_syncs if not s.ok or s.retries][:10]
        problems["logs"] = self.running.log_errors()[:10]


def run_fleet(plan: Plan, workdir: Path, database_url: str, how: Behaviour | None = None) -> Outcome:
    """Run the fleet on an empty database at ``database_url``; return its figures and checks."""
    clock = time.monotonic()
    fleet = Fleet(plan, how or Behaviour(), workdir, database_url)
    phases = fleet.outcome.phases

    def lap(name: str) -> None:
        phases[name] = time.monotonic() - clock - sum(phases.values())
    try:
        with ExitStack() as stack:
            fleet.start(stack)
            lap("setup")
            fleet.load()
            lap("load")
            fleet.settle()
            lap("settle")
            fleet.check()
            lap("checks")
    finally:
        with fleet.app.app_context():
            from models import db
            db.engine.dispose()
    return fleet.outcome
