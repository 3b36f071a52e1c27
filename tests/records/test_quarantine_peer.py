"""A real PouchDB 9 tablet pushes an invalid visit: it is denied and held, then released, and the tablet converges."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from models import db
from models.quarantine import QuarantinedRevision
from sync.reads import ReadOptions, get_doc
from sync.records.quarantine import release
from sync.rows import docs_by_ids
from sync.store import create_database, get_database
from tests.pouch import docs_by_id, require_peer, run_peer, step_result

pytestmark = pytest.mark.pouchdb

DB = "records"
STAMP = {"area": "north/district-3", "updated_at": "2026-11-20T09:15:00+03:00", "updated_by": "amina"}


def visit(doc_id: str, systolic: int) -> dict[str, Any]:
    return {"_id": doc_id, "type": "visit", **STAMP, "patient_id": "patient-1", "chw": "amina",
            "visited_at": "2026-11-20T09:00:00Z", "kind": "routine",
            "observations": {"bp_systolic": systolic, "bp_diastolic": 80}}


GOOD = [visit(f"visit-{i}", 120 + i) for i in range(3)]
BAD = visit("visit-bad", 12)  # 120 typed without its last digit: below the 50 floor
CORRECTED = {**{k: v for k, v in BAD.items() if k != "_id"}, "observations": {"bp_systolic": 120, "bp_diastolic": 80},
             "notes": "systolic corrected from 12 to 120 after a call with the CHW"}


def test_a_denied_visit_is_held_released_and_pulled_back(app: Flask, couch_url: str, tmp_path: Path) -> None:
    require_peer()
    with app.app_context():
        create_database(DB)
    signal = tmp_path / "pushed"
    script = {"remotes": {"server": f"{couch_url}/{DB}"}, "steps": [
        {"op": "bulkDocs", "docs": [GOOD[0], BAD, GOOD[1], GOOD[2]]},
        {"op": "replicate", "source": "local", "target": "server", "as": "push"},
        {"op": "touch", "path": str(signal)},
        # Live, so it waits for the release the test makes once it sees the signal.
        {"op": "replicate", "source": "server", "target": "local", "options": {"live": True},
         "until": {"db": "local", "id": "visit-bad", "field": "notes", "value": CORRECTED["notes"]}},
    ]}
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(result=_run(script)), daemon=True)
    thread.start()
    deadline = time.monotonic() + 90
    while not signal.exists():
        assert thread.is_alive(), f"the peer ended before it pushed: {outcome}"
        assert time.monotonic() < deadline, "the peer did not push in time"
        time.sleep(0.05)

    with app.app_context():
        database = get_database(DB)
        on_server = docs_by_ids(database.id, [d["_id"] for d in GOOD + [BAD]])
        items = list(db.session.scalars(db.select(QuarantinedRevision)))
        assert sorted(on_server) == [d["_id"] for d in GOOD]  # exactly the good ones
        assert [(i.doc_id, i.state, i.replicated) for i in items] == [("visit-bad", "held", True)]
        assert items[0].document["observations"]["bp_systolic"] == 12
        winner = release(items[0].id, CORRECTED, "supervisor")
        db.session.remove()
    thread.join(120)
    assert not thread.is_alive(), "the peer did not finish"
    result = outcome["result"]
    assert isinstance(result, dict), result

    push = step_result(result, "push")
    assert (push["docs_written"], push["doc_write_failures"]) == (3, 1), push
    assert [(e["id"], e["name"]) for e in push["errors"]] == [("visit-bad", "forbidden")], push["errors"]
    on_peer = docs_by_id(result["dbs"]["local"])
    with app.app_context():
        server_doc = get_doc(DB, "visit-bad", None, ReadOptions(conflicts=True))
        good_on_server = {d["_id"]: get_doc(DB, d["_id"], None, ReadOptions()) for d in GOOD}
        db.session.remove()
    assert server_doc["_rev"] == winner == on_peer["visit-bad"]["_rev"]
    assert server_doc == on_peer["visit-bad"]  # same winner, same body, no conflicts on either side
    assert {k: v for k, v in server_doc.items() if not k.startswith("_")} == CORRECTED
    assert {i: on_peer[i] for i in good_on_server} == good_on_server


def _run(script: dict[str, Any]) -> Any:
    try:
        return run_peer(script)
    except AssertionError as exc:  # reported by the caller's assertion, in the test's thread
        return str(exc)
