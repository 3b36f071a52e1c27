"""The two kinds of device on the lossy link, the server they talk to, and the records they write.

- ``wasl_serve(host, env, folder)``: the server as production runs it (gunicorn + the records worker)
  on ``host``, the links' server address.
- ``DeviceCli``: the project's tablet client, ``wasl device enrol`` and ``wasl device sync``, each
  run as a real process inside the device's namespace (``ip netns exec``); a sync that does not
  finish is run again, as a CHW would, up to ``attempts`` times.
- ``run_peer(prefix, script)``: the stock PouchDB 9 peer (tests/peer/peer.mjs) inside a namespace.
- ``village_visit``: a schema-valid visit of about 600 bytes, so writes pass the records gate.
"""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PEER_SCRIPT = ROOT / "tests" / "peer" / "peer.mjs"
PIN = "204817"  # the tablets' PIN (given as $WASL_PIN)
VILLAGE = "north/d1/v1"
WHEN = "2026-11-20T09:00:00Z"
WORDS = ("fever cough rash diarrhoea vomiting headache referral follow-up vaccine ORS zinc amoxicillin "
         "paracetamol net pregnancy antenatal newborn breastfeeding danger sign household water counselled "
         "improved unchanged worse").split()
Json = dict[str, Any]


def wasl_env(database_url: str, folder: Path, admin_password: str, db_name: str) -> dict[str, str]:
    """The environment of a Wasl server on ``database_url`` whose records database is ``db_name``."""
    return {**os.environ, "WASL_DATABASE_URL": database_url, "WASL_ADMIN_PASSWORD": admin_password,
            "WASL_INSTANCE": str(folder / "instance"), "WASL_SECRET_KEY": "lossy-only", "WASL_RECORDS_DB": db_name}


@contextmanager
def wasl_serve(host: str, env: dict[str, str], folder: Path) -> Iterator[int]:
    """``wasl serve`` (gunicorn and the records worker, as in production) on ``host``; yield its port.

    Never on 0.0.0.0: only the links and this machine's own processes reach ``host``.
    """
    from bench.replication import stop_process, wait_until_up
    with socket.socket() as probe:  # a free port on that address
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    log = folder / "server.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([str(VENV_BIN / "wasl"), "serve", "--host", host, "--port", str(port),
                                 "--workers", "1", "--threads", "8"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_up(f"http://{host}:{port}/couch/", proc, log)
        yield port
    finally:
        stop_process(proc)
        try:  # gunicorn's worker or the records worker, should one have outlived the supervisor
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def village_visit(rng: random.Random, doc_id: str, chw: str, patient: str = "patient-9") -> Json:
    """A visit by ``chw`` in the village, drawn from ``rng``; notes pad it to about 600 bytes of JSON."""
    doc: Json = {"_id": doc_id, "type": "visit", "area": VILLAGE, "patient_id": patient, "chw": chw,
                 "kind": rng.choice(["routine", "antenatal", "screening"]), "visited_at": WHEN,
                 "updated_at": WHEN, "updated_by": chw,
                 "observations": {"temperature_c": round(rng.uniform(35.5, 40.5), 1),
                                  "muac_mm": rng.randrange(95, 160), "weight_kg": round(rng.uniform(2.5, 80), 1)}}
    words: list[str] = []
    while len(json.dumps(doc)) + len(" ".join(words)) < 600:
        words.append(rng.choice(WORDS))
    doc["notes"] = " ".join(words)
    return doc


@dataclass
class DeviceCli:
    """One tablet running ``wasl device`` inside its namespace (``prefix``), with its store at ``store``."""

    prefix: list[str]
    store: Path
    pin: str = PIN
    attempts: int = 8
    runs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # each run's wall time

    def _run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "WASL_PIN": self.pin, "PYTHONUNBUFFERED": "1"}
        started = time.monotonic()
        try:
            proc = subprocess.run([*self.prefix, str(VENV_BIN / "wasl"), "device", *args], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:  # the child is killed by run(): report it as a failed run
            proc = subprocess.CompletedProcess(exc.cmd, -9, str(exc.stdout or ""), f"timed out after {timeout} s")
        self.runs.append(proc)
        self.seconds.append(time.monotonic() - started)
        return proc

    def until_ok(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run ``wasl device ARGS`` until it exits 0, as a CHW presses "sync" again.

        :raise AssertionError: with every run's output, when no run succeeded in ``attempts``.
        """
        tried = []
        for _ in range(self.attempts):
            proc = self._run(*args, timeout=timeout)
            if proc.returncode == 0:
                return proc
            tried.append(f"exit {proc.returncode}: {proc.stdout[-400:]} {proc.stderr[-600:]}")
            if "a store already exists" in proc.stderr:
                break
        raise AssertionError(f"wasl device {' '.join(args)} never finished:\n" + "\n".join(tried))

    def enrol(self, base_url: str, code: str, db_name: str) -> str:
        """Enrol over the link; return the device id."""
        proc = self.until_ok("enrol", "--server", base_url, "--code", code, "--store", str(self.store),
                             "--name", self.store.stem, "--db", db_name)
        return proc.stdout.split("(device ")[1].split(")")[0]

    def sync(self) -> subprocess.CompletedProcess[str]:
        """One successful ``wasl device sync`` (after as many failed ones as the link caused)."""
        return self.until_ok("sync", "--store", str(self.store))

    @property
    def failed_runs(self) -> int:
        """Runs that did not finish (the link broke them)."""
        return sum(1 for proc in self.runs if proc.returncode != 0)

    @property
    def failures(self) -> list[str]:
        """How each failed run ended and when: "exit 1 after 95 s"; a run killed at its timeout shows exit -9."""
        return [f"exit {proc.returncode} after {seconds:.0f} s"
                for proc, seconds in zip(self.runs, self.seconds) if proc.returncode != 0]


def run_peer(prefix: list[str], script: Json, timeout: float = 300) -> Json:
    """Run ``script`` in the PouchDB 9 peer inside a namespace; return its JSON result.

    :raise AssertionError: node crashed, timed out or printed no JSON.
    """
    started = time.monotonic()
    try:
        proc = subprocess.run([*prefix, "node", str(PEER_SCRIPT)], input=json.dumps(script), capture_output=True,
                              text=True, encoding="utf-8", timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"PouchDB peer timed out after {timeout} s: {str(exc.stderr)[-2000:]}") from None
    try:
        result: Json = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"PouchDB peer exited {proc.returncode} without a JSON result:\n"
                             f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}") from None
    result["seconds"] = time.monotonic() - started
    return result
