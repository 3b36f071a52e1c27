"""The clinician's referrals: their facility's list, the patient only with consent, status changes as revisions."""
from __future__ import annotations

import base64
from typing import Any

from flask import Flask
from sqlalchemy import select

from models import db
from models.audit import AuditEntry
from models.health import Referral
from sync.reads import ReadOptions, get_doc
from sync.records.worker import run_once
from sync.scopeindex import enable
from sync.store import get_database

from .camp_data import DB, csrf_token, load, sign_in

NADIA = {"Authorization": "Basic " + base64.b64encode(b"nadia:password1").decode()}
STATUS_FIELDS = {"status", "status_note", "updated_at", "updated_by"}


def _doc(app: Flask, doc_id: str) -> dict[str, Any]:
    with app.app_context():
        return get_doc(DB, doc_id, None, ReadOptions())


def _seq(app: Flask) -> int:
    with app.app_context():
        return int(get_database(DB).update_seq)


def test_the_list_shows_the_facility_and_consented_patients_only(app: Flask) -> None:
    load(app)
    client = app.test_client()
    listed = client.get("/api/v1/referrals", headers=NADIA).get_json()
    assert listed["total"] == 3 and sorted(r["id"] for r in listed["items"]) == ["r1", "r2", "r3"]
    by_id = {r["id"]: r for r in listed["items"]}
    assert by_id["r1"]["patient_shared"] is True and by_id["r1"]["patient"]["given_name"] == "Given p1"
    assert by_id["r1"]["patient"]["birth_date"] == "1980-06-01"
    assert by_id["r2"]["patient_shared"] is False and by_id["r2"]["patient"] is None
    assert [r["id"] for r in listed["items"]] == ["r2", "r3", "r1"]  # newest first
    only_open = client.get("/api/v1/referrals", query_string={"status": "open"}, headers=NADIA).get_json()
    assert [r["id"] for r in only_open["items"]] == ["r2"]
    assert client.get("/api/v1/referrals", query_string={"status": "lost"}, headers=NADIA).status_code == 400
    olga = {"Authorization": "Basic " + base64.b64encode(b"olga:password1").decode()}
    assert client.get("/api/v1/referrals", headers=olga).status_code == 403
    sign_in(client, "nadia")
    page = client.get("/referrals").get_data(as_text=True)
    assert "Given p1" in page and "Given p4" not in page and "not shared" in page and "from s5" not in page


def test_marking_received_writes_a_revision_the_worker_projects_and_the_chw_receives(app: Flask) -> None:
    load(app)
    with app.app_context():
        enable(DB)
    before = _doc(app, "r2")
    client = app.test_client()
    reply = client.post("/api/v1/referrals/r2/status", json={"status": "received", "note": " Seen at triage "},
                        headers=NADIA)
    assert reply.status_code == 200
    after = _doc(app, "r2")
    assert reply.get_json()["rev"] == after["_rev"] and after["_rev"].startswith("2-")
    assert {k: after[k] for k in STATUS_FIELDS} == {"status": "received", "status_note": "Seen at triage",
                                                    "updated_at": reply.get_json()["updated_at"],
                                                    "updated_by": "nadia"}
    unchanged = {k: v for k, v in before.items() if k not in STATUS_FIELDS | {"_rev"}}
    assert {k: v for k, v in after.items() if k not in STATUS_FIELDS | {"_rev"}} == unchanged
    with app.app_context():
        run_once(DB)
        row = db.session.scalar(select(Referral).where(Referral.db_name == DB, Referral.doc_id == "r2"))
        assert row is not None and row.status == "received" and row.rev == after["_rev"]
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "referral.status"))
        assert entry is not None and entry.actor == "nadia" and entry.detail["status_to"] == "received"
    # The CHW who made the referral pulls the new revision at the next sync.
    c1 = {"Authorization": "Basic " + base64.b64encode(b"c1:password1").decode()}
    changes = client.get(f"/couch/{DB}/_changes", query_string={"include_docs": "true"}, headers=c1).get_json()
    pulled = {row["id"]: row["doc"] for row in changes["results"]}
    assert pulled["r2"]["_rev"] == after["_rev"] and pulled["r2"]["status"] == "received"


def test_marking_completed_on_the_page(app: Flask) -> None:
    load(app)
    app.config["WTF_CSRF_ENABLED"] = True
    client = app.test_client()
    sign_in(client, "nadia")
    token = csrf_token(client, "/referrals")
    reply = client.post("/referrals/r2/status", data={"status": "completed", "note": "", "csrf_token": token,
                                                      "back_status": "open"})
    assert reply.status_code == 302 and reply.headers["Location"].endswith("/referrals?status=open")
    doc = _doc(app, "r2")
    assert doc["status"] == "completed" and "status_note" not in doc and doc["updated_by"] == "nadia"
    assert "Referral marked completed" in client.get("/referrals").get_data(as_text=True)
    before = _seq(app)
    assert client.post("/referrals/r2/status", data={"status": "completed"}).status_code == 400  # no CSRF token
    again = client.post("/referrals/r2/status", data={"status": "completed", "csrf_token": token})
    assert again.status_code == 302
    assert "The referral is completed: it cannot be marked completed" in client.get("/referrals").get_data(
        as_text=True)
    assert _seq(app) == before


def test_refusals_change_nothing(app: Flask) -> None:
    load(app)
    client = app.test_client()
    before = _seq(app)
    cases = [("r4", {"status": "received"}, 404, "not_found"),  # another facility's referral
             ("nope", {"status": "received"}, 404, "not_found"),
             ("r1", {"status": "received"}, 409, "conflict"),  # already completed
             ("r3", {"status": "completed"}, 409, "conflict"),  # cancelled
             ("r2", {"status": "cancelled"}, 400, "bad_request"),
             ("r2", {"status": "received", "note": "x" * 1001}, 400, "bad_request"),
             ("r2", {"status": "received", "note": 5}, 400, "bad_request")]
    for referral, body, status, error in cases:
        reply = client.post(f"/api/v1/referrals/{referral}/status", json=body, headers=NADIA)
        assert (reply.status_code, reply.get_json()["error"]) == (status, error), (referral, body)
    assert client.post("/api/v1/referrals/r2/status", data="x", headers=NADIA).status_code == 400
    assert _seq(app) == before and _doc(app, "r2")["status"] == "open"
