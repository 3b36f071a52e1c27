"""Seeded kill points chosen from the server's own progress, and the log of every kill.

Server kills: the proxy reports each request it forwards; the controller arms a kind of
request (a push's ``_bulk_docs``, its ``_revs_diff``, a pull's ``_bulk_get``/``open_revs``,
a checkpoint's ``PUT _local``, a feed read), lets a seeded number of them pass, and SIGKILLs
the gunicorn group a seeded few milliseconds after the next one went in, so the kill lands
while that request is inside the server. The first patient merge request is always a kill
point. Worker kills: the controller polls the database and kills ``wasl worker`` just after a
resolution row appears (the worker is writing merge revisions and has not projected that
batch yet) or just after its checkpoint moved with work still pending (mid-batch).
"""
from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

from .processes import Server, Worker

ARM_TIMEOUT_S = 8.0


def classify(method: str, path: str) -> str | None:
    """The kind of a request, as the kill plan names it (None: not a kill point)."""
    if "/api/v1/duplicates/" in path and path.endswith("/merge") and method == "POST":
        return "merge"
    if not path.startswith("/couch/"):
        return None
    if "/_bulk_docs" in path:
        return "push"
    if "/_revs_diff" in path:
        return "revs_diff"
    if "/_bulk_get" in path or "open_revs=" in path:
        return "pull"
    if "/_local/" in path and method == "PUT":
        return "checkpoint"
    if "/_changes" in path:
        return "feed"
    return None


@dataclass
class Kill:
    """One SIGKILL: what was killed, at which point, how long after the request went in."""

    number: int
    process: str  # "server", "worker" or "server+worker"
    kind: str
    detail: str
    delay_ms: int
    at_s: float

    def line(self) -> str:
        """The kill as one log line."""
        return (f"kill {self.number:2d} at {self.at_s:6.2f}s {self.process:13s} {self.kind:10s} "
                f"+{self.delay_ms:2d}ms {self.detail}")


class Killer:
    """Runs the server and worker kill plans in two threads; every kill is logged."""

    def __init__(self, server: Server, worker: Worker, rng: random.Random, positions: Callable[[], tuple[int, int]],
                 resolutions: Callable[[], int], say: Callable[[str], None] = print) -> None:
        self.server, self.worker, self.rng, self.say = server, worker, rng, say
        self.positions, self.resolutions = positions, resolutions
        self.kills: list[Kill] = []
        self.down_s = 0.0  # how long the server was not there, in all
        self.merge_pending = True
        # Set while the first merge request would be killed (and for good after): the supervisor waits for it.
        self.armed = threading.Event()
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._worker_lock = threading.Lock()
        self._armed: dict[str, int] = {}
        self._fired: tuple[str, str] | None = None
        self._event = threading.Event()

    # ------------------------------------------------------------------ the proxy's callback
    def watch(self, method: str, path: str) -> None:
        """Count a forwarded request against the armed kinds; fire when one reaches its turn."""
        kind = classify(method, path)
        with self._lock:
            if kind is None or kind not in self._armed or self._fired is not None:
                return
            if self._armed[kind] > 0:
                self._armed[kind] -= 1
                return
            self._fired = (kind, f"{method} {path[:90]}")
        self._event.set()

    def _log(self, process: str, kind: str, detail: str, delay: int) -> None:
        with self._lock:
            kill = Kill(len(self.kills) + 1, process, kind, detail, delay, time.monotonic() - self.started)
            self.kills.append(kill)
        self.say(kill.line())

    # ------------------------------------------------------------------ server
    def run_server(self, plan: list[str], both_at: int) -> None:
        """Kill the server at each planned kind (and the first merge); its ``both_at``-th kill takes the worker too."""
        todo, number = list(plan), 0
        while todo or self.merge_pending:
            # The next kill comes once a server waits to take over, so that one kill is one cut, not an outage.
            self.server.wait_standby()
            time.sleep(self.rng.uniform(0.1, 0.5))  # clients reconnect and get going again
            kind = todo[0] if todo else None
            with self._lock:
                self._fired, self._armed = None, {}
                if kind is not None:
                    self._armed[kind] = self.rng.randrange(0, 2)
                if self.merge_pending:
                    self._armed["merge"] = 0
                self._event.clear()
            self.armed.set()
            fired = self._event.wait(ARM_TIMEOUT_S if todo else 3 * ARM_TIMEOUT_S)
            with self._lock:
                self._armed = {}
                what = self._fired
                if self.merge_pending and (what is None or what[0] != "merge"):
                    self.armed.clear()
            if not fired or what is None:
                if todo:
                    what = (f"{kind}?", "none came in time: killed anyway")
                else:
                    self.merge_pending = False  # no merge request came: the scenario's own check reports it
                    self.armed.set()
                    break
            if what[0] == "merge":
                self.merge_pending = False
                self.armed.set()
            elif todo:
                todo.pop(0)
            delay = self.rng.randrange(0, 40)
            time.sleep(delay / 1000)
            number += 1
            both = number == both_at
            with self._worker_lock if both else nullcontext():
                down = time.monotonic()
                self.server.kill()
                self.down_s += time.monotonic() - down  # until the next server took over
                if both:
                    self.worker.kill()
                self._log("server+worker" if both else "server", what[0], what[1], delay)
                if both:
                    self.worker.start(batch_size=self.rng.randrange(5, 60))

    # ------------------------------------------------------------------ worker
    def run_worker(self, plan: list[str]) -> None:
        """Kill the worker at each planned point: ``resolve`` or ``project``, once it is running.

        A point that does not come in time is killed anyway (marked ``?``) and tried again, up to three misses.
        """
        todo, misses = list(plan), 0
        while todo:
            kind = todo.pop(0)
            deadline = time.monotonic() + 60
            while not self.worker.ready() and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(self.rng.uniform(0.1, 0.5))
            base_done, base_res = self.positions()[0], self.resolutions()
            deadline = time.monotonic() + ARM_TIMEOUT_S
            detail = ""
            while time.monotonic() < deadline and not detail:
                done, seq = self.positions()
                if kind == "resolve" and self.resolutions() > base_res:
                    detail = f"resolution row {self.resolutions()}, checkpoint {done}/{seq}"
                elif kind == "project" and done != base_done and done < seq:
                    detail = f"checkpoint moved {base_done} -> {done}, update_seq {seq}"
                else:
                    time.sleep(0.025)  # each look costs the test process a few queries
            if not detail and misses < 3:
                misses += 1
                todo.append(kind)
            delay = self.rng.randrange(0, 30)
            time.sleep(delay / 1000)
            with self._worker_lock:
                self.worker.kill()
                self._log("worker", kind if detail else f"{kind}?", detail or "none came in time: killed anyway",
                          delay)
                self.worker.start(batch_size=self.rng.randrange(5, 60))
