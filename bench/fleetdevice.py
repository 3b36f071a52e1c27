"""A simulated tablet of the fleet: the project's encrypted device store and replicator, as `wasl device sync`.

Each round the tablet syncs (push, pull, and push again when the pull brought something, as
``wasl_cli.tablet.sync`` does) with its home server or, now and then, the other one, then the
CHW works offline: visits, a new household with a patient, edits of the village's shared
records, the deletion of one of their own visits. Every sync is timed.
"""
from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
import requests

import crypto
from sync.device import DeviceStore
from sync.remote import RemoteDatabase
from sync.replicator import Replicator

from bench import fleetdocs

PIN = "204817"
# The floor crypto.new_params allows: a hundred stores are created in seconds.
FAST = crypto.new_params(memory_kib=19 * 1024, iterations=2, lanes=1)


@dataclass(frozen=True)
class SyncRecord:
    """One sync of one tablet: where, how long, what moved, and how it ended."""

    device: str
    kind: str  # "python" or "pouchdb"
    server: int
    seconds: float
    pushed: int  # revisions the server accepted from the tablet
    pulled: int
    retries: int
    requests: int
    ok: bool
    error: str | None = None


@dataclass
class Behaviour:
    """How a tablet works between syncs (chances per round) and where it syncs."""

    switch: float = 0.2  # a sync goes to the other server
    register: float = 0.15  # a new household with one patient
    edit: float = 0.5  # an edit of a shared household or patient
    delete: float = 0.1  # the deletion of one of the CHW's own visits
    pause: tuple[float, float] = (0.5, 2.0)  # seconds between rounds
    min_rounds: int = 2  # rounds each tablet makes even after the time is up (the second can delete)


@dataclass
class PyDevice:
    """One tablet: its store, its CHW, its device token and the servers it may reach."""

    name: str
    user: str
    village: str
    token: str
    store: DeviceStore
    roots: list[str]  # the servers' CouchDB roots
    home: int
    rng: random.Random
    db_name: str
    created: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, path: str, name: str, user: str, village: str, token: str, roots: list[str], home: int,
               seed: int, db_name: str) -> PyDevice:
        """A new, empty tablet store at ``path``."""
        store = DeviceStore.create(path, PIN, kdf_params=FAST, db_name=db_name)
        return cls(name, user, village, token, store, roots, home, random.Random(seed), db_name)

    def work(self, how: Behaviour) -> None:
        """One round of offline work on the tablet."""
        rng, user, village = self.rng, self.user, self.village
        held = self.store.all_docs()
        patients = [d for d in held if d.get("type") == "patient"]
        shared = patients + [d for d in held if d.get("type") == "household"]
        if not patients or rng.random() < how.register:
            home = fleetdocs.household(rng, village, user)
            person = fleetdocs.patient(rng, village, user, home["_id"])
            for doc in (home, person):
                self.store.put(doc)
                self.created.append(doc["_id"])
            patients.append(person)
        for _ in range(rng.randrange(1, 3)):
            doc = fleetdocs.visit(rng, village, user, rng.choice(patients)["_id"])
            self.store.put(doc)
            self.created.append(doc["_id"])
        if shared and rng.random() < how.edit:
            self.store.put(fleetdocs.edit(rng, rng.choice(shared), user))
        own = [d for d in held if d.get("type") == "visit" and d.get("chw") == user]
        if own and rng.random() < how.delete:
            victim = rng.choice(own)
            self.store.delete(victim["_id"], victim["_rev"])

    def sync(self, how: Behaviour, direction: str = "both") -> SyncRecord:
        """Push, pull (and push again after a pull that wrote), against one server; time it.

        ``direction`` "push" or "pull" does only that half (the settling syncs).
        """
        server = self.home if self.rng.random() >= how.switch else (self.home + 1) % len(self.roots)
        started = time.monotonic()
        pushes, pulls = [], []
        sent = [0]
        with requests.Session() as session:
            session.hooks["response"].append(lambda *args, **kwargs: sent.__setitem__(0, sent[0] + 1))
            remote = RemoteDatabase(f"{self.roots[server]}/{self.db_name}", auth=self.token, session=session,
                                    compress_requests=True)
            if direction != "pull":
                pushes.append(Replicator(self.store, remote).run())
            if direction != "push" and all(r.ok for r in pushes):
                pulls.append(Replicator(remote, self.store).run())
                if direction == "both" and pulls[0].ok and pulls[0].docs_written:
                    pushes.append(Replicator(self.store, remote).run())
        error = next((repr(r.failure) for r in pushes + pulls if not r.ok), None)
        error = error or next((f"refused: {r.errors[:3]}" for r in pushes + pulls if r.errors), None)
        return SyncRecord(self.name, "python", server, time.monotonic() - started,
                          sum(r.docs_written for r in pushes), sum(r.docs_written for r in pulls),
                          sum(r.retries for r in pushes + pulls), sent[0], error is None, error)

    def close(self) -> None:
        """Close the store."""
        self.store.close()


def _each(devices: list[PyDevice], job: Callable[[PyDevice], None]) -> None:
    """Run ``job`` for every tablet, each in its own thread; raise if any failed."""
    failures: list[BaseException] = []

    def guarded(device: PyDevice) -> None:
        try:
            job(device)
        except BaseException as exc:  # reported below, once every thread has ended
            failures.append(exc)

    threads = [threading.Thread(target=guarded, args=(d,), name=d.name) for d in devices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} tablets failed; the first: {failures[0]!r}") from failures[0]


def run_devices(devices: list[PyDevice], how: Behaviour, seconds: float, out: list[SyncRecord]) -> None:
    """Every tablet loops for ``seconds`` (and at least ``how.min_rounds`` times): sync, work, pause.

    The tablets start spread over one pause.
    """
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop(device: PyDevice) -> None:
        time.sleep(device.rng.uniform(0, how.pause[1]))
        rounds = 0
        while time.monotonic() < deadline or rounds < how.min_rounds:
            rounds += 1
            record = device.sync(how)
            with lock:
                out.append(record)
            device.work(how)
            time.sleep(device.rng.uniform(*how.pause))
    _each(devices, loop)


def sync_devices(devices: list[PyDevice], direction: str, out: list[SyncRecord]) -> None:
    """One sync of every tablet, all at once, in ``direction`` (push, pull or both), with either server."""
    lock = threading.Lock()

    def once(device: PyDevice) -> None:
        record = device.sync(Behaviour(switch=0.5), direction)
        with lock:
            out.append(record)
    _each(devices, once)
