"""Real PouchDB 9 tablets edit one patient offline, push, the server resolves, and every replica converges."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from models import db
from models.conflicts import ConflictRecord, Resolution
from models.health import Patient
from sync.reads import ReadOptions, get_doc
from sync.records.resolve import resolve_document
from sync.records.worker import run_once
from sync.store import create_database, stop_waiters
from sync.writes import put_doc
from tests.pouch import require_peer, run_peer

pytestmark = pytest.mark.pouchdb

DB, PID, SIGNAL = "records", "patient-0b1c", "household-signal"
T1, T2, T3 = "2026-03-02T08:00:00Z", "2026-03-02T12:00:00+03:00", "2026-03-02T10:00:00Z"  # T2 is before T3
BASE = {"type": "patient", "area": "north/district-3", "household_id": "household-1", "given_name": "Amina",
        "sex": "female", "estimated_age_years": 34, "phone": "+254 700 000001",
        "consent": {"share_with_partners": False}, "chronic_conditions": ["hypertension"],
        "updated_at": "2026-03-01T08:00:00Z", "updated_by": "chw0"}

# name: (edits per device (None: the device deletes), push order, the fields expected after resolution,
#        the conflicts recorded for a supervisor as (kind, field))
CASES = {
    "different fields": ({"a": {"phone": "+254 700 000002", "updated_at": T1, "updated_by": "chw-a"},
                          "b": {"given_name": "Aminah", "updated_at": T3, "updated_by": "chw-b"}}, "ab",
                         {"phone": "+254 700 000002", "given_name": "Aminah", "updated_at": T3, "updated_by": "chw-b"},
                         []),
    "same field, a pushes first": ({"a": {"phone": "+254 700 000002", "updated_at": T3, "updated_by": "chw-a"},
                                    "b": {"phone": "+254 700 000003", "updated_at": T2, "updated_by": "chw-b"}}, "ab",
                                   {"phone": "+254 700 000002", "updated_at": T3, "updated_by": "chw-a"},
                                   [("field", "phone")]),
    "same field, b pushes first": ({"a": {"phone": "+254 700 000002", "updated_at": T3, "updated_by": "chw-a"},
                                    "b": {"phone": "+254 700 000003", "updated_at": T2, "updated_by": "chw-b"}}, "ba",
                                   {"phone": "+254 700 000002", "updated_at": T3, "updated_by": "chw-a"},
                                   [("field", "phone")]),
    "one deletes, one edits": ({"a": None, "b": {"sex": "unknown", "updated_at": T1, "updated_by": "chw-b"}}, "ba",
                               {"sex": "unknown", "updated_at": T1, "updated_by": "chw-b"},
                               [("delete_vs_edit", "")]),
    "three devices, three branches": (
        {"a": {"phone": "+254 700 000002", "chronic_conditions": ["hypertension", "diabetes"], "updated_at": T1,
               "updated_by": "chw-a"},
         "b": {"phone": "+254 700 000003", "consent": {"share_with_partners": True}, "updated_at": T3,
               "updated_by": "chw-b"},
         "c": {"chronic_conditions": ["asthma"], "given_name": "Amina W.", "updated_at": T2, "updated_by": "chw-c"}},
        "cab", {"phone": "+254 700 000003", "consent": {"share_with_partners": True}, "given_name": "Amina W.",
                "chronic_conditions": ["asthma", "diabetes"], "updated_at": T3, "updated_by": "chw-b"},
        [("field", "phone")]),
}


def peer_script(edits: dict[str, dict[str, Any] | None], order: str, signal: Path) -> dict[str, Any]:
    """Pull, edit offline, push in ``order``, signal the test, wait for the signal doc, pull again."""
    devices = sorted(edits)
    steps: list[dict[str, Any]] = [{"op": "replicate", "source": "server", "target": d} for d in devices]
    for device in devices:
        change = edits[device]
        steps.append({"op": "remove", "db": device, "id": PID} if change is None
                     else {"op": "update", "db": device, "id": PID, "set": change})
    steps += [{"op": "replicate", "source": d, "target": "server"} for d in order]
    steps.append({"op": "touch", "path": str(signal)})
    for device in devices:
        # The server writes the signal doc after its resolution, so once it arrives the resolution has too;
        # a last one-shot pull makes sure the whole feed up to it is in.
        steps += [{"op": "replicate", "source": "server", "target": device, "options": {"live": True},
                   "until": {"db": device, "id": SIGNAL}},
                  {"op": "replicate", "source": "server", "target": device}]
    return {"remotes": {"server": ""}, "steps": steps, "snapshot": devices}


def run_with_resolution(app: Flask, couch_url: str, script: dict[str, Any], signal: Path) -> tuple[Any, Any]:
    """Run the peer in a thread; when it signals, resolve on the server and write the signal doc."""
    require_peer()
    script["remotes"]["server"] = f"{couch_url}/{DB}"
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(result=_run(script)), daemon=True)
    thread.start()
    deadline = time.monotonic() + 90
    while not signal.exists():
        assert thread.is_alive() or signal.exists(), f"the peer ended before pushing: {outcome}"
        assert time.monotonic() < deadline, "the peer did not push in time"
        time.sleep(0.05)
    with app.app_context():
        # The worker resolves, as it does in production, and projects the result.
        run_once(DB)
        resolved = db.session.scalar(db.select(Resolution.merge_rev).where(Resolution.doc_id == PID))
        put_doc(DB, {"_id": SIGNAL, "type": "household", "area": "north/district-3", "name": "signal",
                     "updated_at": T1, "updated_by": "server"})
        db.session.remove()
    thread.join(120)
    assert not thread.is_alive(), "the peer did not finish"
    # The cancelled live pulls leave long-poll feeds waiting on the server: end them now, or the
    # server's teardown waits out its join timeout for them.
    stop_waiters()
    result = outcome["result"]
    assert isinstance(result, dict), result
    return resolved, result


def _run(script: dict[str, Any]) -> Any:
    try:
        return run_peer(script)
    except AssertionError as exc:  # reported by the caller's assertion, in the test's thread
        return str(exc)


@pytest.mark.parametrize("case", list(CASES))
def test_tablets_converge_on_the_servers_resolution(app: Flask, couch_url: str, tmp_path: Path, case: str) -> None:
    edits, order, expected, recorded = CASES[case]
    with app.app_context():
        create_database(DB)
        put_doc(DB, {"_id": PID, **BASE})
    signal = tmp_path / "pushed"
    resolved, result = run_with_resolution(app, couch_url, peer_script(edits, order, signal), signal)

    with app.app_context():
        server = get_doc(DB, PID, None, ReadOptions(conflicts=True))
        conflicts = [(c.kind, c.field) for c in db.session.scalars(db.select(ConflictRecord))]
        again = resolve_document(DB, PID)
        run_once(DB)
        central = db.session.get(Patient, (DB, PID))
        db.session.remove()
    assert again is None and conflicts == recorded
    assert "_conflicts" not in server
    assert {k: v for k, v in server.items() if not k.startswith("_")} == {**BASE, **expected}
    if None in edits.values():
        assert resolved is None  # the live edit wins; no merge is written
    else:
        assert resolved == server["_rev"] and resolved.startswith("3-")
    # The central record says what the documents say.
    assert central is not None and (central.rev, central.deleted) == (server["_rev"], False)
    assert (central.given_name, central.phone, central.sex, central.chronic_conditions,
            central.share_with_partners) == (server["given_name"], server["phone"], server["sex"],
                                             server["chronic_conditions"], server["consent"]["share_with_partners"])
    for device in sorted(edits):
        docs = {row["id"]: row["doc"] for row in result["dbs"][device]["rows"]}
        assert docs[PID] == server, f"device {device} differs from the server"  # same rev, body, no _conflicts
