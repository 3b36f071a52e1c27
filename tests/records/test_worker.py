"""The central-records worker on SQLite and PostgreSQL: projection, derived fields, edits and deletions,
merge redirects, campaigns, replays, rebuild, concurrent workers, the live loop and the CLI."""
from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import inspect, select, text

from models import db
from models.health import Visit, WorkerCheckpoint
from sync.records import duplicates, resolve
from sync.records.schemas import check_document
from sync.records.upgrade import upgrade
from sync.records.worker import counts, rebuild, run_forever, run_once, snapshot, status
from sync.store import compact_database, create_database, delete_database
from sync.writes import bulk_docs
from wasl_cli import main

Doc = dict[str, Any]
AREA = "north/dowa/madisi"
STAMP = {"area": AREA, "updated_at": "2026-03-01T09:00:00+02:00", "updated_by": "amina"}


@pytest.fixture
def records(app: Flask) -> Iterator[str]:
    """The records database of ``app``, created, inside an app context."""
    name = app.config["WASL_RECORDS_DB"]
    with app.app_context():
        create_database(name)
        yield name


def _hash(doc_id: str, gen: int, branch: str) -> str:
    return hashlib.md5(f"{doc_id}:{gen}:{branch}".encode()).hexdigest()


def put(name: str, doc_id: str, gen: int, body: Doc | None, *, branch: str = "", deleted: bool = False) -> str:
    """Store revision ``gen`` of ``doc_id`` as a tablet replicates it; return its rev."""
    ids = [_hash(doc_id, gen, branch)] + [_hash(doc_id, g, "") for g in range(gen - 1, 0, -1)]
    doc: Doc = {"_id": doc_id, "_rev": f"{gen}-{ids[0]}", "_revisions": {"start": gen, "ids": ids}, **(body or {})}
    if deleted:
        doc["_deleted"] = True
    else:
        assert check_document(doc) is None, check_document(doc)
    assert bulk_docs(name, [doc], new_edits=False) == []
    return str(doc["_rev"])


def household(**extra: Any) -> Doc:
    return {"type": "household", **STAMP, "name": "Banda house", "gps": {"lat": -13.5, "lon": 33.9}, **extra}


def patient(given: str, **extra: Any) -> Doc:
    return {"type": "patient", **STAMP, "household_id": "hh-1", "given_name": given, "family_name": "Banda",
            "sex": "female", "birth_date": "1990-04-02", **extra}


def visit(patient_id: str, when: str, observations: Doc, **extra: Any) -> Doc:
    return {"type": "visit", **STAMP, "patient_id": patient_id, "chw": "amina", "visited_at": when,
            "kind": "routine", "observations": observations, **extra}


def row(name: str, table: str, doc_id: str) -> Doc:
    found = [r for r in snapshot(name)[table] if r["doc_id"] == doc_id]
    assert len(found) == 1, (table, doc_id, found)
    return found[0]


def checkpoint(name: str) -> int | None:
    db.session.commit()
    return db.session.scalar(select(WorkerCheckpoint.seq).where(WorkerCheckpoint.db_name == name))


def seed(name: str) -> None:
    """A household, two patients, three visits of the first and one of the second."""
    put(name, "hh-1", 1, household(head_patient_id="pt-a"))
    put(name, "pt-a", 1, patient("Amina", consent={"share_with_partners": True}, chronic_conditions=["htn", "dm"]))
    put(name, "pt-b", 1, patient("Grace", estimated_age_years=40))
    put(name, "vi-1", 1, visit("pt-a", "2026-03-01T10:00:00+02:00",
                               {"bp_systolic": 150, "bp_diastolic": 85, "weight_kg": 61.5}))
    put(name, "vi-2", 1, visit("pt-a", "2026-03-03T08:00:00Z", {"glucose_mmol_l": 12.0, "weight_kg": 61.0}))
    put(name, "vi-3", 1, visit("pt-a", "2026-02-20T08:00:00Z", {"muac_mm": 110}))
    put(name, "vi-4", 1, visit("pt-b", "2026-03-02T08:00:00Z", {"malaria_rdt": "negative"}))


def test_run_once_projects_records_and_derives_patient_fields(records: str) -> None:
    seed(records)
    assert run_once(records) == 7
    hh = row(records, "household", "hh-1")
    assert (hh["area"], hh["name"], hh["gps_lat"], hh["gps_lon"], hh["head_patient_id"], hh["updated_at"],
            hh["deleted"]) == (AREA, "Banda house", -13.5, 33.9, "pt-a", "2026-03-01T07:00:00.000Z", False)
    a = row(records, "patient", "pt-a")
    assert (a["given_name"], a["birth_date"], a["share_with_partners"], a["chronic_conditions"]) == \
        ("Amina", "1990-04-02", True, ["dm", "htn"])
    assert a["visit_count"] == 3 and a["last_visit_at"] == "2026-03-03T08:00:00.000Z"
    assert a["latest_observations"] == {"bp_systolic": 150, "bp_diastolic": 85, "weight_kg": 61.0,
                                        "glucose_mmol_l": 12.0, "muac_mm": 110}
    assert a["risk_flags"] == ["glucose_high"] and a["referral_needed"] is True
    b = row(records, "patient", "pt-b")
    assert (b["visit_count"], b["estimated_age_years"], b["risk_flags"], b["referral_needed"]) == (1, 40, [], False)
    v1 = row(records, "visit", "vi-1")
    assert (v1["patient_doc_id"], v1["patient_id"], v1["visited_at"], v1["risk_flags"], v1["rev"]) == \
        ("pt-a", "pt-a", "2026-03-01T08:00:00.000Z", ["bp_high"], f"1-{_hash('vi-1', 1, '')}")
    assert row(records, "visit", "vi-3")["risk_flags"] == ["muac_low"]
    assert checkpoint(records) == status(records)["update_seq"] == 7 and status(records)["pending"] == 0

    # A referral made after the latest flagged visit: no referral needed any more.
    put(records, "rf-1", 1, {"type": "referral", **STAMP, "patient_id": "pt-a", "visit_id": "vi-2", "from_chw": "amina",
                             "to_facility": "Madisi HC", "reason": "glucose 12", "status": "open",
                             "created_at": "2026-03-03T09:00:00Z"})
    assert run_once(records) == 1
    assert row(records, "referral", "rf-1")["patient_id"] == "pt-a"
    assert row(records, "patient", "pt-a")["referral_needed"] is False


def test_edits_and_deletions_reproject_and_a_rerun_changes_nothing(records: str) -> None:
    seed(records)
    run_once(records)
    put(records, "vi-2", 2, visit("pt-a", "2026-03-03T08:00:00Z", {"glucose_mmol_l": 6.0, "weight_kg": 61.0}))
    put(records, "pt-b", 2, patient("Grace", estimated_age_years=41, family_name="Phiri"))
    put(records, "vi-1", 2, None, deleted=True)  # a tablet's delete: a tombstone without fields
    assert run_once(records) == 3
    v2 = row(records, "visit", "vi-2")
    assert v2["risk_flags"] == [] and v2["rev"].startswith("2-")
    v1 = row(records, "visit", "vi-1")
    # Projected from the last body the store holds, marked deleted, at the tombstone's rev.
    assert v1["deleted"] is True and v1["rev"].startswith("2-") and v1["risk_flags"] == ["bp_high"]
    a = row(records, "patient", "pt-a")
    assert a["visit_count"] == 2 and a["risk_flags"] == [] and a["referral_needed"] is False
    assert a["latest_observations"] == {"glucose_mmol_l": 6.0, "weight_kg": 61.0, "muac_mm": 110}
    b = row(records, "patient", "pt-b")
    assert (b["family_name"], b["estimated_age_years"], b["visit_count"]) == ("Phiri", 41, 1)

    put(records, "pt-b", 3, None, deleted=True)
    run_once(records)
    assert row(records, "patient", "pt-b")["deleted"] is True
    assert counts(records)["patient"] == 1 and counts(records)["visit"] == 3

    before = snapshot(records)
    assert run_once(records) == 0 and snapshot(records) == before
    # Replaying the whole feed (checkpoint back to 0, rows kept) projects nothing twice.
    db.session.execute(WorkerCheckpoint.__table__.update().values(seq=0))
    db.session.commit()
    assert run_once(records) == 7 and snapshot(records) == before


def test_a_deleted_record_with_no_body_left_keeps_its_last_values(records: str) -> None:
    seed(records)
    put(records, "vi-4", 2, visit("pt-b", "2026-03-02T08:00:00Z", {"malaria_rdt": "positive"}))
    run_once(records)
    put(records, "vi-4", 3, None, deleted=True)
    compact_database(records)  # drops the bodies of 1- and 2-: nothing tells what vi-4 was
    run_once(records)
    v4 = row(records, "visit", "vi-4")
    assert v4["deleted"] is True and v4["rev"].startswith("3-")
    assert (v4["patient_id"], v4["risk_flags"]) == ("pt-b", ["malaria_positive"])
    assert row(records, "patient", "pt-b")["visit_count"] == 0


def test_visits_follow_merged_into_and_move_back_on_undo(records: str) -> None:
    seed(records)
    put(records, "pt-c", 1, patient("Amina B"))
    put(records, "vi-5", 1, visit("pt-c", "2026-03-10T08:00:00Z", {"bp_systolic": 120, "bp_diastolic": 95}))
    run_once(records)
    assert row(records, "patient", "pt-c")["visit_count"] == 1

    # pt-c is merged into pt-b, and pt-b into pt-a: a chain.
    put(records, "pt-c", 2, patient("Amina B", merged_into="pt-b"))
    put(records, "pt-b", 2, patient("Grace", estimated_age_years=40, merged_into="pt-a"))
    put(records, "vi-6", 1, visit("pt-c", "2026-03-11T08:00:00Z", {"weight_kg": 70}))  # sent later, to pt-c
    run_once(records)
    assert {r["doc_id"]: r["patient_id"] for r in snapshot(records)["visit"]} == {
        "vi-1": "pt-a", "vi-2": "pt-a", "vi-3": "pt-a", "vi-4": "pt-a", "vi-5": "pt-a", "vi-6": "pt-a"}
    assert row(records, "visit", "vi-6")["patient_doc_id"] == "pt-c"
    a = row(records, "patient", "pt-a")
    assert a["visit_count"] == 6 and a["last_visit_at"] == "2026-03-11T08:00:00.000Z"
    assert a["risk_flags"] == [] and a["latest_observations"]["weight_kg"] == 70
    assert [row(records, "patient", p)["visit_count"] for p in ("pt-b", "pt-c")] == [0, 0]

    # Undo pt-b's merge: pt-b's own visit and pt-c's (which redirects to pt-b) move back.
    put(records, "pt-b", 3, patient("Grace", estimated_age_years=40))
    run_once(records)
    assert {r["doc_id"]: r["patient_id"] for r in snapshot(records)["visit"]} == {
        "vi-1": "pt-a", "vi-2": "pt-a", "vi-3": "pt-a", "vi-4": "pt-b", "vi-5": "pt-b", "vi-6": "pt-b"}
    assert [row(records, "patient", p)["visit_count"] for p in ("pt-a", "pt-b", "pt-c")] == [3, 3, 0]
    assert row(records, "patient", "pt-b")["risk_flags"] == []

    # A loop (pt-b -> pt-c -> pt-b) leaves each record with the patient it names.
    put(records, "pt-b", 4, patient("Grace", estimated_age_years=40, merged_into="pt-c"))
    run_once(records)
    assert [row(records, "visit", v)["patient_id"] for v in ("vi-4", "vi-5", "vi-6")] == ["pt-b", "pt-c", "pt-c"]
    assert snapshot(records) == _rebuilt(records)


def _rebuilt(name: str) -> dict[str, list[Doc]]:
    incremental = snapshot(name)
    rebuild(name)
    assert checkpoint(name) == status(name)["update_seq"]
    again = snapshot(name)
    assert incremental == again
    return again


def test_campaign_thresholds_follow_the_campaign_document(records: str) -> None:
    seed(records)
    # The visit arrives before its campaign: no campaign flag yet.
    put(records, "vi-7", 1, visit("pt-b", "2026-03-12T08:00:00Z", {"bp_systolic": 135, "bp_diastolic": 80},
                                  campaign_id="cp-1", kind="screening"))
    run_once(records)
    assert row(records, "visit", "vi-7")["risk_flags"] == []
    campaign = {"type": "campaign", "name": "HTN", "condition": "hypertension", "areas": ["north"],
                "start_date": "2026-03-01", "end_date": "2026-04-30",
                "fields": [{"field": "bp_systolic", "op": "gte", "value": 130, "refer": True}]}
    put(records, "cp-1", 1, campaign)
    run_once(records)
    assert row(records, "visit", "vi-7")["risk_flags"] == ["campaign:bp_systolic"]
    b = row(records, "patient", "pt-b")
    assert b["risk_flags"] == ["campaign:bp_systolic"] and b["referral_needed"] is True
    assert row(records, "campaign", "cp-1")["fields"] == campaign["fields"]
    # The organiser raises the threshold: the visit is flagged again by the new rule.
    put(records, "cp-1", 2, {**campaign, "fields": [{"field": "bp_systolic", "op": "gte", "value": 140,
                                                     "refer": True}]})
    run_once(records)
    assert row(records, "visit", "vi-7")["risk_flags"] == [] and row(records, "patient", "pt-b")["risk_flags"] == []
    _rebuilt(records)


def traits(name: str, doc_id: str) -> tuple[Any, ...]:
    found = row(name, "visit", doc_id)
    return (found["patient_sex"], found["patient_birth_date"], found["patient_estimated_age_years"])


def test_visits_carry_their_campaign_flag_and_their_patients_traits(records: str) -> None:
    seed(records)
    campaign = {"type": "campaign", "name": "HTN", "condition": "hypertension", "areas": ["north"],
                "fields": [{"field": "bp_systolic", "op": "gte", "value": 130, "refer": True}]}
    put(records, "cp-1", 1, campaign)
    put(records, "vi-7", 1, visit("pt-b", "2026-03-12T08:00:00Z", {"bp_systolic": 135, "bp_diastolic": 80},
                                  campaign_id="cp-1", kind="screening"))
    put(records, "vi-8", 1, visit("pt-x", "2026-03-12T09:00:00Z", {"weight_kg": 50}))  # its patient comes later
    run_once(records)
    assert [row(records, "visit", v)["campaign_positive"] for v in ("vi-7", "vi-1")] == [True, False]
    assert traits(records, "vi-1") == ("female", "1990-04-02", None)
    assert traits(records, "vi-7") == ("female", "1990-04-02", 40.0)
    assert traits(records, "vi-8") == (None, None, None)
    # The patient arrives, another is edited, a third is merged: the visits follow.
    put(records, "pt-x", 1, patient("Xena", sex="other", birth_date="2001-01-01"))
    put(records, "pt-a", 2, patient("Amina", sex="male", birth_date="1980-05-05"))
    put(records, "pt-b", 2, patient("Grace", estimated_age_years=40, merged_into="pt-a"))
    # The campaign's threshold rises above the reading: no longer positive.
    put(records, "cp-1", 2, {**campaign, "fields": [{"field": "bp_systolic", "op": "gte", "value": 140,
                                                     "refer": True}]})
    run_once(records)
    assert traits(records, "vi-8") == ("other", "2001-01-01", None)
    assert traits(records, "vi-1") == traits(records, "vi-7") == ("male", "1980-05-05", None)
    assert row(records, "visit", "vi-7")["campaign_positive"] is False
    # A patient whose document stops being a patient leaves its visits with no traits.
    put(records, "pt-x", 2, household())
    run_once(records)
    assert traits(records, "vi-8") == (None, None, None)
    _rebuilt(records)


def test_a_rebuild_brings_an_older_install_to_the_current_tables(records: str) -> None:
    """``db.create_all`` never alters a table: ``wasl rebuild`` adds the columns and indexes a
    later version declares, drops the central ones it no longer declares, and fills them."""
    seed(records)
    put(records, "cp-1", 1, {"type": "campaign", "name": "HTN", "condition": "hypertension", "areas": ["north"],
                             "fields": [{"field": "bp_systolic", "op": "gte", "value": 140, "refer": True}]})
    put(records, "vi-7", 1, visit("pt-b", "2026-03-12T08:00:00Z", {"bp_systolic": 150, "bp_diastolic": 80},
                                  campaign_id="cp-1"))
    run_once(records)
    current = snapshot(records)
    declared = {i["name"] for i in inspect(db.session.connection()).get_indexes("health_visit")}
    added = ("campaign_positive", "patient_sex", "patient_birth_date", "patient_estimated_age_years")
    # The tables as an older version left them: without the new columns and their index, with an index since dropped.
    db.session.execute(text("DROP INDEX IF EXISTS ix_health_visit_campaign_cover"))
    for column in added:
        db.session.execute(text(f"ALTER TABLE health_visit DROP COLUMN {column}"))
    db.session.execute(text("CREATE INDEX ix_health_visit_obsolete ON health_visit (db_name, kind)"))
    db.session.commit()
    assert not set(added) & {c["name"] for c in inspect(db.session.connection()).get_columns("health_visit")}
    db.session.commit()
    rebuild(records)
    assert snapshot(records) == current
    assert {i["name"] for i in inspect(db.session.connection()).get_indexes("health_visit")} == declared
    assert upgrade() == []  # nothing left to do
    assert {r.doc_id for r in Visit.query.filter_by(campaign_positive=True)} == {"vi-7"}


def test_non_records_are_skipped_and_the_checkpoint_still_moves(records: str) -> None:
    put(records, "pt-a", 1, patient("Amina"))
    assert bulk_docs(records, [{"_id": "_design/app", "_rev": "1-a", "views": {}},
                               {"_id": "note-1", "_rev": "1-b", "type": "note", "text": "hello"},
                               {"_id": "blob-1", "_rev": "1-c", "text": "no type"}], new_edits=False) == []
    assert run_once(records) == 4
    assert checkpoint(records) == 4
    assert {t: len(rows) for t, rows in snapshot(records).items() if rows} == {"patient": 1}


def test_conflicts_are_resolved_first_and_changed_patients_refreshed(
        records: str, monkeypatch: pytest.MonkeyPatch) -> None:
    resolved: list[str] = []
    refreshed: list[list[str]] = []
    monkeypatch.setattr(resolve, "resolve_document", lambda db_name, doc_id, *, actor="server": resolved.append(
        doc_id) or None)
    monkeypatch.setattr(duplicates, "refresh_candidates", lambda db_name, ids: refreshed.append(list(ids)))
    seed(records)
    put(records, "pt-a", 2, patient("Amina", phone="+265 999 000 111"), branch="x")
    put(records, "pt-a", 2, patient("Aminah"), branch="y")
    run_once(records)
    assert resolved == ["pt-a"]
    assert sorted(p for ids in refreshed for p in ids) == ["pt-a", "pt-b"]
    assert row(records, "patient", "pt-a")["rev"] == max(f"2-{_hash('pt-a', 2, b)}" for b in "xy")


def test_a_database_created_again_starts_its_central_records_afresh(records: str) -> None:
    seed(records)
    run_once(records)
    delete_database(records)
    time.sleep(0.01)  # a different created_at
    create_database(records)
    put(records, "pt-z", 1, patient("Zawadi"))
    assert run_once(records) == 1
    assert {t: [r["doc_id"] for r in rows] for t, rows in snapshot(records).items() if rows} == {"patient": ["pt-z"]}
    assert checkpoint(records) == 1


def test_two_workers_at_once_count_nothing_twice(app: Flask, records: str) -> None:
    seed(records)
    for n in range(60):
        put(records, f"vi-x{n:02d}", 1, visit("pt-a" if n % 2 else "pt-b", f"2026-04-01T08:{n:02d}:00Z", {}))
    db.session.commit()
    errors: list[BaseException] = []

    def work() -> None:
        with app.app_context():
            try:
                run_once(records, batch_size=7)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                db.session.remove()
    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert run_once(records) == 0
    assert row(records, "patient", "pt-a")["visit_count"] == 33 and row(records, "patient", "pt-b")["visit_count"] == 31
    _rebuilt(records)


def test_run_forever_follows_new_changes_within_a_second(app: Flask, records: str) -> None:
    seed(records)
    db.session.commit()
    stop = threading.Event()

    def loop() -> None:
        with app.app_context():
            run_forever(records, poll=0.05, stop=stop)
            db.session.remove()
    thread = threading.Thread(target=loop)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while checkpoint(records) != 7 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert checkpoint(records) == 7
        started = time.monotonic()
        put(records, "vi-9", 1, visit("pt-b", "2026-03-20T08:00:00Z", {"muac_mm": 100}))
        while checkpoint(records) != 8 and time.monotonic() - started < 5:
            time.sleep(0.01)
        assert time.monotonic() - started < 1.0
        assert row(records, "patient", "pt-b")["risk_flags"] == ["muac_low"]
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


@pytest.fixture
def cli_env(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment under which `wasl` reaches the same database as ``app``."""
    monkeypatch.setenv("WASL_DATABASE_URL", app.config["SQLALCHEMY_DATABASE_URI"])
    monkeypatch.setenv("WASL_INSTANCE", str(tmp_path / "instance"))
    monkeypatch.setenv("WASL_RECORDS_DB", app.config["WASL_RECORDS_DB"])


def test_cli_worker_once_and_rebuild(records: str, cli_env: None) -> None:
    seed(records)
    db.session.commit()
    done = CliRunner().invoke(main, ["worker", "--once"])
    assert done.exit_code == 0, done.output
    assert f"projected 7 change(s) of '{records}'; checkpoint 7, update_seq 7" in done.output
    assert row(records, "patient", "pt-a")["visit_count"] == 3
    before = snapshot(records)
    db.session.commit()
    again = CliRunner().invoke(main, ["rebuild", "--db", records])
    assert again.exit_code == 0, again.output
    assert (f"rebuilt '{records}' from 7 change(s): 1 household, 2 patients, 4 visits, 0 referrals, 0 campaigns, "
            "0 reviews (not deleted)") in again.output
    assert snapshot(records) == before


@pytest.mark.parametrize("command", [["worker", "--once", "--db", "nowhere"], ["rebuild", "--db", "nowhere"]])
def test_cli_names_a_missing_database_in_one_line(records: str, cli_env: None, command: list[str]) -> None:
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "Error: no database named 'nowhere' (create it with: wasl init --db nowhere)" in result.output
    assert "Traceback" not in result.output
