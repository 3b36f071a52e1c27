"""The fleet's stock PouchDB 9 tablets: one node process (bench/fleet.mjs) holding them all, driven line by line."""
from __future__ import annotations

import json
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.fleet import DB_NAME, Tablet
from bench.fleetdevice import Behaviour, SyncRecord
from bench.replication import ROOT

SCRIPT = ROOT / "bench" / "fleet.mjs"


class PouchFleet:
    """A node process whose in-memory PouchDB databases are the PouchDB tablets."""

    def __init__(self, tablets: list[Tablet], roots: list[str], how: Behaviour, log: Path) -> None:
        self.tablets = tablets
        self._log = open(log, "ab")
        self.proc = subprocess.Popen(["node", str(SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, cwd=ROOT, text=True, encoding="utf-8")
        devices = [{"name": t.name, "user": t.user, "village": t.village, "token": t.token, "roots": roots,
                    "home": t.home, "seed": t.seed} for t in tablets]
        self.call({"op": "init", "db": DB_NAME, "devices": devices, "behaviour": asdict(how)})

    def send(self, command: dict[str, Any]) -> None:
        """Send a command without waiting for its answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def answer(self) -> dict[str, Any]:
        """The answer to the command sent last."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the PouchDB tablets' node process ended ({self.proc.poll()}); see its log")
        result: dict[str, Any] = json.loads(line)
        if "error" in result:
            raise RuntimeError(f"the PouchDB tablets failed: {result['error']}\n{result.get('stack', '')}")
        return result

    def call(self, command: dict[str, Any]) -> dict[str, Any]:
        """Send a command and wait for its answer."""
        self.send(command)
        return self.answer()

    @staticmethod
    def records(answer: dict[str, Any]) -> list[SyncRecord]:
        """The sync records of a ``run`` or ``sync`` answer."""
        return [SyncRecord(**row) for row in answer["syncs"]]

    def close(self) -> None:
        """End the node process (closing stdin ends its command loop)."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
