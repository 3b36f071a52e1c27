"""Conflicts, the quarantine and duplicate patients, through the pages (with CSRF) and the REST API.

The world of tests/web/test_visit_log.py, plus: two conflicted patients in the supervisor's
villages and one elsewhere; a refused visit from a CHW of the team and one from elsewhere;
a duplicate pair in the team's village and one elsewhere. What lies elsewhere never shows.
"""
from __future__ import annotations

import json
import re
from typing import Any

import pytest
from flask import Flask

from models import db
from models.audit import AuditEntry
from models.conflicts import ConflictRecord
from models.duplicates import DuplicateCandidate, PatientMerge
from models.quarantine import QuarantinedRevision
from sync.reads import ReadOptions, get_doc

from .test_visit_log import DB, ENGINES, V1, V9, World, basic, build, patient, shared_world, stamp, token

shared = pytest.fixture(shared_world, scope="module", params=ENGINES, name="shared")
MISSING = {"error": "not_found", "reason": "missing"}
TWINS = [patient("pt-d1", V1, "amina", "Mohammed", "Hassan", household_id="hh-1", birth_date="1980-03-04",
                 sex="male"),
         patient("pt-d2", V1, "amina", "Muhammad", "Hasan", household_id="hh-1", birth_date="1980-03-04",
                 sex="male", phone="+254 712 345 678"),
         patient("pt-d8", V9, "zed", "Fatima", "Ali", household_id="hh-9", birth_date="1992-05-05"),
         patient("pt-d9", V9, "zed", "Fatma", "Aly", household_id="hh-9", birth_date="1992-05-05")]


def branch(world: World, doc_id: str, field: str, values: tuple[str, str]) -> None:
    """Two tablets edit ``field`` of a patient differently offline; the worker resolves and records the conflict."""
    admin = world.api("admin")
    current = admin.get(f"/couch/{DB}/{doc_id}").get_json()
    parent = current.pop("_rev").split("-")[1]
    docs = [{**current, field: value, "updated_at": f"2026-01-0{n + 1}T08:00:00Z", "updated_by": f"tablet-{n}",
             "_rev": f"2-{char * 32}", "_revisions": {"start": 2, "ids": [char * 32, parent]}}
            for n, (value, char) in enumerate(zip(values, "ab"))]
    resp = admin.post(f"/couch/{DB}/_bulk_docs", json={"docs": docs, "new_edits": False})
    assert resp.status_code == 201 and resp.get_json() == []


def refused_visit(world: World, chw: str, area: str) -> None:
    """A CHW's visit with an impossible blood pressure: refused and held."""
    doc = {"_id": f"vs-bad-{chw}", "type": "visit", **stamp(area, chw), "patient_id": "pt-1", "chw": chw,
           "visited_at": "2026-01-05T08:00:00Z", "kind": "routine",
           "observations": {"bp_systolic": 20, "bp_diastolic": 10}}
    client = world.app.test_client()
    resp = client.post(f"/couch/{DB}/_bulk_docs", json={"docs": [doc]}, headers=basic(chw))
    assert resp.get_json()[0]["error"] == "forbidden", resp.get_json()


def build_supervised(app: Flask) -> World:
    world = build(app, TWINS)
    branch(world, "pt-1", "phone", ("+254 700 000 001", "+254 700 000 002"))
    branch(world, "pt-3", "family_name", ("Saidi", "Seid"))
    branch(world, "pt-9", "family_name", ("Mwangu", "Mwanga"))
    refused_visit(world, "amina", V1)
    refused_visit(world, "zed", V9)
    world.project()
    return world


@pytest.fixture
def sup(app: Flask) -> World:
    return build_supervised(app)


def rows(world: World, model: Any, **where: Any) -> list[Any]:
    with world.app.app_context():
        db.session.expire_all()
        found = db.session.scalars(db.select(model).filter_by(**where).order_by(model.id)).all()
        db.session.expunge_all()
        return list(found)


def audit(world: World, action: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    return [(e.actor, e.doc_id, e.detail) for e in rows(world, AuditEntry, action=action)]


def doc(world: World, doc_id: str) -> dict[str, Any]:
    with world.app.app_context():
        return get_doc(DB, doc_id, None, ReadOptions())


def conflict_id(world: World, doc_id: str) -> int:
    [found] = rows(world, ConflictRecord, doc_id=doc_id)
    return int(found.id)


# ------------------------------------------------------------------------------------------------ conflicts
def test_conflicts_in_reach_are_listed_side_by_side_and_settled_on_the_page(sup: World) -> None:
    client = sup.browser()
    listing = client.get("/conflicts").get_data(as_text=True)
    ids = [conflict_id(sup, d) for d in ("pt-1", "pt-3", "pt-9")]
    assert re.findall(r'href="/conflicts/(\d+)"', listing) == [str(ids[0]), str(ids[1])]
    assert "Aisha Okello" in listing and "Zawadi" not in listing and "2 conflicts" in listing
    api = sup.api("sara").get("/api/v1/conflicts").get_json()
    assert [c["doc_id"] for c in api["items"]] == ["pt-1", "pt-3"] and api["total"] == 2
    assert sup.api("admin").get("/api/v1/conflicts").get_json()["total"] == 3
    page = client.get(f"/conflicts/{ids[0]}").get_data(as_text=True)
    assert "+254 700 000 001" in page and "+254 700 000 002" in page and "tablet-0" in page and "tablet-1" in page
    [record] = rows(sup, ConflictRecord, doc_id="pt-1")
    other = next(v for v in record.values if v["rev"] != record.picked_rev)
    resp = client.post(f"/conflicts/{ids[0]}/choose",
                       data={"rev": other["rev"], "csrf_token": token(client, f"/conflicts/{ids[0]}")})
    assert resp.status_code == 302
    [record] = rows(sup, ConflictRecord, doc_id="pt-1")
    assert (record.state, record.decided_by) == ("changed", "sara")
    assert doc(sup, "pt-1")["phone"] == other["value"] and doc(sup, "pt-1")["updated_by"] == "sara"
    [(actor, doc_id, detail)] = audit(sup, "conflict.choose")
    assert (actor, doc_id, detail["rev"], detail["state"]) == ("sara", "pt-1", other["rev"], "changed")
    again = client.post(f"/conflicts/{ids[0]}/choose", data={"rev": other["rev"], "csrf_token": token(
        client, f"/conflicts/{ids[0]}")}, follow_redirects=True)
    assert "was already decided (changed)" in again.get_data(as_text=True)
    # The API: the other conflict in reach; the one elsewhere is missing.
    [record3] = rows(sup, ConflictRecord, doc_id="pt-3")
    chosen = sup.api("sara").post(f"/api/v1/conflicts/{ids[1]}/choose", json={"rev": record3.picked_rev})
    assert chosen.status_code == 200 and chosen.get_json()["state"] == "kept"
    assert chosen.get_json()["written_rev"] is None and doc(sup, "pt-3")["family_name"] in ("Saidi", "Seid")
    refused = sup.api("sara").post(f"/api/v1/conflicts/{ids[2]}/choose", json={"rev": record3.picked_rev})
    assert refused.status_code == 404 and refused.get_json() == MISSING
    assert client.get(f"/conflicts/{ids[2]}").status_code == 404
    assert rows(sup, ConflictRecord, doc_id="pt-9")[0].state == "open" and len(audit(sup, "conflict.choose")) == 2


# ------------------------------------------------------------------------------------------------ quarantine
def held_id(world: World, chw: str) -> int:
    [item] = rows(world, QuarantinedRevision, actor=chw)
    return int(item.id)


def test_the_quarantine_lists_what_the_team_sent_and_releases_a_correction(sup: World) -> None:
    client = sup.browser()
    mine, theirs = held_id(sup, "amina"), held_id(sup, "zed")
    listing = client.get("/quarantine").get_data(as_text=True)
    assert re.findall(r'href="/quarantine/(\d+)"', listing) == [str(mine)] and "vs-bad-zed" not in listing
    assert [i["id"] for i in sup.api("sara").get("/api/v1/quarantine").get_json()["items"]] == [mine]
    assert sup.api("admin").get("/api/v1/quarantine").get_json()["total"] == 2
    page = client.get(f"/quarantine/{mine}").get_data(as_text=True)
    assert "observations.bp_systolic" in page and "Must be greater than or equal to 50" in page
    assert "&#34;bp_systolic&#34;: 20" in page  # the document, formatted, in the textarea
    held = rows(sup, QuarantinedRevision, id=mine)[0].document
    # Not JSON, then still invalid: shown plainly, nothing changes.
    bad = client.post(f"/quarantine/{mine}/release", data={"document": "{not json", "csrf_token": token(
        client, f"/quarantine/{mine}")})
    assert bad.status_code == 400 and "The document is not valid JSON." in bad.get_data(as_text=True)
    still = client.post(f"/quarantine/{mine}/release", data={"document": json.dumps(held), "csrf_token": token(
        client, f"/quarantine/{mine}")})
    assert still.status_code == 400 and "The corrected document is still invalid." in still.get_data(as_text=True)
    moved = {**held, "area": V9}
    away = client.post(f"/quarantine/{mine}/release", data={"document": json.dumps(moved), "csrf_token": token(
        client, f"/quarantine/{mine}")})
    assert away.status_code == 400 and "must lie in one of your areas" in away.get_data(as_text=True)
    assert rows(sup, QuarantinedRevision, id=mine)[0].state == "held" and audit(sup, "quarantine.release") == []
    fixed = {**held, "observations": {"bp_systolic": 120, "bp_diastolic": 80}}
    done = client.post(f"/quarantine/{mine}/release", data={"document": json.dumps(fixed), "csrf_token": token(
        client, f"/quarantine/{mine}")})
    assert done.status_code == 302
    item = rows(sup, QuarantinedRevision, id=mine)[0]
    assert (item.state, item.decided_by) == ("released", "sara")
    assert doc(sup, "vs-bad-amina")["observations"] == {"bp_systolic": 120, "bp_diastolic": 80}
    assert [(a, d) for a, d, _ in audit(sup, "quarantine.release")] == [("sara", "vs-bad-amina")]
    assert client.get(f"/quarantine/{theirs}").status_code == 404
    assert sup.api("sara").get(f"/api/v1/quarantine/{theirs}").get_json() == MISSING


def test_discarding_through_the_api_needs_a_note_and_reach(sup: World) -> None:
    mine, theirs = held_id(sup, "amina"), held_id(sup, "zed")
    api = sup.api("sara")
    item = api.get(f"/api/v1/quarantine/{mine}").get_json()
    assert item["fields"] == {"observations.bp_systolic": [
        "Must be greater than or equal to 50 and less than or equal to 300."],
        "observations.bp_diastolic": ["Must be greater than or equal to 20 and less than or equal to 200."]}
    assert item["document"]["_id"] == "vs-bad-amina" and item["area"] == V1 and item["actor"] == "amina"
    blank = api.post(f"/api/v1/quarantine/{mine}/discard", json={"note": "  "})
    assert blank.status_code == 400 and blank.get_json()["reason"] == "A discard needs a note saying why"
    assert api.post(f"/api/v1/quarantine/{theirs}/discard", json={"note": "x"}).get_json() == MISSING
    done = api.post(f"/api/v1/quarantine/{mine}/discard", json={"note": "Typed twice"})
    assert done.status_code == 200 and done.get_json()["state"] == "discarded"
    assert [(a, d["note"]) for a, _, d in audit(sup, "quarantine.discard")] == [("sara", "Typed twice")]
    assert rows(sup, QuarantinedRevision, id=theirs)[0].state == "held"
    again = api.post(f"/api/v1/quarantine/{mine}/discard", json={"note": "again"})
    assert again.status_code == 409 and "already discarded" in again.get_json()["reason"]


# ------------------------------------------------------------------------------------------------ duplicates
def test_duplicates_in_reach_are_merged_and_undone_on_the_pages(sup: World) -> None:
    client = sup.browser()
    listing = client.get("/duplicates").get_data(as_text=True)
    assert 'href="/duplicates/pt-d1/pt-d2"' in listing and "pt-d8" not in listing and "1 pair" in listing
    page = client.get("/duplicates/pt-d1/pt-d2").get_data(as_text=True)
    assert "Mohammed" in page and "Muhammad" in page and "given name" in page and "+254 712 345 678" in page
    assert client.get("/duplicates/pt-d8/pt-d9").status_code == 404
    merged = client.post("/duplicates/pt-d1/pt-d2/merge", data={"survivor": "pt-d1", "csrf_token": token(
        client, "/duplicates/pt-d1/pt-d2")})
    assert merged.status_code == 302
    [merge] = rows(sup, PatientMerge)
    assert (merge.survivor_id, merge.merged_id, merge.state, merge.by) == ("pt-d1", "pt-d2", "merged", "sara")
    assert doc(sup, "pt-d2")["merged_into"] == "pt-d1" and doc(sup, "pt-d1")["phone"] == "+254 712 345 678"
    assert [(a, d) for a, d, _ in audit(sup, "patient.merge")] == [("sara", "pt-d2")]
    after = client.get("/duplicates").get_data(as_text=True)
    assert f'action="/merges/{merge.id}/undo"' in after and "0 pairs" in after
    undone = client.post(f"/merges/{merge.id}/undo", data={"csrf_token": token(client, "/duplicates")})
    assert undone.status_code == 302 and rows(sup, PatientMerge)[0].state == "undone"
    assert "merged_into" not in doc(sup, "pt-d2") and "phone" not in doc(sup, "pt-d1")
    assert [(a, d) for a, d, _ in audit(sup, "patient.unmerge")] == [("sara", "pt-d2")]
    twice = client.post(f"/merges/{merge.id}/undo", data={"csrf_token": token(client, "/duplicates")},
                        follow_redirects=True)
    assert "was already undone" in twice.get_data(as_text=True)


def test_duplicates_through_the_api(sup: World) -> None:
    api = sup.api("sara")
    listing = api.get("/api/v1/duplicates").get_json()
    assert [(p["a"]["id"], p["b"]["id"]) for p in listing["items"]] == [("pt-d1", "pt-d2")]
    assert listing["items"][0]["score"] >= 0.75 and listing["items"][0]["reasons"]["given_name"] > 0
    assert sup.api("admin").get("/api/v1/duplicates").get_json()["total"] == 2
    assert api.post("/api/v1/duplicates/pt-d1/pt-d2/merge", json={"survivor": "pt-1"}).get_json() == {
        "error": "bad_request", "reason": "survivor must be one of the two patients"}
    assert api.post("/api/v1/duplicates/pt-d8/pt-d9/merge", json={"survivor": "pt-d8"}).get_json() == MISSING
    done = api.post("/api/v1/duplicates/pt-d2/pt-d1/merge", json={"survivor": "pt-d2"})
    assert done.status_code == 201 and done.get_json()["survivor_id"] == "pt-d2"
    assert doc(sup, "pt-d1")["merged_into"] == "pt-d2"
    merges = api.get("/api/v1/merges").get_json()
    assert [m["merged"]["id"] for m in merges["items"]] == ["pt-d1"] and merges["total"] == 1
    undone = api.post(f"/api/v1/merges/{done.get_json()['id']}/undo")
    assert undone.status_code == 200 and undone.get_json()["state"] == "undone"
    assert rows(sup, DuplicateCandidate, patient_a="pt-d1")[0].state == "open"
    dismissed = api.post("/api/v1/duplicates/pt-d1/pt-d2/dismiss")
    assert dismissed.status_code == 200 and dismissed.get_json()["state"] == "dismissed"
    assert api.get("/api/v1/duplicates").get_json()["total"] == 0
    assert api.get("/api/v1/duplicates", query_string={"state": "dismissed"}).get_json()["total"] == 1


@pytest.mark.parametrize("path", ["/conflicts", "/quarantine", "/duplicates"])
def test_a_bad_state_is_shown_plainly(shared: World, path: str) -> None:
    page = shared.browser().get(path, query_string={"state": "sideways"})
    assert page.status_code == 400 and "state must be one of" in page.get_data(as_text=True)
    api = shared.api("sara").get(f"/api/v1{path}", query_string={"state": "sideways"})
    assert api.status_code == 400 and api.get_json()["reason"].startswith("state must be one of")
    assert shared.api("amina").get(f"/api/v1{path}").status_code == 403


def test_the_header_links_the_supervisor_pages(shared: World) -> None:
    html = shared.browser().get("/visits").get_data(as_text=True)
    for path in ("/visits", "/conflicts", "/quarantine", "/duplicates", "/activity"):
        assert f'href="{path}"' in html
