"""A real PouchDB tablet records a visit to a patient a supervisor merged away meanwhile."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from models import db
from models.health import Patient, Visit
from sync.reads import ReadOptions, get_doc
from sync.records.duplicates import list_candidates, refresh_candidates
from sync.records.patientmerge import merge_patients, undo_merge
from sync.records.worker import run_once
from sync.store import create_database, stop_waiters
from sync.writes import put_doc
from tests.pouch import require_peer, run_peer

pytestmark = pytest.mark.pouchdb

DB, AREA, WHEN = "records", "north/district-3/village-12", "2026-03-01T08:00:00Z"
KEPT, MERGED, VISIT = "patient-kept", "patient-merged", "visit-after-merge"
PATIENT = {"type": "patient", "area": AREA, "household_id": "household-1", "family_name": "Hassan",
           "sex": "male", "birth_date": "1984-02-11", "updated_at": WHEN, "updated_by": "chw0"}


def signal_doc(doc_id: str) -> dict[str, Any]:
    return {"_id": doc_id, "type": "household", "area": AREA, "name": doc_id, "updated_at": WHEN,
            "updated_by": "server"}


def wait_for(path: Path, thread: threading.Thread, outcome: dict[str, Any]) -> None:
    deadline = time.monotonic() + 90
    while not path.exists():
        assert thread.is_alive(), f"the peer ended early: {outcome}"
        assert time.monotonic() < deadline, f"the peer did not reach {path.name}"
        time.sleep(0.05)


def test_a_visit_to_a_merged_away_patient_counts_for_the_survivor(
        app: Flask, couch_url: str, tmp_path: Path) -> None:
    require_peer()
    with app.app_context():
        create_database(DB)
        put_doc(DB, {"_id": KEPT, **PATIENT, "given_name": "Mohammed", "phone": "+252 61 555 0101"})
        put_doc(DB, {"_id": MERGED, **PATIENT, "given_name": "Muhammad", "national_id": "SO-99-1234"})
        db.session.remove()
    pulled, pushed = tmp_path / "pulled", tmp_path / "pushed"
    visit = {"_id": VISIT, "type": "visit", "area": AREA, "patient_id": MERGED, "chw": "chw0",
             "visited_at": "2026-03-02T09:00:00Z", "kind": "routine",
             "observations": {"bp_systolic": 150, "bp_diastolic": 95}, "updated_at": WHEN, "updated_by": "chw0"}
    live_pull = {"op": "replicate", "source": "server", "target": "tablet", "options": {"live": True}}
    script = {"remotes": {"server": f"{couch_url}/{DB}"}, "snapshot": ["tablet"], "steps": [
        {"op": "replicate", "source": "server", "target": "tablet"},
        {"op": "put", "db": "tablet", "doc": visit},  # offline: the tablet still knows two patients
        {"op": "touch", "path": str(pulled)},
        {**live_pull, "until": {"db": "tablet", "id": "signal-merged"}},
        {"op": "replicate", "source": "tablet", "target": "server"},
        {"op": "touch", "path": str(pushed)},
        {**live_pull, "until": {"db": "tablet", "id": "signal-projected"}},
        {"op": "replicate", "source": "server", "target": "tablet"}]}
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(result=run_peer(script)), daemon=True)
    thread.start()

    wait_for(pulled, thread, outcome)
    with app.app_context():
        refresh_candidates(DB, [KEPT, MERGED])
        [candidate] = list_candidates(DB)  # Mohammed and Muhammad, same family, birth date and household
        assert {candidate.patient_a, candidate.patient_b} == {KEPT, MERGED}
        merge_id = merge_patients(DB, KEPT, MERGED, "supervisor1").id
        put_doc(DB, signal_doc("signal-merged"))
        db.session.remove()
    wait_for(pushed, thread, outcome)
    with app.app_context():
        run_once(DB)
        put_doc(DB, signal_doc("signal-projected"))
        kept, merged = db.session.get(Patient, (DB, KEPT)), db.session.get(Patient, (DB, MERGED))
        counted = db.session.get(Visit, (DB, VISIT))
        server_docs = {i: get_doc(DB, i, None, ReadOptions(conflicts=True)) for i in (KEPT, MERGED, VISIT)}
        db.session.remove()
    thread.join(120)
    stop_waiters()
    assert not thread.is_alive() and "result" in outcome, outcome

    # The visit names the merged-away patient and counts for the survivor.
    assert counted is not None and (counted.patient_doc_id, counted.patient_id) == (MERGED, KEPT)
    assert (kept.visit_count, kept.risk_flags, kept.referral_needed) == (1, ["bp_high"], True)
    assert merged.merged_into == KEPT and merged.visit_count == 0
    # The survivor kept its values and gained the empty ones; the redirect keeps all of its own.
    assert server_docs[KEPT]["given_name"] == "Mohammed" and server_docs[KEPT]["national_id"] == "SO-99-1234"
    assert server_docs[KEPT]["merged_from"] == [MERGED]
    assert server_docs[MERGED]["merged_into"] == KEPT and server_docs[MERGED]["given_name"] == "Muhammad"
    # The tablet received the redirect and holds what the server holds, revision for revision.
    tablet = {row["id"]: row["doc"] for row in outcome["result"]["dbs"]["tablet"]["rows"]}
    for doc_id, doc in server_docs.items():
        assert tablet[doc_id] == doc, doc_id

    # Undoing the merge moves the visit back, with nothing lost.
    with app.app_context():
        undo_merge(merge_id, "supervisor1")
        run_once(DB)
        kept, merged = db.session.get(Patient, (DB, KEPT)), db.session.get(Patient, (DB, MERGED))
        counted = db.session.get(Visit, (DB, VISIT))
        assert counted.patient_id == MERGED and (kept.visit_count, merged.visit_count) == (0, 1)
        assert merged.merged_into is None and get_doc(DB, KEPT, None, ReadOptions()).get("national_id") is None
        db.session.remove()
