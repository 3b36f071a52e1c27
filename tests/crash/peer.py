"""A stock PouchDB 9 tablet (tests/peer/peer.mjs) in the crash scenario.

It works in rounds (pull, new visits, a patient edited, then two tries to push), each
replication allowed to fail while the server is dead. After its rounds it touches ``rounds_file`` and waits for the
server's ``_design/calm`` (the kills are over); then it pushes once more, touches
``pushed_file``, waits for ``_design/done`` (the worker has caught up) and pulls. A push that completed acknowledges
every leaf its store held right after it (no step writes to the store in between).
"""
from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path
from typing import Any

from ..pouch import PEER_SCRIPT, require_peer
from . import data

NAME = "chausiku"
CALM, DONE = "_design/calm", "_design/done"
Rev = tuple[str, str]
ATTEMPTS = 2  # pushes per round
# A replication step in a round gives up after this: one was seen to hang in a run (undiagnosed), and
# a round must not hold the whole scenario up.
ROUND_STEP_MS = 20000
NO_KEEPALIVE = Path(__file__).resolve().parent / "no_keepalive.cjs"


def _leaves(all_docs: dict[str, Any]) -> set[Rev]:
    """Every live leaf in an ``allDocs({include_docs, conflicts})`` result."""
    out: set[Rev] = set()
    for row in all_docs.get("rows", []):
        doc = row["doc"]
        out |= {(row["id"], rev) for rev in [doc["_rev"], *doc.get("_conflicts", [])]}
    return out


def script(url: str, rounds: int, seed: int, rounds_file: Path, pushed_file: Path) -> dict[str, Any]:
    """The peer's whole run, as steps for peer.mjs."""
    rng = random.Random(seed)
    docs = {"include_docs": True, "conflicts": True}
    steps: list[dict[str, Any]] = []
    for k in range(rounds):
        steps.append({"op": "replicate", "source": "server", "target": "local", "may_fail": True,
                      "as": f"pull{k}", "timeout_ms": ROUND_STEP_MS})
        for n in range(2):
            steps.append({"op": "put", "doc": data.new_visit(rng, NAME, 2 * k + n)})
        edit = data.edit_patient(rng, {}, NAME)
        steps.append({"op": "update", "id": rng.choice(data.busy_patients()), "set": edit, "may_fail": True})
        for attempt in range(ATTEMPTS):  # a tablet tries again when the server is away
            steps += [{"op": "replicate", "source": "local", "target": "server", "may_fail": True,
                       "as": f"push{k}.{attempt}", "timeout_ms": ROUND_STEP_MS},
                      {"op": "allDocs", "options": docs, "as": f"local{k}.{attempt}"},
                      {"op": "sleep", "ms": rng.randrange(200, 600)}]
    # Waiting for a document on the server: a live replication between two local stores never fails nor backs
    # off, and "until" polls the server meanwhile (a failed look counts as "not yet"). A live pull from the
    # server with retry would do, but cancelling it waits out PouchDB's back-off, which grows with every kill.
    # It runs a moment before the wait: a replication cancelled before it has started never ends.

    def wait_for(doc_id: str) -> list[dict[str, Any]]:
        return [{"op": "replicate", "source": "local", "target": "idle", "options": {"live": True},
                 "background": True, "as": doc_id},
                {"op": "sleep", "ms": 300},
                {"op": "stop", "handle": doc_id, "until": {"db": "server", "id": doc_id}, "timeout_ms": 150000}]
    steps += [{"op": "touch", "path": str(rounds_file)}, *wait_for(CALM),
              {"op": "replicate", "source": "local", "target": "server", "as": "final_push"},
              {"op": "allDocs", "options": docs, "as": "final_local"},
              {"op": "touch", "path": str(pushed_file)}, *wait_for(DONE),
              {"op": "replicate", "source": "server", "target": "local", "as": "final_pull"}]
    return {"remotes": {"server": url}, "steps": steps, "snapshot": ["local"], "step_timeout_ms": 60000}


def run(script: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run the peer (tests/pouch.run_peer, with keep-alive off: see no_keepalive.cjs); return its result."""
    require_peer()
    env = {**os.environ, "NODE_OPTIONS": f"--require {NO_KEEPALIVE}"}
    proc = subprocess.run(["node", str(PEER_SCRIPT)], input=json.dumps(script), capture_output=True, text=True,
                          encoding="utf-8", timeout=timeout, check=False, env=env)
    try:
        result: dict[str, Any] = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"PouchDB peer exited {proc.returncode} without a JSON result\n"
                             f"{proc.stderr[-3000:]}") from None
    assert result.get("ok"), json.dumps({"error": result.get("error"), "steps": result.get("steps", [])[-4:]})[:4000]
    return result


def acknowledged(result: dict[str, Any], rounds: int) -> tuple[set[Rev], int]:
    """The revisions completed pushes acknowledged, and how many of the round push tries completed."""
    acked, completed = set(), 0
    names = [(f"push{k}.{a}", f"local{k}.{a}") for k in range(rounds) for a in range(ATTEMPTS)]
    names.append(("final_push", "final_local"))
    for push, local in names:
        outcome = result["results"].get(push, {})
        if outcome.get("ok") and outcome.get("status") == "complete" and not outcome.get("doc_write_failures"):
            acked |= _leaves(result["results"][local])
            completed += push != "final_push"
    return acked, completed


def failures(result: dict[str, Any]) -> dict[str, int]:
    """How often each (op, error message) of the tolerated failed steps occurred, for the run's log."""
    out: dict[str, int] = {}
    for step in result.get("steps", []):
        error = step.get("error")
        if error:
            cause = error.get("cause") or error
            key = f"{step['op']}: {str(cause.get('message', ''))[:80]}"
            out[key] = out.get(key, 0) + 1
    return out


def live_docs(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The peer's final live documents (design documents left out), by id."""
    return {row["id"]: row["doc"] for row in result["dbs"]["local"]["rows"] if not row["id"].startswith("_design/")}
