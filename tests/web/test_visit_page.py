"""One visit (``/visits/<id>`` and ``GET /api/v1/visits/<id>``), its photos, and reviewing it."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from flask.testing import FlaskClient

from models import db
from models.audit import AuditEntry
from sync import audit, devices
from sync.errors import NotFound
from sync.records.resolve import resolve_document
from sync.reads import ReadOptions, get_doc
from sync.writes import bulk_docs

from .test_visit_log import DB, ENGINES, PHOTO, V1, V2, World, fresh_world, shared_world, token, visit

world = pytest.fixture(fresh_world, name="world")
shared = pytest.fixture(shared_world, scope="module", params=ENGINES, name="shared")
MISSING = {"error": "not_found", "reason": "missing"}


def stored_review(world: World, visit_id: str) -> dict[str, object] | None:
    with world.app.app_context():
        try:
            return get_doc(DB, f"review-{visit_id}", None, ReadOptions(revs=True))
        except NotFound:
            return None


def audit_of(world: World, visit_id: str) -> list[tuple[str, str, dict[str, object]]]:
    """The decisions audited about a visit: its own writes (``doc.write``) and reads (``doc.read``) left out."""
    with world.app.app_context():
        rows = AuditEntry.query.filter_by(db_name=DB, doc_id=visit_id).order_by(AuditEntry.id).all()
        return [(e.actor, e.action, e.detail) for e in rows if e.action not in ("doc.write", "doc.read")]


def test_the_visit_page_shows_the_visit_its_patient_photos_and_history(shared: World) -> None:
    world = shared
    api = world.api("sara").get("/api/v1/visits/vs-a1").get_json()
    assert api["doc_id"] == "vs-a1" and api["rev"] == world.revs["vs-a1"] and api["chw"] == "amina"
    assert api["observations"] == {"bp_systolic": 150, "bp_diastolic": 95} and api["risk_flags"] == ["bp_high"]
    assert api["patient"] == {"id": "pt-1", "doc_id": "pt-1", "name": "Aisha Okello", "sex": "female",
                              "birth_date": "1990-04-01", "estimated_age_years": None, "household_id": None,
                              "area": V1}
    assert api["photos"] == [{"name": "arm.png", "content_type": "image/png", "length": len(PHOTO)}]
    revs = [(r["rev"], r["winner"], r["leaf"], r["deleted"]) for r in api["revisions"]]
    first = world.revs["vs-a1"]
    assert revs[0] == (first, True, True, False) and len(revs) == 2 and revs[1][0].startswith("1-")
    assert api["revisions"][0]["held"] and api["revisions"][0]["updated_by"] == "amina"
    assert api["conflicts"] == [] and api["review"] is None
    html = world.browser().get("/visits/vs-a1").get_data(as_text=True)
    assert "Aisha Okello" in html and 'href="/visits?patient=pt-1"' in html and "150" in html
    assert 'src="/visits/vs-a1/photos/arm.png"' in html and first[:14] in html and "Not reviewed yet." in html


def test_photos_are_served_with_their_type_under_the_visit_rule(shared: World) -> None:
    world = shared
    for client, path in ((world.browser(), "/visits/vs-a1/photos/arm.png"),
                         (world.api("sara"), "/api/v1/visits/vs-a1/photos/arm.png")):
        resp = client.get(path)
        assert resp.status_code == 200 and resp.data == PHOTO and resp.mimetype == "image/png"
        assert "no-store" in resp.headers["Cache-Control"]
        assert client.get(path.replace("arm.png", "leg.png")).status_code == 404
    assert world.api("zed").get("/api/v1/visits/vs-a1/photos/arm.png").status_code == 403  # a CHW


@pytest.mark.parametrize("doc_id", ["vs-z1", "no-such-visit", "pt-1"])
def test_a_visit_out_of_reach_is_missing_like_an_absent_one(shared: World, doc_id: str) -> None:
    world = shared
    resp = world.api("sara").get(f"/api/v1/visits/{doc_id}")
    assert resp.status_code == 404 and resp.get_json() == MISSING
    assert world.api("sara").get(f"/api/v1/visits/{doc_id}/photos/arm.png").get_json() == MISSING
    page = world.browser().get(f"/visits/{doc_id}")
    assert page.status_code == 404 and "There is no such page." in page.get_data(as_text=True)
    assert world.api("admin").get("/api/v1/visits/vs-z1").status_code == 200


def review_form(client: FlaskClient, visit_id: str, **data: str) -> object:
    return client.post(f"/visits/{visit_id}/review", data={**data, "csrf_token": token(client, f"/visits/{visit_id}")})


def test_reviewing_on_the_page_writes_the_review_document_and_an_audit_entry(world: World) -> None:
    client = world.browser()
    before = datetime.now(timezone.utc).isoformat()[:19]
    resp = review_form(client, "vs-b1", state="has_issues", comment="  Weigh her again  ")
    assert resp.status_code == 302 and resp.headers["Location"] == "/visits/vs-b1"
    doc = stored_review(world, "vs-b1")
    assert doc is not None and doc["_rev"].startswith("1-")  # type: ignore[union-attr]
    body = {k: v for k, v in doc.items() if k not in ("_rev", "_revisions", "reviewed_at")}
    assert body == {"_id": "review-vs-b1", "type": "review", "visit_id": "vs-b1", "chw": "bashir",
                    "state": "has_issues", "comment": "Weigh her again", "reviewer": "sara", "area": V2}
    assert str(doc["reviewed_at"]) >= before and str(doc["reviewed_at"]).endswith("Z")
    written = {"review_id": "review-vs-b1", "rev": doc["_rev"], "state": "has_issues"}
    assert audit_of(world, "vs-b1") == [("sara", "review.write", written)]
    html = client.get("/visits/vs-b1").get_data(as_text=True)
    assert "Has issues" in html and "Weigh her again" in html and "review.write" in html
    # Reviewing again revises the same document: the tablet holds one review per visit.
    assert review_form(client, "vs-b1", state="approved", comment="").status_code == 302
    again = stored_review(world, "vs-b1")
    assert again is not None and again["_rev"].startswith("2-") and again["state"] == "approved"
    assert "comment" not in again and again["_revisions"]["ids"][1] == doc["_rev"].split("-")[1]  # type: ignore
    world.project()
    assert world.api("sara").get("/api/v1/visits", query_string={"review": "approved"}).get_json()["total"] == 1


def test_reviewing_through_the_api(world: World) -> None:
    resp = world.api("sara").post("/api/v1/visits/vs-a2/review", json={"state": "rejected", "comment": "Not hers"})
    assert resp.status_code == 201
    doc = stored_review(world, "vs-a2")
    assert doc is not None and resp.get_json() == {k: v for k, v in doc.items() if k != "_revisions"}
    assert doc["state"] == "rejected" and doc["chw"] == "amina" and doc["area"] == V1
    # A signed-in browser calling the API needs the page's CSRF token.
    browser = world.browser()
    refused = browser.post("/api/v1/visits/vs-a3/review", json={"state": "approved"})
    assert refused.status_code == 400 and stored_review(world, "vs-a3") is None
    done = browser.post("/api/v1/visits/vs-a3/review", json={"state": "approved"},
                        headers={"X-CSRFToken": token(browser, "/visits/vs-a3")})
    assert done.status_code == 201 and stored_review(world, "vs-a3")["reviewer"] == "sara"  # type: ignore[index]


@pytest.mark.parametrize("body, status, reason", [
    ({"state": "great"}, 400, "Invalid fields: state: Must be one of: approved, has_issues, rejected."),
    ({"state": "has_issues"}, 400, "A review that is not an approval needs a comment saying what to fix"),
    ({"state": "rejected", "comment": "  "}, 400,
     "A review that is not an approval needs a comment saying what to fix"),
    ({"state": "approved", "comment": "x" * 2001}, 400, "Invalid fields: comment: Longer than maximum length 2000."),
    ({"state": "approved", "extra": 1}, 400, "Invalid fields: extra: Unknown field."),
])
def test_a_bad_review_is_refused_and_writes_nothing(shared: World, body: dict[str, object], status: int,
                                                    reason: str) -> None:
    world = shared
    resp = world.api("sara").post("/api/v1/visits/vs-b2/review", json=body)
    assert resp.status_code == status and resp.get_json() == {"error": "bad_request", "reason": reason}
    assert stored_review(world, "vs-b2") is None and audit_of(world, "vs-b2") == []


def test_a_bad_review_on_the_page_shows_why_and_keeps_what_was_typed(shared: World) -> None:
    world = shared
    client = world.browser()
    resp = review_form(client, "vs-b2", state="rejected", comment="")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "needs a comment saying what to fix" in html
    assert 'value="rejected" checked' in html
    assert stored_review(world, "vs-b2") is None and audit_of(world, "vs-b2") == []


def test_no_one_reviews_a_visit_out_of_reach_or_without_the_role(shared: World) -> None:
    world = shared
    assert world.api("sara").post("/api/v1/visits/vs-z1/review", json={"state": "approved"}).get_json() == MISSING
    assert world.api("amina").post("/api/v1/visits/vs-a1/review", json={"state": "approved"}).status_code == 403
    client = world.browser()
    resp = client.post("/visits/vs-z1/review", data={"state": "approved", "csrf_token": token(client, "/visits")})
    assert resp.status_code == 404
    no_token = client.post("/visits/vs-a1/review", data={"state": "approved"})
    assert no_token.status_code == 400
    for visit_id in ("vs-z1", "vs-a1"):
        assert stored_review(world, visit_id) is None and audit_of(world, visit_id) == []


def synced(revision: dict[str, object]) -> tuple[object, ...]:
    return tuple(revision[k] for k in ("written_by", "written_via", "device_id", "device_name"))


def test_the_history_shows_who_synced_each_revision_from_which_device(world: World) -> None:
    with world.app.app_context():
        device, _ = devices.enrol(devices.create_code("amina"), "tablet-amina-1")
        # Written below the gates, so the only doc.write entries are the ones this test adds.
        first = bulk_docs(DB, [visit("vs-t1", V1, "pt-1", "amina", 4)])[0]["rev"]
        second = bulk_docs(DB, [{**visit("vs-t1", V1, "pt-1", "amina", 4), "_rev": first, "notes": "again"}])[0]["rev"]
        third = bulk_docs(DB, [{**visit("vs-t1", V1, "pt-1", "amina", 4), "_rev": second, "notes": "3"}])[0]["rev"]
        audit.record("amina", "doc.write", db_name=DB, doc_id="vs-t1", device_id=device.device_id, rev=first,
                     via="replication")
        audit.record("sara", "doc.write", db_name=DB, doc_id="vs-t1", rev=second, via="api")
        # Ignored: a later entry for a rev already written, a rev the document lacks, another document.
        audit.record("zed", "doc.write", db_name=DB, doc_id="vs-t1", rev=first, via="replication")
        audit.record("zed", "doc.write", db_name=DB, doc_id="vs-t1", rev="9-" + "0" * 32, via="replication")
        audit.record("zed", "doc.write", db_name=DB, doc_id="vs-a1", rev=third, via="replication")
        db.session.commit()
        at = {e.detail["rev"]: e.at for e in AuditEntry.query.filter_by(doc_id="vs-t1", actor="amina")}
    world.project()
    revisions = world.api("sara").get("/api/v1/visits/vs-t1").get_json()["revisions"]
    assert [r["rev"] for r in revisions] == [third, second, first]
    assert [synced(r) for r in revisions] == [(None, None, None, None), ("sara", "api", None, None),
                                              ("amina", "replication", device.device_id, "tablet-amina-1")]
    assert revisions[2]["written_at"] == at[first] and revisions[0]["written_at"] is None
    html = world.browser().get("/visits/vs-t1").get_data(as_text=True)
    table = html[html.index('id="revisions"'):]
    assert "tablet-amina-1" in table and "amina (replication)" in table and "sara (api)" in table
    assert table.index(third[:14]) < table.index(second[:14]) < table.index("tablet-amina-1")


def test_a_visit_pushed_by_a_chw_tablet_shows_who_synced_it(world: World) -> None:
    """Through the real write path: ``_bulk_docs`` with the tablet's token writes the ``doc.write`` entry."""
    with world.app.app_context():
        device, secret = devices.enrol(devices.create_code("amina"), "tablet-amina-2")
    tablet = world.app.test_client()
    pushed = tablet.post(f"/couch/{DB}/_bulk_docs", json={"docs": [visit("vs-t2", V1, "pt-1", "amina", 2)]},
                         headers={"Authorization": f"Bearer {secret}"})
    assert pushed.status_code == 201 and "error" not in pushed.get_json()[0], pushed.get_json()
    world.project()
    revisions = world.api("sara").get("/api/v1/visits/vs-t2").get_json()["revisions"]
    assert [r["rev"] for r in revisions] == [pushed.get_json()[0]["rev"]]
    assert synced(revisions[0]) == ("amina", "replication", device.device_id, "tablet-amina-2")
    assert "tablet-amina-2" in world.browser().get("/visits/vs-t2").get_data(as_text=True)


def test_revisions_the_server_writes_name_who_wrote_them(world: World) -> None:
    """A resolution's merge and tombstone get their doc.write entries like a tablet's revisions."""
    base = visit("vs-t3", V1, "pt-1", "amina", 3)
    with world.app.app_context():
        first = bulk_docs(DB, [base])[0]["rev"]
        # Two offline edits of the same revision, stored as a replicator stores them: a conflict.
        left, right = ("2-" + c * 32 for c in "ab")
        for rev, notes in ((left, "left"), (right, "right")):
            bulk_docs(DB, [{**base, "_rev": rev, "notes": notes,
                            "_revisions": {"start": 2, "ids": [rev[2:], first[2:]]}}], new_edits=False)
        merged = resolve_document(DB, "vs-t3", actor="sara")
    assert merged is not None
    world.project()
    revisions = {r["rev"]: r for r in world.api("sara").get("/api/v1/visits/vs-t3").get_json()["revisions"]}
    assert synced(revisions[merged]) == ("sara", "resolve", None, None)
    tombstones = [r for r in revisions.values() if r["deleted"]]
    assert len(tombstones) == 1 and synced(tombstones[0]) == ("sara", "resolve", None, None)
    # The revisions written below the gates (this test's bulk_docs) have no entry.
    assert synced(revisions[first]) == (None, None, None, None)
