"""One crash run: a server and a worker killed again and again while tablets, a peer and a supervisor work.

``run(workdir, url, plan)`` builds the village on ``url`` (SQLite file or PostgreSQL), runs the
kills, lets every replica finish, checks what must hold (tests/crash/checks.py) and returns a
``Report``. The test and ``bench/crash.py`` both call it; docs/crash.md describes it.
"""
from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from flask import Flask

from api import create_app
from models import db, init_db
from sync.records.worker import rebuild, snapshot
from sync.store import create_database

from ..replication.helpers import Db
from . import checks, data, peer
from .actors import Device, FeedReader, Supervisor
from .killer import Killer, Kill
from .probe import Probe
from .processes import DB_NAME, Server, Worker
from .proxy import WatchingProxy

PASSWORD = "crash-secret"


@dataclass
class Plan:
    """The seeded kill plan: server kill kinds (the first merge request is killed too), worker kill kinds."""

    seed: int
    server: list[str]
    worker: list[str]
    both_at: int = 3  # this kill (by number) takes the worker down with the server
    peer_rounds: int = 6


@dataclass
class Report:
    """What a run did and checked."""

    kills: list[Kill] = field(default_factory=list)
    acknowledged: int = 0  # acknowledged revisions checked on the server
    by_actor: dict[str, int] = field(default_factory=dict)
    documents: int = 0
    resolutions: int = 0
    merges: list[str] = field(default_factory=list)
    device_rounds: int = 0
    peer_pushes: int = 0  # round push tries of the PouchDB peer that completed
    feed_reads: int = 0
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds from the start at each phase's end

    def mark(self, phase: str, started: float, say: Callable[[str], None]) -> None:
        """Note that ``phase`` ended now."""
        self.phases[phase] = round(time.monotonic() - started, 1)
        say(f"phase {phase} done")

    def summary(self) -> str:
        """One line of figures."""
        kinds = sorted({k.kind for k in self.kills})
        return (f"{len(self.kills)} kills ({', '.join(kinds)}); {self.acknowledged} acknowledged revisions checked "
                f"({', '.join(f'{k} {v}' for k, v in sorted(self.by_actor.items()))}); {self.documents} documents; "
                f"{self.resolutions} resolutions; merges {self.merges}; {self.device_rounds} tablet rounds; "
                f"{self.peer_pushes} completed peer push tries; {self.feed_reads} feed reads; "
                f"converged; central rows equal a rebuild; {self.seconds:.1f} s {self.phases}")


def make_app(url: str) -> Flask:
    """The in-process app the test uses to set up, watch and rebuild the database."""
    return create_app({"SQLALCHEMY_DATABASE_URI": url, "WASL_RECORDS_DB": DB_NAME, "SECRET_KEY": "test-only",
                       "WASL_ADMIN_PASSWORD": PASSWORD})


@contextmanager
def _threads(*targets: Callable[[], None], on_exit: Callable[[], None] = lambda: None
             ) -> Iterator[list[BaseException]]:
    """Run ``targets`` in threads; collect their exceptions; when the block ends (or fails), call ``on_exit``
    (which tells them to stop) and join them."""
    failures: list[BaseException] = []

    def guard(fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as exc:  # reported by the caller
            failures.append(exc)
    threads = [threading.Thread(target=guard, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    try:
        yield failures
    finally:
        on_exit()
        for thread in threads:
            thread.join(60)


def _release(admin: Db) -> None:
    """Let the peer run to its end, also when the run failed: the documents it waits for are there."""
    for doc_id in (peer.CALM, peer.DONE):
        try:
            if admin.session.get(f"{admin.url}/{doc_id}", timeout=10).status_code == 404:
                admin.session.put(f"{admin.url}/{doc_id}", json={}, timeout=10)
        except requests.RequestException:
            pass  # the server is down: the peer's steps time out on their own


def _setup(app: Flask) -> None:
    with app.app_context():
        init_db()
        create_database(DB_NAME)
        data.setup_village()
        db.session.remove()


def _wait_file(path: Path, what: str, failures: list[BaseException], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert not failures, failures
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout} s"
        time.sleep(0.05)


def run(workdir: Path, url: str, plan: Plan) -> Report:
    """Run the scenario on the database at ``url``; raise AssertionError when a guarantee broke."""
    started, report, rng = time.monotonic(), Report(), random.Random(plan.seed)
    app = make_app(url)
    _setup(app)
    probe = Probe(app)
    server = Server(workdir, url, PASSWORD)
    worker = Worker(workdir, url, PASSWORD)
    log = workdir / "crash.log"

    def say(line: str) -> None:
        """Log a line of the run (kills, phases, rounds) to crash.log, with seconds since the start."""
        with open(log, "a") as out:
            out.write(f"{time.monotonic() - started:7.2f} {line}\n")
    killer = Killer(server, worker, random.Random(rng.random()), probe.positions, probe.resolutions, say)
    proxy = WatchingProxy(0, killer.watch).start()
    server.on_switch = lambda port: setattr(proxy, "upstream_port", port)
    base = f"http://127.0.0.1:{proxy.port}"
    couch, admin = f"{base}/couch", Db(f"{base}/couch/{DB_NAME}", auth=(data.SUPERVISOR, PASSWORD))
    devices: list[Device] = []
    try:
        worker.start(batch_size=50)  # it imports while the server boots
        server.start()
        written = admin.call("POST", "_bulk_docs", {"docs": data.initial_docs()})
        assert all(item.get("ok") for item in written), written
        report.mark("setup", started, say)
        devices = [Device(name, workdir, couch, rng.randrange(10**6), say) for name in ("amina", "baraka")]
        reader, supervisor = FeedReader(admin.url, PASSWORD), Supervisor(base, PASSWORD)
        stop = threading.Event()
        rounds_file, pushed_file = workdir / "peer-rounds", workdir / "peer-pushed"
        peer_url = f"http://{peer.NAME}:{data.CHWS[peer.NAME]}@127.0.0.1:{proxy.port}/couch/{DB_NAME}"
        script = peer.script(peer_url, plan.peer_rounds, rng.randrange(10**6), rounds_file, pushed_file)
        results: list[dict[str, Any]] = []
        pause = rng.uniform(0.5, 2.0)
        actors = [*(lambda d=d: d.run(stop, 3) for d in devices), lambda: reader.run(stop),
                  lambda: supervisor.run(killer.armed, pause)]
        with _threads(lambda: results.append(peer.run(script, timeout=400)),
                      on_exit=lambda: _release(admin)) as failures:
            with _threads(*actors, on_exit=stop.set) as actor_failures:
                with _threads(lambda: killer.run_server(plan.server, plan.both_at),
                              lambda: killer.run_worker(plan.worker)) as kill_failures:
                    pass
                assert not kill_failures, kill_failures
                report.mark("kills", started, say)
                say(f"the server was down {killer.down_s:.1f} s in all")
                stop.set()
            assert not actor_failures, actor_failures
            _wait_file(rounds_file, "the peer's rounds", failures)
            # The kills are over and both processes run: every replica finishes against a live server.
            admin.call("PUT", peer.CALM, {"calm": True})
            for device in devices:
                device.replicate(push=True)
            _wait_file(pushed_file, "the peer's last push", failures)
            say("the peer pushed")
            probe.wait_quiet()
            say("the worker caught up")
            for device in devices:
                device.replicate(push=False)
            admin.call("PUT", peer.DONE, {"done": True})
        assert not failures, failures
        report.mark("converged", started, say)
        report.kills = killer.kills
        winners = _check(report, probe, admin, reader, supervisor, devices, results[0], plan, say)
        report.mark("checked", started, say)
        assert worker.stop() == 0, worker.log_tail()
        say("worker stopped")
        server.stop()
        say("servers stopped")
        with app.app_context():
            projected = snapshot(DB_NAME)
            checks.assert_central_at_winners(projected, winners)
            say("snapshot taken")
            rebuild(DB_NAME)
            say("rebuilt")
            assert snapshot(DB_NAME) == projected, "central rows differ from a rebuild"
            db.session.remove()
            db.engine.dispose()
        report.mark("rebuilt", started, say)
    finally:
        proxy.close()
        worker.stop()  # the processes go first: a failed check must not leave them running
        server.stop()
        for device in devices:
            device.store.close()
        admin.close()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()  # the probe's pooled connections
    report.seconds = time.monotonic() - started
    return report


def _check(report: Report, probe: Probe, admin: Db, reader: FeedReader, supervisor: Supervisor,
           devices: list[Device], result: dict[str, Any], plan: Plan,
           say: Callable[[str], None]) -> dict[str, tuple[str, bool]]:
    """Check everything that can be checked while the server still runs; return each document's winner."""
    peer_acked, report.peer_pushes = peer.acknowledged(result, plan.peer_rounds)
    say(f"peer: {report.peer_pushes} of {plan.peer_rounds * peer.ATTEMPTS} round push tries completed; failed steps: "
        f"{peer.failures(result)}")
    acked = {"amina": devices[0].acked, "baraka": devices[1].acked, "chausiku": peer_acked,
             "supervisor": supervisor.acked}
    for name, revs in acked.items():
        assert not checks.missing_acknowledged(admin, revs), (name, checks.missing_acknowledged(admin, revs))
    report.by_actor = {name: len(revs) for name, revs in acked.items()}
    report.acknowledged = sum(report.by_actor.values())
    assert all(not d.failures for d in devices), [d.failures for d in devices]
    everything = checks.the_server(admin)
    assert not [i for i, e in everything.items() if e["winner"] and "_conflicts" in e["winner"]], "conflicts left"
    # Each tablet against the server as its CHW sees it: a tombstone that never had a body on the server
    # (created and deleted offline) carries no access key, so only admins see it (docs/access.md).
    for device in devices:
        scoped = Db(admin.url, auth=device.auth)
        checks.assert_device_converged(device.name, device.store, checks.the_server(scoped), everything)
        scoped.close()
    scoped = Db(admin.url, auth=(peer.NAME, data.CHWS[peer.NAME]))
    checks.assert_peer_converged(peer.live_docs(result), checks.the_server(scoped))
    scoped.close()
    reader.catch_up()
    report.documents = checks.assert_feed_complete(reader, admin)
    report.resolutions, report.merges = probe.resolutions(), supervisor.outcomes
    assert probe.merges() == len(data.DUPLICATE_PAIRS) == len(supervisor.outcomes), supervisor.outcomes
    report.device_rounds, report.feed_reads = sum(d.rounds for d in devices), reader.reads
    return checks.winners(admin)
