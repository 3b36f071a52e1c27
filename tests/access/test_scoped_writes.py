"""Scoped writes: what each role may write, every refusal a ``forbidden`` answer and a quarantined revision.

Also: non-admins keep to the records database, and their ``_local`` checkpoints are theirs alone.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient

from models import db
from models.quarantine import QuarantinedRevision
from sync.devices import create_code
from tests.api.helpers import assert_couch_error

from .test_scoped_index import (CLINIC, DB, V1, V2, World, campaign, household, referral, review, visit,
                                world)

__all__ = ["world"]
URL = f"/couch/{DB}"


def held(world: World) -> list[dict[str, Any]]:
    """The quarantine rows, oldest first."""
    with world.app.app_context():
        rows = db.session.scalars(db.select(QuarantinedRevision).order_by(QuarantinedRevision.id)).all()
        return [{"doc_id": r.doc_id, "rev": r.rev, "reason": r.reason, "actor": r.actor, "device_id": r.device_id,
                 "replicated": r.replicated, "parent_rev": r.parent_rev, "attempts": r.attempts, "state": r.state,
                 "body": json.loads(r.body)} for r in rows]


def current(world: World, doc_id: str) -> Any:
    resp = world.admin.get(f"{URL}/{doc_id}")
    return resp.get_json() if resp.status_code == 200 else None


def edited(world: World, doc_id: str, **changes: Any) -> dict[str, Any]:
    """The document as the admin reads it, with ``changes``."""
    return {**current(world, doc_id), **changes}


@dataclass(frozen=True)
class Case:
    """One write by one role: the document (or a function of the world giving it) and the expected refusal."""

    role: str
    what: str
    doc: Callable[[World], dict[str, Any]]
    refused: str | None  # the reason, None when the write is allowed


CASES = [
    Case("amina", "new visit in her village", lambda w: visit("vs-new", V1, "pt-1", "amina"), None),
    Case("amina", "edit of a household in her village", lambda w: edited(w, "hh-1", name="Blue", updated_by="amina"),
         None),
    Case("amina", "deletion of her own visit", lambda w: {"_id": "vs-1", "_rev": w.revs["vs-1"], "_deleted": True},
         None),
    Case("amina", "visit in another village", lambda w: visit("vs-new", V2, "pt-3", "amina"),
         "The document's area is not one of your villages"),
    Case("amina", "visit forged as another CHW", lambda w: visit("vs-new", V1, "pt-1", "bashir"),
         "`chw` must be your user name"),
    Case("amina", "visit with a forged updated_by", lambda w: {**visit("vs-new", V1, "pt-1", "amina"),
                                                               "updated_by": "bashir"},
         "`updated_by` must be your user name"),
    Case("amina", "referral forged as another CHW", lambda w: referral("rf-new", V1, "pt-1", "bashir"),
         "`from_chw` must be your user name"),
    Case("amina", "household moved out of her village", lambda w: edited(w, "hh-1", area=V2, updated_by="amina"),
         "The document's area is not one of your villages"),
    Case("amina", "edit of a household outside (taken over)",
         lambda w: edited(w, "hh-2", area=V1, updated_by="amina"), "The document's area is not one of your villages"),
    Case("amina", "deletion of another CHW's visit", lambda w: {"_id": "vs-3", "_rev": w.revs["vs-3"],
                                                                "_deleted": True},
         "The document's area is not one of your villages"),
    Case("amina", "a campaign", lambda w: campaign("cp-new", "amina", [V1], ["amina"]),
         "A CHW writes only household, patient, visit and referral documents"),
    Case("amina", "a review", lambda w: review("rv-new", "vs-1", "amina", V1),
         "A CHW writes only household, patient, visit and referral documents"),
    Case("amina", "a design document", lambda w: {"_id": "_design/mine", "views": {}},
         "Only admins write design documents, never from a device"),
    Case("sara", "a review", lambda w: review("rv-new", "vs-1", "amina", V1),
         "Supervisors write no documents: reviews and resolutions are written by the server"),
    Case("clara", "status of a referral to her clinic", lambda w: edited(w, "rf-1", status="received",
                                                                         updated_by="clara"), None),
    Case("clara", "reason of a referral", lambda w: edited(w, "rf-1", reason="other", updated_by="clara"),
         "A clinician changes only status and status_note"),
    Case("clara", "a new referral", lambda w: referral("rf-new", V1, "pt-1", "clara"),
         "A clinician changes the status of an existing referral"),
    Case("omar", "his campaign", lambda w: edited(w, "cp-1", condition="diabetes"), None),
    Case("omar", "a new campaign of his", lambda w: campaign("cp-new", "omar", ["south"], []), None),
    Case("omar", "another organiser's campaign", lambda w: edited(w, "cp-2", organiser="omar"),
         "An organiser writes only their own campaigns"),
    Case("admin", "anything valid", lambda w: edited(w, "hh-9", name="Renamed"), None),
]
IDS = [f"{c.role}: {c.what}" for c in CASES]


def _ways(c: FlaskClient, doc: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    """The write endpoints, each sending ``doc``."""
    doc_id = doc["_id"]
    return {
        "PUT": lambda: c.put(f"{URL}/{doc_id}", json=doc),
        "_bulk_docs": lambda: c.post(f"{URL}/_bulk_docs", json={"docs": [doc]}),
        "POST": lambda: c.post(URL, json=doc),
    }


def _refused_by(resp: Any, way: str, doc_id: str, reason: str) -> None:
    """A single write's 403, or the per-document ``forbidden`` item of a bulk write."""
    if way != "_bulk_docs":
        assert_couch_error(resp, 403, "forbidden", reason)
        return
    assert resp.status_code == 201 and resp.get_json() == [{"id": doc_id, "error": "forbidden", "reason": reason}]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_writes_follow_the_rules(world: World, case: Case) -> None:
    doc = case.doc(world)
    doc_id = doc["_id"]
    before = current(world, doc_id)
    ways = _ways(world.client(case.role), doc)
    if case.refused is None:
        resp = ways["PUT"]()
        assert resp.status_code in (200, 201), resp.get_json()
        rev = resp.get_json()["rev"]
        after = current(world, doc_id)
        if doc.get("_deleted"):
            assert after is None and world.admin.get(f"{URL}/{doc_id}?rev={rev}").get_json()["_deleted"] is True
        else:
            assert after == {**{k: v for k, v in doc.items() if k != "_attachments"}, "_rev": rev,
                             **({"_attachments": after["_attachments"]} if "_attachments" in after else {})}
        assert held(world) == []
        return
    # Every way of writing is refused; the same revision sent again is the same quarantine row.
    for attempt, (way, send) in enumerate(ways.items(), start=1):
        _refused_by(send(), way, doc_id, case.refused)
        assert current(world, doc_id) == before, way  # nothing written
        [row] = held(world)
        assert row["attempts"] == attempt, way
    assert (row["doc_id"], row["reason"], row["actor"], row["device_id"], row["replicated"], row["state"]) == \
        (doc_id, case.refused, case.role, None, False, "held")
    assert row["parent_rev"] == doc.get("_rev") and row["body"]["_id"] == doc_id
    assert {k: v for k, v in row["body"].items() if k != "_rev"} == {k: v for k, v in doc.items() if k != "_rev"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def enrol(world: World, user: str) -> dict[str, Any]:
    with world.app.app_context():
        code = create_code(user)
    resp = world.app.test_client().post("/api/v1/devices/enrol", json={"code": code, "name": f"{user}'s tablet"})
    assert resp.status_code == 201
    return resp.get_json()  # type: ignore[no-any-return]


def test_a_device_push_of_a_forged_visit_is_quarantined_with_its_path(world: World) -> None:
    device = enrol(world, "amina")
    forged = {**visit("vs-forged", V1, "pt-1", "bashir"), "_rev": "1-" + "b" * 32,
              "_revisions": {"start": 1, "ids": ["b" * 32]}}
    good = {**visit("vs-good", V1, "pt-1", "amina"), "_rev": "1-" + "c" * 32,
            "_revisions": {"start": 1, "ids": ["c" * 32]}}
    tablet = world.app.test_client()
    for attempt in (1, 2):  # a retrying tablet sends the batch again
        answer = tablet.post(f"{URL}/_bulk_docs", json={"docs": [forged, good], "new_edits": False},
                             headers=bearer(device["token"]))
        assert answer.status_code == 201
        assert answer.get_json() == [{"id": "vs-forged", "rev": forged["_rev"], "error": "forbidden",
                                      "reason": "`chw` must be your user name"}]
        [row] = held(world)
        assert row["attempts"] == attempt
    assert (row["actor"], row["device_id"], row["replicated"]) == ("amina", device["device_id"], True)
    assert row["body"]["_revisions"] == forged["_revisions"]
    assert current(world, "vs-forged") is None and current(world, "vs-good")["_rev"] == good["_rev"]


def test_campaigns_and_design_documents_are_read_only_on_devices(world: World) -> None:
    device = enrol(world, "omar")
    resp = world.app.test_client().put(f"{URL}/cp-1", json=edited(world, "cp-1", condition="malaria"),
                                       headers=bearer(device["token"]))
    assert_couch_error(resp, 403, "forbidden", "Campaign and review documents are read-only on devices")
    assert held(world)[0]["device_id"] == device["device_id"] and current(world, "cp-1")["condition"] == \
        "hypertension"


def test_attachment_writes_and_multipart_are_checked_too(world: World) -> None:
    amina = world.client("amina")
    rev3 = world.revs["vs-3"]
    resp = amina.put(f"{URL}/vs-3/x.png?rev={rev3}", data=b"\x89PNG", content_type="image/png")
    assert_couch_error(resp, 404, "not_found", "missing")  # vs-3 is outside: it does not exist for amina
    rev1 = world.revs["vs-1"]
    ok = amina.put(f"{URL}/vs-1/y.png?rev={rev1}", data=b"\x89PNG", content_type="image/png")
    assert ok.status_code == 201 and world.admin.get(f"{URL}/vs-1/y.png").data == b"\x89PNG"
    body = (b'--B\r\nContent-Type: application/json\r\n\r\n'
            + json.dumps({**visit("vs-mp", V2, "pt-3", "amina"), "_attachments": {"p.png": {
                "content_type": "image/png", "follows": True, "length": 4}}}).encode()
            + b"\r\n--B\r\n\r\n\x89PNG\r\n--B--")
    resp = amina.put(f"{URL}/vs-mp", data=body, content_type='multipart/related; boundary="B"')
    assert_couch_error(resp, 403, "forbidden", "The document's area is not one of your villages")
    assert [r["doc_id"] for r in held(world)] == ["vs-mp"] and current(world, "vs-mp") is None


# ------------------------------------------------------------------------------ databases and _local
@pytest.mark.parametrize("role", ["amina", "sara", "clara", "omar"])
def test_non_admins_keep_to_the_records_database(world: World, role: str) -> None:
    c, admin = world.client(role), world.admin
    admin.put("/couch/other")
    admin.put("/couch/other/x", json={"secret": True})
    for method, path in (("GET", "/couch/other"), ("GET", "/couch/other/x"), ("GET", "/couch/other/_changes"),
                         ("PUT", "/couch/other/y"), ("POST", "/couch/other/_bulk_docs"), ("PUT", "/couch/new-db"),
                         ("DELETE", "/couch/other"), ("GET", "/couch/nothing"), ("DELETE", URL), ("PUT", URL),
                         ("POST", f"{URL}/_compact"), ("PUT", f"{URL}/_revs_limit"),
                         ("GET", f"{URL}/_design/app/_view/v")):
        resp = c.open(path, method=method, json={"docs": []} if method != "GET" else None)
        assert_couch_error(resp, 403, "forbidden")
    assert c.get("/couch/_all_dbs").get_json() == [DB]
    assert admin.get("/couch/_all_dbs").get_json() == ["other", DB]
    assert c.get(URL).get_json()["db_name"] == DB
    assert admin.get("/couch/other/x").get_json()["secret"] is True and admin.get("/couch/new-db").status_code == 404


def test_local_documents_are_the_users_own(world: World) -> None:
    amina, bashir, admin = world.client("amina"), world.client("bashir"), world.admin
    put = amina.put(f"{URL}/_local/checkpoint", json={"last_seq": 7})
    assert put.status_code == 201 and put.get_json() == {"ok": True, "id": "_local/checkpoint", "rev": "0-1"}
    assert amina.get(f"{URL}/_local/checkpoint").get_json() == {"_id": "_local/checkpoint", "_rev": "0-1",
                                                                "last_seq": 7}
    assert_couch_error(bashir.get(f"{URL}/_local/checkpoint"), 404, "not_found", "missing")
    assert_couch_error(admin.get(f"{URL}/_local/checkpoint"), 404, "not_found", "missing")
    # bashir writes the same id: his own document, amina's untouched.
    assert bashir.put(f"{URL}/_local/checkpoint", json={"last_seq": 99}).get_json()["rev"] == "0-1"
    assert amina.get(f"{URL}/_local/checkpoint").get_json()["last_seq"] == 7
    assert admin.get(f"{URL}/_local%2F_user%2Famina%2Fcheckpoint").get_json()["last_seq"] == 7
    # Through _bulk_docs, and deleted: ids come back as the user sent them.
    done = bashir.post(f"{URL}/_bulk_docs", json={"docs": [{"_id": "_local/other", "n": 1}]}).get_json()
    assert done == [{"ok": True, "id": "_local/other", "rev": "0-1"}]
    assert amina.get(f"{URL}/_local/other").status_code == 404
    gone = amina.delete(f"{URL}/_local/checkpoint?rev=0-1")
    assert gone.get_json() == {"ok": True, "id": "_local/checkpoint", "rev": "0-0"}
    assert bashir.get(f"{URL}/_local/checkpoint").get_json()["last_seq"] == 99


def test_a_device_signs_in_with_its_token_as_basic_auth_until_revoked(world: World) -> None:
    device = enrol(world, "amina")
    token_basic = {"Authorization": "Basic " + base64.b64encode(f"_device:{device['token']}".encode()).decode()}
    tablet = world.app.test_client()
    assert tablet.get(f"{URL}/hh-1", headers=token_basic).status_code == 200
    assert tablet.get(f"{URL}/hh-2", headers=token_basic).status_code == 404
    world.admin.post(f"/api/v1/devices/{device['device_id']}/revoke")
    for headers in (token_basic, bearer(device["token"])):
        assert_couch_error(tablet.get(f"{URL}/hh-1", headers=headers), 401, "unauthorized",
                           "This device has been revoked; wipe its copy.")
    wrong = {"Authorization": "Basic " + base64.b64encode(b"_device:not-a-token").decode()}
    assert_couch_error(tablet.get(URL, headers=wrong), 401, "unauthorized")


def test_the_clinic_sees_a_patient_once_consent_is_given(world: World) -> None:
    clara, admin = world.client("clara"), world.admin
    assert clara.get(f"{URL}/pt-2").status_code == 404
    admin.put(f"{URL}/pt-2", json=edited(world, "pt-2", consent={"share_with_partners": True}))
    assert clara.get(f"{URL}/pt-2").get_json()["consent"] == {"share_with_partners": True}
    assert clara.get(f"{URL}/rf-2").get_json()["to_facility"] == CLINIC
    admin.put(f"{URL}/pt-1", json=edited(world, "pt-1", consent={"share_with_partners": False}))
    assert clara.get(f"{URL}/pt-1").status_code == 404 and clara.get(f"{URL}/vs-1").status_code == 404
    assert clara.get(f"{URL}/hh-1").status_code == 404  # households are never shared with partners


def test_an_organiser_sees_the_visits_of_a_campaign_they_create(world: World) -> None:
    omar, admin = world.client("omar"), world.admin
    admin.put(f"{URL}/vs-9", json=visit("vs-9", V2, "pt-3", "bashir", campaign_id="cp-9"))
    assert omar.get(f"{URL}/vs-9").status_code == 404
    assert omar.put(f"{URL}/cp-9", json=campaign("cp-9", "omar", [V2], ["bashir"])).status_code == 201
    assert omar.get(f"{URL}/vs-9").get_json()["campaign_id"] == "cp-9"
    assert omar.get(f"{URL}/vs-3").status_code == 404
    assert household("x", V1)["type"] == "household"
