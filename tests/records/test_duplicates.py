"""Duplicate patients over the store: candidates, a merge that keeps everything, its undo, the CLI."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

import wasl_cli
from crypto import hash_password
from models import User, db
from models.audit import AuditEntry
from models.duplicates import DuplicateCandidate, PatientKey, PatientMerge
from sync.errors import BadRequest, Conflict, CouchError, NotFound
from sync.reads import ReadOptions, get_doc
from sync.records.duplicates import dismiss, list_candidates, refresh_candidates
from sync.records.patientmerge import merge_patients, undo_merge
from sync.records.schemas import check_document
from sync.rows import docs_after
from sync.store import create_database, get_database
from sync.writes import bulk_docs

STAMP = {"area": "north/district-3", "updated_at": "2026-01-10T08:00:00Z", "updated_by": "amina"}
BOOKKEEPING = ("_rev", "updated_at", "updated_by")


def patient(doc_id: str, given: str, family: str, **extra: Any) -> dict[str, Any]:
    return {"_id": doc_id, "type": "patient", **STAMP, "given_name": given, "family_name": family, "sex": "male",
            "birth_date": "1980-03-04", **extra}


PATIENTS = [
    patient("p-mohammed", "Mohammed", "Hassan", household_id="hh-1", chronic_conditions=["hypertension"]),
    patient("p-muhammad", "Muhammad", "Hasan", household_id="hh-1", phone="+254 712 345 678", national_id="NID-1",
            consent={"share_with_partners": True}, chronic_conditions=["diabetes"]),
    # An estimated age and no household: alike, but below the threshold.
    patient("p-mohamed", "Mohamed", "Hassan", birth_date=None, estimated_age_years=45),
    patient("p-mahmoud", "Mahmoud", "Hassan", birth_date="1984-02-01", household_id="hh-1"),
    patient("p-fatima", "Fatima", "Ali", sex="female", birth_date="1992-05-05"),
    patient("p-fatma", "Fatma", "Aly", sex="female", birth_date="1992-05-05"),
    patient("p-khadija", "Khadija", "Ali", sex="female", birth_date="1992-05-05"),
    {"_id": "hh-1", "type": "household", **STAMP, "name": "Hassan family"},
]
PATIENT_IDS = [p["_id"] for p in PATIENTS if p["type"] == "patient"]


def clean(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if v is not None}


@pytest.fixture
def records(app: Flask) -> Iterator[str]:
    """The records database with PATIENTS written and their candidates refreshed, in an app context."""
    with app.app_context():
        name = app.config["WASL_RECORDS_DB"]
        create_database(name)
        assert all(check_document(clean(p)) is None for p in PATIENTS)
        assert all(r.get("ok") for r in bulk_docs(name, [clean(p) for p in PATIENTS]))
        refresh_candidates(name, PATIENT_IDS)
        yield name


def body(name: str, doc_id: str) -> dict[str, Any]:
    db.session.commit()
    return get_doc(name, doc_id, None, ReadOptions())


def pairs(name: str, state: str = "open") -> list[tuple[str, str, float]]:
    db.session.commit()  # see what other sessions (the CLI's) committed
    return [(c.patient_a, c.patient_b, c.score) for c in list_candidates(name, state)]


def snapshot(name: str) -> dict[str, Any]:
    """Everything a refused operation must leave as it was."""
    db.session.commit()
    database = get_database(name)
    docs = [(r.doc_id, r.winning_rev, r.seq, r.deleted) for r in docs_after(database.id, 0, None)]
    rows = {model.__name__: sorted(tuple(getattr(r, c.name) for c in model.__table__.columns if c.name != "reasons")
                                   for r in db.session.scalars(db.select(model)))
            for model in (DuplicateCandidate, PatientKey, PatientMerge)}
    return {"seq": database.update_seq, "docs": docs, **rows,
            "audit": db.session.scalar(db.select(db.func.count(AuditEntry.id)))}


def edit(name: str, doc_id: str, **changes: Any) -> str:
    """A CHW's edit of the winning revision; returns the new rev."""
    doc = {**body(name, doc_id), **changes, "updated_at": "2026-02-01T10:00:00Z", "updated_by": "amina"}
    [result] = bulk_docs(name, [clean(doc)])
    return str(result["rev"])


def test_refresh_lists_likely_pairs_best_first_and_not_unrelated_patients(records: str) -> None:
    assert pairs(records) == [("p-mohammed", "p-muhammad", 0.95), ("p-fatima", "p-fatma", 0.8)]
    [best, _] = list_candidates(records)
    assert best.reasons == {"given_name": 0.3, "family_name": 0.2, "birth_date": 0.25, "sex": 0.05, "household": 0.15}
    keyed = {k.doc_id for k in db.session.scalars(db.select(PatientKey))}
    assert keyed == set(PATIENT_IDS)  # the household has no keys
    refresh_candidates(records, PATIENT_IDS)  # a repeat changes nothing
    assert pairs(records) == [("p-mohammed", "p-muhammad", 0.95), ("p-fatima", "p-fatma", 0.8)]


def test_refresh_drops_deleted_patients_and_follows_edits(records: str) -> None:
    edit(records, "p-mohamed", household_id="hh-1")  # now alike enough, and sharing a household key
    bulk_docs(records, [{"_id": "p-fatma", "_rev": body(records, "p-fatma")["_rev"], "_deleted": True}])
    refresh_candidates(records, ["p-mohamed", "p-fatma"])
    assert pairs(records) == [("p-mohammed", "p-muhammad", 0.95), ("p-mohamed", "p-mohammed", 0.8),
                              ("p-mohamed", "p-muhammad", 0.8)]
    assert db.session.scalar(db.select(PatientKey).where(PatientKey.doc_id == "p-fatma")) is None
    edit(records, "p-mohamed", given_name="Khalid")  # no longer alike: its pairs go
    refresh_candidates(records, ["p-mohamed"])
    assert pairs(records) == [("p-mohammed", "p-muhammad", 0.95)]


def test_dismissed_pair_stays_dismissed_until_its_score_rises(records: str) -> None:
    dismiss(records, "p-fatma", "p-fatima", "supervisor")
    assert pairs(records, "dismissed") == [("p-fatima", "p-fatma", 0.8)]
    refresh_candidates(records, ["p-fatima", "p-fatma"])
    assert pairs(records, "dismissed") == [("p-fatima", "p-fatma", 0.8)] and ("p-fatima", "p-fatma", 0.8) \
        not in pairs(records)
    audit = db.session.scalar(db.select(AuditEntry).where(AuditEntry.action == "duplicate.dismiss"))
    assert audit is not None and audit.actor == "supervisor" and audit.detail == {"other": "p-fatma"}
    edit(records, "p-fatima", phone="+254 700 000 001")
    edit(records, "p-fatma", phone="+254700000001")
    refresh_candidates(records, ["p-fatima", "p-fatma"])
    assert ("p-fatima", "p-fatma", 0.95) in pairs(records) and pairs(records, "dismissed") == []
    with pytest.raises(NotFound):
        dismiss(records, "p-fatima", "p-khadija", "supervisor")
    with pytest.raises(BadRequest):
        dismiss(records, "p-fatima", "p-fatima", "supervisor")


def test_merge_writes_both_revisions_and_keeps_every_value(records: str, client: FlaskClient) -> None:
    survivor_before, merged_before = body(records, "p-mohammed"), body(records, "p-muhammad")
    seq_before = get_database(records).update_seq
    merge = merge_patients(records, "p-mohammed", "p-muhammad", "supervisor")

    survivor, merged = body(records, "p-mohammed"), body(records, "p-muhammad")
    filled = {"phone": "+254 712 345 678", "national_id": "NID-1", "consent": {"share_with_partners": True}}
    assert {k: v for k, v in survivor.items() if k not in BOOKKEEPING} == {
        **{k: v for k, v in survivor_before.items() if k not in BOOKKEEPING}, **filled, "merged_from": ["p-muhammad"]}
    assert survivor["chronic_conditions"] == ["hypertension"]  # both had a value: the survivor's stays
    assert {k: v for k, v in merged.items() if k not in BOOKKEEPING} == {
        **{k: v for k, v in merged_before.items() if k not in BOOKKEEPING}, "merged_into": "p-mohammed"}
    for doc in (survivor, merged):
        assert doc["updated_by"] == "supervisor" and doc["updated_at"].endswith("Z") and doc["_rev"].startswith("2-")
        assert check_document({k: v for k, v in doc.items() if not k.startswith("_")}) is None

    assert (merge.survivor_rev_before, merge.survivor_rev_after) == (survivor_before["_rev"], survivor["_rev"])
    assert (merge.merged_rev_before, merge.merged_rev_after) == (merged_before["_rev"], merged["_rev"])
    assert merge.filled_fields == {k: {"to": v} for k, v in filled.items()}
    assert (merge.state, merge.by) == ("merged", "supervisor")
    [pair] = list_candidates(records, "merged")
    assert (pair.patient_a, pair.patient_b, pair.decided_by) == ("p-mohammed", "p-muhammad", "supervisor")
    entry = db.session.scalar(db.select(AuditEntry).where(AuditEntry.action == "patient.merge"))
    assert entry is not None and (entry.actor, entry.doc_id) == ("supervisor", "p-muhammad")
    assert entry.detail == {"survivor": "p-mohammed", "merge_id": merge.id, "filled": sorted(filled)}
    # The redirect drops out of matching; devices receive both revisions through the feed.
    assert db.session.scalar(db.select(PatientKey).where(PatientKey.doc_id == "p-muhammad")) is None
    feed = client.get(f"/couch/{records}/_changes?since={seq_before}").get_json()
    assert {(r["id"], r["changes"][0]["rev"]) for r in feed["results"]} == {
        ("p-mohammed", survivor["_rev"]), ("p-muhammad", merged["_rev"])}
    refresh_candidates(records, PATIENT_IDS)
    assert [c.state for c in list_candidates(records, "merged")] == ["merged"]


def test_undo_restores_both_patients_and_keeps_later_edits(records: str) -> None:
    survivor_before, merged_before = body(records, "p-mohammed"), body(records, "p-muhammad")
    merge = merge_patients(records, "p-mohammed", "p-muhammad", "supervisor")
    # After the merge a CHW edits the survivor: an unrelated field, and one the merge filled.
    edit(records, "p-mohammed", chronic_conditions=["hypertension", "asthma"], phone="+254 799 999 999")

    undone = undo_merge(merge.id, "supervisor")
    survivor, merged = body(records, "p-mohammed"), body(records, "p-muhammad")
    assert {k: v for k, v in survivor.items() if k not in BOOKKEEPING} == {
        **{k: v for k, v in survivor_before.items() if k not in BOOKKEEPING},
        "chronic_conditions": ["hypertension", "asthma"], "phone": "+254 799 999 999"}
    assert {k: v for k, v in merged.items() if k not in BOOKKEEPING} == {
        k: v for k, v in merged_before.items() if k not in BOOKKEEPING}
    assert survivor["_rev"].startswith("4-") and merged["_rev"].startswith("3-")
    assert survivor["updated_by"] == merged["updated_by"] == "supervisor"
    assert (undone.state, undone.undone_by) == ("undone", "supervisor") and undone.undone_at is not None
    assert ("p-mohammed", "p-muhammad") in [(a, b) for a, b, _ in pairs(records)]
    entry = db.session.scalar(db.select(AuditEntry).where(AuditEntry.action == "patient.unmerge"))
    assert entry is not None and entry.detail == {"survivor": "p-mohammed", "merge_id": merge.id}

    before = snapshot(records)
    for bad, error in ((merge.id, Conflict), (merge.id + 100, NotFound)):
        with pytest.raises(error):
            undo_merge(bad, "supervisor")
        assert snapshot(records) == before


def test_undo_restores_a_survivor_that_had_merged_from_before(records: str) -> None:
    first = merge_patients(records, "p-mohammed", "p-mohamed", "supervisor")
    survivor_before = body(records, "p-mohammed")
    second = merge_patients(records, "p-mohammed", "p-muhammad", "supervisor")
    assert body(records, "p-mohammed")["merged_from"] == ["p-mohamed", "p-muhammad"]
    undo_merge(second.id, "supervisor")
    after = body(records, "p-mohammed")
    assert {k: v for k, v in after.items() if k not in BOOKKEEPING} == {
        k: v for k, v in survivor_before.items() if k not in BOOKKEEPING}
    assert body(records, "p-mohamed")["merged_into"] == "p-mohammed" and first.state == "merged"


REFUSALS = [
    ("p-mohammed", "p-mohammed", BadRequest, "merged into itself"),
    ("p-mohammed", "p-nobody", NotFound, "no patient p-nobody"),
    ("p-deleted", "p-mohammed", NotFound, "no patient p-deleted"),
    ("p-mohammed", "hh-1", BadRequest, "hh-1 is not a patient"),
    ("p-fatima", "p-muhammad", Conflict, "p-muhammad is already merged into p-mohammed"),
    ("p-muhammad", "p-mohammed", Conflict, "would make a cycle"),
]


@pytest.mark.parametrize(("survivor", "merged", "error", "reason"), REFUSALS)
def test_merge_refusals_change_nothing(records: str, survivor: str, merged: str, error: type[CouchError],
                                       reason: str) -> None:
    bulk_docs(records, [clean(patient("p-deleted", "Omar", "Said"))])
    bulk_docs(records, [{"_id": "p-deleted", "_rev": body(records, "p-deleted")["_rev"], "_deleted": True}])
    merge_patients(records, "p-mohammed", "p-muhammad", "supervisor")
    before = snapshot(records)
    with pytest.raises(error) as caught:
        merge_patients(records, survivor, merged, "supervisor")
    assert reason in caught.value.reason
    assert snapshot(records) == before


def test_cli_scan_list_merge_undo_dismiss(records: str, app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wasl_cli, "_app", lambda: app)
    db.session.add(User(name="sara", password_hash=hash_password("pw"), roles=["supervisor"]))
    db.session.execute(db.delete(DuplicateCandidate))
    db.session.commit()
    run = CliRunner().invoke

    scanned = run(wasl_cli.main, ["duplicates", "scan"])
    assert scanned.exit_code == 0, scanned.output
    assert f"scanned {len(PATIENTS)} documents" in scanned.output
    listed = run(wasl_cli.main, ["duplicates", "list"])
    lines = listed.output.splitlines()
    assert listed.exit_code == 0 and len(lines) == 2
    assert lines[0].startswith("0.950  p-mohammed (Mohammed Hassan)  p-muhammad (Muhammad Hasan)")
    assert '"household": 0.15' in lines[0] and lines[1].startswith("0.800  p-fatima (Fatima Ali)")

    merged = run(wasl_cli.main, ["duplicates", "merge", "p-mohammed", "p-muhammad", "--by", "sara"])
    assert merged.exit_code == 0, merged.output
    merge = db.session.scalar(db.select(PatientMerge))
    assert merge is not None and f"(merge {merge.id}; filled: consent, national_id, phone)" in merged.output
    assert body(records, "p-muhammad")["merged_into"] == "p-mohammed"
    undone = run(wasl_cli.main, ["duplicates", "undo", str(merge.id), "--by", "sara"])
    assert undone.exit_code == 0 and "two patients again" in undone.output
    assert "merged_into" not in body(records, "p-muhammad")
    dismissed = run(wasl_cli.main, ["duplicates", "dismiss", "p-fatma", "p-fatima", "--by", "sara"])
    assert dismissed.exit_code == 0 and pairs(records, "dismissed") == [("p-fatima", "p-fatma", 0.8)]


@pytest.mark.parametrize(("args", "message"), [
    (["merge", "p-mohammed", "p-mohammed", "--by", "sara"], "Error: a patient cannot be merged into itself"),
    (["merge", "p-mohammed", "p-nobody", "--by", "sara"], "Error: no patient p-nobody"),
    (["merge", "p-mohammed", "p-muhammad", "--by", "nobody"], "Error: No user named 'nobody'"),
    (["undo", "999", "--by", "sara"], "Error: no merge 999"),
    (["dismiss", "p-fatima", "p-khadija", "--by", "sara"], "Error: p-fatima and p-khadija are not a duplicate"),
    (["list", "--db", "nowhere"], "Error: Database does not exist."),
])
def test_cli_errors_are_one_plain_line_and_change_nothing(records: str, app: Flask, monkeypatch: pytest.MonkeyPatch,
                                                          args: list[str], message: str) -> None:
    monkeypatch.setattr(wasl_cli, "_app", lambda: app)
    db.session.add(User(name="sara", password_hash=hash_password("pw"), roles=["supervisor"]))
    db.session.commit()
    before = snapshot(records)
    result = CliRunner().invoke(wasl_cli.main, ["duplicates", *args])
    assert result.exit_code == 1 and result.output.startswith(message) and len(result.output.splitlines()) == 1
    assert snapshot(records) == before
