"""What keeps the server busy while it is killed: CHW tablets, a supervisor merging patients, a feed reader.

Each actor keeps, on its own side, what the server acknowledged: a tablet the revisions of
every ``_bulk_docs`` that answered (minus refused items), the supervisor the revisions of
every merge answered 201. They retry through every kill, as a tablet on a bad link does.
"""
from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from sync.device import DeviceStore
from sync.errors import NotFound, TransientError
from sync.remote import RemoteDatabase
from sync.replicator import ReplicationResult, Replicator

from ..device.helpers import FAST, PIN
from ..replication.helpers import Wrapped
from . import data
from .processes import DB_NAME

Rev = tuple[str, str]
SYNC_DEADLINE_S = 90


class Device:
    """A CHW's tablet (the project's encrypted store and replicator) editing offline and syncing."""

    def __init__(self, name: str, workdir: Path, couch: str, seed: int, say: Callable[[str], None]) -> None:
        self.name, self.url, self.say = name, f"{couch}/{DB_NAME}", say
        self.auth = (name, data.CHWS[name])
        self.store = DeviceStore.create(str(workdir / f"{name}.sqlite"), PIN, kdf_params=FAST, db_name=DB_NAME)
        self.rng = random.Random(seed)
        self.acked: set[Rev] = set()
        self.failures: list[str] = []  # runs that ended for another reason than a lost server
        self.rounds = self.visits = self.syncs = 0

    def _remote(self) -> Wrapped:
        """The server's database, recording each revision a ``_bulk_docs`` reply accepted."""
        def bulk_docs(original: Any, docs: list[dict[str, Any]]) -> Any:
            failures = original(docs)  # returns only once the reply arrived: the rest is acknowledged
            refused = {(item.get("id"), item.get("rev")) for item in failures}
            self.acked.update((d["_id"], d["_rev"]) for d in docs if (d["_id"], d["_rev"]) not in refused)
            return failures
        remote = RemoteDatabase(self.url, auth=self.auth, timeout=(3.0, 30.0))
        return Wrapped(remote, bulk_docs_replicated=bulk_docs)

    def replicate(self, push: bool) -> ReplicationResult:
        """One direction, retried until a run completes; a run that fails for another reason is recorded."""
        deadline = time.monotonic() + SYNC_DEADLINE_S
        while True:
            remote = self._remote()
            try:
                source, target = (self.store, remote) if push else (remote, self.store)
                result = Replicator(source, target, batch_size=self.rng.choice([5, 10, 25]), retries=40,
                                    backoff=(0.05, 0.5), rng=random.Random(self.rng.random())).run()
            finally:
                remote.inner.close()
            self.syncs += 1
            self.say(f"{self.name} {'push' if push else 'pull'} ok={result.ok} docs={result.docs_written} "
                     f"retries={result.retries} failure={result.failure!r}")
            if result.ok:
                return result
            if not isinstance(result.failure, TransientError):
                self.failures.append(f"{'push' if push else 'pull'}: {result.failure!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} could not {'push' if push else 'pull'} for "
                                     f"{SYNC_DEADLINE_S} s: {result.failure!r}")
            time.sleep(0.1)

    def edit(self) -> None:
        """One round of offline work: new visits, shared patients changed, an own visit corrected or deleted."""
        for _ in range(2):
            self.store.put(data.new_visit(self.rng, self.name, self.visits))
            self.visits += 1
        for doc_id in self.rng.sample(data.busy_patients(), self.rng.randrange(1, 3)):
            try:
                body = self.store.get(doc_id)
            except NotFound:
                continue  # not pulled yet
            self.store.put(data.edit_patient(self.rng, body, self.name))
        own = [f"visit-{self.name}-{n:03d}" for n in range(self.visits)]
        doc_id = self.rng.choice(own)
        try:
            body = self.store.get(doc_id)
        except NotFound:
            return  # deleted earlier
        if self.rng.random() < 0.15:
            self.store.delete(doc_id, body["_rev"])
        elif self.rng.random() < 0.5:
            self.store.put(data.edit_visit(self.rng, body))

    def run(self, stop: threading.Event, min_rounds: int) -> None:
        """Edit and sync (push, then pull) round after round until ``stop``."""
        while self.rounds < min_rounds or not stop.is_set():
            self.edit()
            self.replicate(push=True)
            self.replicate(push=False)
            self.rounds += 1
            time.sleep(self.rng.uniform(0, 0.15))


class Supervisor:
    """Merges each duplicate pair over the REST API once the worker lists it; retries through kills."""

    def __init__(self, base: str, password: str) -> None:
        self.base = base
        self.session = requests.Session()
        self.session.auth = (data.SUPERVISOR, password)
        self.acked: set[Rev] = set()
        self.outcomes: list[str] = []  # per merge: "201" or "committed, reply lost"

    def _call(self, method: str, path: str, **kw: Any) -> requests.Response | None:
        try:
            return self.session.request(method, f"{self.base}/api/v1{path}", timeout=(3, 30), **kw)
        except requests.RequestException:
            return None

    def _merged(self, a: str, b: str) -> bool:
        """Whether a merge of the pair is recorded (a killed server may have committed before replying)."""
        resp = self._call("GET", "/merges", params={"state": "merged", "limit": 100})
        if resp is None or resp.status_code != 200:
            raise TransientError("merges not readable")
        return any({m["survivor_id"], m["merged_id"]} == {a, b} for m in resp.json()["items"])

    def merge(self, a: str, b: str, deadline: float, gate: threading.Event) -> None:
        """Merge ``b`` into ``a`` until the server answers 201, or shows the merge committed.

        Each request waits for ``gate`` (the kill controller is ready to kill inside the first merge).
        """
        while time.monotonic() < deadline:
            gate.wait(60)
            resp = self._call("POST", f"/duplicates/{a}/{b}/merge", json={"survivor": a})
            if resp is not None and resp.status_code == 201:
                body = resp.json()
                self.acked |= {(a, body["survivor_rev_after"]), (b, body["merged_rev_after"])}
                self.outcomes.append("201")
                return
            if resp is None or resp.status_code in (404, 409) or resp.status_code >= 500:
                try:
                    if self._merged(a, b):
                        self.outcomes.append("committed, reply lost")
                        return
                except TransientError:
                    pass
            time.sleep(0.1)  # the server is down, or the worker has not listed the pair yet
        raise AssertionError(f"the merge of {a} and {b} never went through")

    def run(self, start: threading.Event, pause: float) -> None:
        """Wait for ``start`` and ``pause`` seconds more, then merge every pair."""
        start.wait(60)
        time.sleep(pause)
        deadline = time.monotonic() + SYNC_DEADLINE_S
        for a, b in data.DUPLICATE_PAIRS:
            self.merge(a, b, deadline, start)


class FeedReader:
    """An incremental ``_changes`` reader (admin) that keeps each document's last listed leaves."""

    def __init__(self, url: str, password: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.auth = (data.SUPERVISOR, password)
        self.since: Any = 0
        self.latest: dict[str, tuple[bool, frozenset[str]]] = {}
        self.seqs: list[Any] = []
        self.reads = 0

    def read(self) -> bool:
        """Read one page after the reader's position; return whether it ended at the feed's end."""
        try:
            params = {"since": self.since, "style": "all_docs", "limit": 50}
            resp = self.session.get(f"{self.url}/_changes", params=params, timeout=(3, 30))
            body = resp.json() if resp.status_code == 200 else None
        except (requests.RequestException, ValueError):
            return False
        if not isinstance(body, dict) or "results" not in body:
            return False
        for row in body["results"]:
            self.seqs.append(row["seq"])
            self.latest[row["id"]] = (bool(row.get("deleted")), frozenset(c["rev"] for c in row["changes"]))
        self.since = body["last_seq"]
        self.reads += 1
        return len(body["results"]) < 50

    def run(self, stop: threading.Event) -> None:
        """Read every 100 ms until ``stop``."""
        while not stop.is_set():
            self.read()
            stop.wait(0.1)

    def catch_up(self) -> None:
        """Read until the end of the feed (the server is up and quiet)."""
        deadline = time.monotonic() + 30
        while not self.read():
            assert time.monotonic() < deadline, "the feed reader could not reach the end of the feed"
