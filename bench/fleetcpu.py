"""Where the time of a fleet run goes: CPU per part, and what PostgreSQL's connections wait for.

Read from /proc: a process tree's user+system time (its live members, plus what its root
has reaped, which covers PostgreSQL's short-lived backends), and the machine's busy time.
"Other" is the machine's busy time minus the parts: on a shared machine, other jobs.
"""
from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

from bench.fleet import Cluster

TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` (with the children it reaped) and of its live descendants."""
    total, stack, root = 0, [pid], True
    while stack:
        current = stack.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            for task in Path(f"/proc/{current}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except OSError:  # it ended meanwhile
            continue
        total += int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if root else 0)
        root = False
    return total / TICK


def postmaster(port: int) -> int | None:
    """The pid of the PostgreSQL server listening on ``port`` (found by its command line), if any."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"/postgres") and f"-p {port}".encode() in b" ".join(args):
            return int(entry.name)
    return None


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy since boot (all but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / TICK


class CpuMeter:
    """Take the CPU counters now; ``used()`` gives what each part spent since."""

    def __init__(self, cluster: Cluster, pouch: Any, database_url: str) -> None:
        port = int(database_url.rsplit(":", 1)[1].split("/", 1)[0]) if "postgresql" in database_url else 0
        self.pids: dict[str, list[int]] = {
            "servers": [p.pid for p in cluster.servers],
            "worker": [cluster.worker.pid] if cluster.worker else [],
            "postgresql": [pid for pid in [postmaster(port)] if pid is not None],
            "pouchdb tablets (node)": [pouch.proc.pid] if pouch is not None else [],
        }
        self.start = self._read()

    def _read(self) -> dict[str, float]:
        now = {name: sum(tree_cpu(pid) for pid in pids) for name, pids in self.pids.items()}
        times = os.times()
        now["python tablets + checks (this process)"] = times.user + times.system
        now["machine"] = machine_busy()
        return now

    def used(self) -> dict[str, float]:
        """CPU seconds per part since the meter was made, and ``other`` (the rest of the machine)."""
        end = self._read()
        out = {name: round(end[name] - self.start[name], 1) for name in end}
        out["other"] = round(out["machine"] - sum(v for k, v in out.items() if k != "machine"), 1)
        return out


class WaitSampler(threading.Thread):
    """Samples what the database's server connections are doing, five times a second, until stopped.

    ``means()`` gives the mean number of connections per state: running a statement, waiting for
    the database's write lock (the ``couch_database`` row every write updates), waiting for
    another lock, or inside a transaction waiting for the app to send its next statement.
    """

    QUERY = ("SELECT wait_event_type, wait_event, query FROM pg_stat_activity"
             " WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'")

    def __init__(self, database_url: str) -> None:
        super().__init__(name="pg-waits", daemon=True)
        self.dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
        self.counts: Counter[str] = Counter()
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self._stop_event.wait(0.2):
                for kind, event, query in conn.execute(self.QUERY):
                    if kind == "Lock":
                        write_lock = query.startswith("UPDATE couch_database SET update_seq = update_seq")
                        self.counts["waiting for the write lock" if write_lock else "waiting for another lock"] += 1
                    elif kind == "Client":
                        self.counts["waiting for the app"] += 1
                    else:
                        self.counts["running"] += 1
                self.samples += 1

    def means(self) -> dict[str, float]:
        """Stop; the mean number of connections in each state over the samples."""
        self._stop_event.set()
        self.join(10)
        return {state: round(count / max(1, self.samples), 2) for state, count in sorted(self.counts.items())}
