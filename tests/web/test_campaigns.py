"""Campaigns: create, edit and assign through the pages (with CSRF) and the REST API; every refusal writes nothing."""
from __future__ import annotations

import base64
import re
from datetime import datetime, timezone
from markupsafe import escape
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from models import db
from models.audit import AuditEntry
from sync.reads import ReadOptions, get_doc
from sync.records.campaigns import get_campaign
from sync.records.worker import run_once
from sync.scopeindex import enable
from sync.store import get_database

from .camp_data import CAMPAIGN, DB, csrf_token, setup_people, sign_in

FORM = {"name": "Diabetes week", "condition": "diabetes", "areas": ["north/d1", "north/d2/v3"],
        "start_date": "2026-05-01", "end_date": "2026-05-31", "min_age": "40", "max_age": "", "sex": ["female"],
        "rows": "3", "field_0": "glucose_mmol_l", "op_0": "gte", "value_0": "11.1", "refer_0": "on",
        "field_1": "malaria_rdt", "op_1": "eq", "value_1": "positive", "field_2": "",
        "targets": "north/d1: 40\nnorth/d2/v3 = 12\n"}


def _auth(name: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:password1".encode()).decode()}


@pytest.fixture
def web(app: Flask) -> FlaskClient:
    """A browser-like client signed in as the organiser olga, with CSRF checked."""
    app.config["WTF_CSRF_ENABLED"] = True
    with app.app_context():
        setup_people()
    client = app.test_client()
    sign_in(client, "olga")
    return client


def _docs(app: Flask) -> int:
    with app.app_context():
        return int(get_database(DB).update_seq)


def _body(app: Flask, doc_id: str) -> dict[str, Any]:
    with app.app_context():
        return get_doc(DB, doc_id, None, ReadOptions())


def test_an_organiser_creates_a_campaign_on_the_page(app: Flask, web: FlaskClient) -> None:
    token = csrf_token(web, "/campaigns/new")
    reply = web.post("/campaigns/new", data={**FORM, "csrf_token": token})
    assert reply.status_code == 302
    campaign_id = reply.headers["Location"].rsplit("/", 1)[-1]
    doc = _body(app, campaign_id)
    assert doc["_rev"].startswith("1-") and doc["type"] == "campaign" and doc["organiser"] == "olga"
    assert {k: doc[k] for k in ("name", "condition", "areas", "start_date", "end_date", "eligibility", "fields",
                                "targets")} == {
        "name": "Diabetes week", "condition": "diabetes", "areas": ["north/d1", "north/d2/v3"],
        "start_date": "2026-05-01", "end_date": "2026-05-31", "eligibility": {"min_age": 40, "sex": ["female"]},
        "fields": [{"field": "glucose_mmol_l", "op": "gte", "value": 11.1, "refer": True},
                   {"field": "malaria_rdt", "op": "eq", "value": "positive", "refer": False}],
        "targets": {"north/d1": 40, "north/d2/v3": 12}}
    page = web.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert "Diabetes week" in page and "glucose_mmol_l gte 11.1 (refer)" in page
    with app.app_context():
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "campaign.create"))
        assert entry is not None and entry.actor == "olga" and entry.doc_id == campaign_id


REFUSED = [
    ({"condition": " "}, "condition", "Must not be empty."),
    ({"end_date": "2026-04-01"}, "end_date", "Must not be before start_date."),
    ({"min_age": "60", "max_age": "50"}, "eligibility.max_age", "Must be greater than or equal to min_age."),
    ({"min_age": "forty"}, "eligibility.min_age", "Not a valid number."),
    ({"value_0": "high"}, "fields.0.value", "Must be a number for gte, gt, lte and lt."),
    ({"targets": "north/d1: many"}, "targets.north/d1", "Must be a whole number"),
    ({"targets": "north/d1 40"}, "targets", "Line 1: write an area path"),
    ({"targets": "north/d2/v4: 3"}, "targets.north/d2/v4", "Not one of the campaign's areas"),
    ({"areas": ["north/nowhere"]}, "areas", "No such area: north/nowhere."),
]


def test_a_refused_form_shows_each_error_and_writes_nothing(app: Flask, web: FlaskClient) -> None:
    before = _docs(app)
    token = csrf_token(web, "/campaigns/new")
    for change, field, message in REFUSED:
        reply = web.post("/campaigns/new", data={**FORM, **change, "csrf_token": token})
        html = reply.get_data(as_text=True)
        assert reply.status_code == 400 and "Nothing was saved" in html, change
        assert re.search(r'<span class="flag" role="alert">[^<]*' + re.escape(str(escape(message))), html), change
        assert f"<strong>{field}</strong>" in html, change
    assert _docs(app) == before


def test_a_form_without_its_csrf_token_is_refused(app: Flask, web: FlaskClient) -> None:
    before = _docs(app)
    assert web.post("/campaigns/new", data=FORM).status_code == 400
    assert _docs(app) == before


def test_edit_and_assign_on_the_page(app: Flask, web: FlaskClient) -> None:
    token = csrf_token(web, "/campaigns/new")
    campaign_id = web.post("/campaigns/new", data={**FORM, "csrf_token": token}).headers["Location"].rsplit("/")[-1]
    first = _body(app, campaign_id)["_rev"]
    edit = web.get(f"/campaigns/{campaign_id}/edit").get_data(as_text=True)
    assert 'value="Diabetes week"' in edit and "north/d1: 40" in edit
    reply = web.post(f"/campaigns/{campaign_id}/edit", data={**FORM, "name": "Diabetes fortnight", "rev": first,
                                                             "csrf_token": token})
    assert reply.status_code == 302
    doc = _body(app, campaign_id)
    assert doc["name"] == "Diabetes fortnight" and doc["_rev"].startswith("2-")
    # An edit from a stale page is refused: someone saved in between.
    stale = web.post(f"/campaigns/{campaign_id}/edit", data={**FORM, "name": "Lost", "rev": first,
                                                             "csrf_token": token})
    assert stale.status_code == 400 and "changed meanwhile" in stale.get_data(as_text=True)
    assert _body(app, campaign_id)["name"] == "Diabetes fortnight"
    with app.app_context():
        enable(DB)  # the scope index: what a tablet receives
    reply = web.post(f"/campaigns/{campaign_id}/assign", data={
        "areas": ["north/d1", "north/d2/v3"], "chws": ["c1", "c3"], "rev": doc["_rev"], "csrf_token": token})
    assert reply.status_code == 302
    assert _body(app, campaign_id)["chws"] == ["c1", "c3"]
    # The campaign document reaches the CHWs' tablets by replication (c3's village is one of its areas).
    changes = web.application.test_client().get(f"/couch/{DB}/_changes", headers=_auth("c3")).get_json()
    assert campaign_id in {row["id"] for row in changes["results"]}
    refused = web.post(f"/campaigns/{campaign_id}/assign", data={
        "areas": ["north/d1"], "chws": ["nadia"], "rev": _body(app, campaign_id)["_rev"], "csrf_token": token})
    html = refused.get_data(as_text=True)
    assert refused.status_code == 400 and "Not a CHW account: nadia." in html
    assert "targets.north/d2/v3" in html  # the target of an area no longer assigned
    assert _body(app, campaign_id)["chws"] == ["c1", "c3"]


def test_pages_belong_to_the_campaigns_organiser(app: Flask, web: FlaskClient) -> None:
    token = csrf_token(web, "/campaigns/new")
    campaign_id = web.post("/campaigns/new", data={**FORM, "csrf_token": token}).headers["Location"].rsplit("/")[-1]
    with app.app_context():
        run_once(DB)  # the list reads the central records, which the worker keeps
    assert "Diabetes week" in web.get("/campaigns").get_data(as_text=True)
    other = app.test_client()
    sign_in(other, "omar")
    for path in ("", "/edit", "/progress", "/export.csv"):
        reply = other.get(f"/campaigns/{campaign_id}{path}")
        assert reply.status_code == 404 and reply.mimetype == "text/html"
    clinician = app.test_client()
    sign_in(clinician, "nadia")
    assert clinician.get("/campaigns").status_code == 403


def test_the_api_creates_edits_and_refuses(app: Flask) -> None:
    with app.app_context():
        setup_people()
    client = app.test_client()
    created = client.post("/api/v1/campaigns", json=CAMPAIGN, headers=_auth("olga"))
    assert created.status_code == 201
    made = created.get_json()
    today = datetime.now(timezone.utc).date().isoformat()
    status = "planned" if today < "2026-01-01" else "ended" if today > "2026-12-31" else "running"
    assert made["organiser"] == "olga" and made["status"] == status and made["targets"] == CAMPAIGN["targets"]
    assert _body(app, made["id"])["fields"] == CAMPAIGN["fields"]
    before = _docs(app)
    bad = client.post("/api/v1/campaigns", json={**CAMPAIGN, "areas": [], "targets": {"north/d1": -1},
                                                 "organiser": "omar"}, headers=_auth("olga"))
    assert bad.status_code == 400
    assert bad.get_json()["fields"] == {"areas": ["Must hold at least 1 item."],
                                        "targets.north/d1": ["Must be a whole number greater than or equal to 0."]}
    for body in ([1, 2], {"colour": "red", **CAMPAIGN}):
        refused = client.post("/api/v1/campaigns", json=body, headers=_auth("olga"))
        assert refused.status_code == 400 and refused.get_json()["error"] == "bad_request"
    handover = client.put(f"/api/v1/campaigns/{made['id']}", json={"organiser": "omar"}, headers=_auth("olga"))
    assert handover.status_code == 400 and "organiser" in handover.get_json()["fields"]
    assert client.put(f"/api/v1/campaigns/{made['id']}", json={"chws": []}, headers=_auth("omar")).status_code == 404
    assert client.get("/api/v1/campaigns", headers=_auth("nadia")).status_code == 403
    assert _docs(app) == before
    change = {"chws": ["c2"], "areas": ["north/d1"], "targets": {"north/d1": 30}, "rev": made["rev"]}
    assigned = client.put(f"/api/v1/campaigns/{made['id']}", json=change, headers=_auth("olga"))
    assert assigned.status_code == 200 and assigned.get_json()["chws"] == ["c2"]
    stale = client.put(f"/api/v1/campaigns/{made['id']}", json={"name": "x", "rev": made["rev"]}, headers=_auth("olga"))
    assert stale.status_code == 409
    admin_made = client.post("/api/v1/campaigns", json={**CAMPAIGN, "organiser": "omar"},
                             headers={"Authorization": "Basic " + base64.b64encode(b"admin:secret").decode()})
    assert admin_made.status_code == 201 and admin_made.get_json()["organiser"] == "omar"
    with app.app_context():
        run_once(DB)
        assert get_campaign(DB, made["id"]).body["targets"] == {"north/d1": 30}
        updates = db.session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "campaign.update"))
    assert updates == 1
    listed = client.get("/api/v1/campaigns", headers=_auth("olga")).get_json()
    assert [c["id"] for c in listed["items"]] == [made["id"]] and listed["total"] == 1
