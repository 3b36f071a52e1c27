"""Writes to the records database are checked; refused revisions wait in the quarantine (DESIGN decision 5)."""
from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from crypto import hash_password
from models import Database, Document, Revision, User, db
from models.audit import AuditEntry
from models.quarantine import QuarantinedRevision
from sync.devices import create_code
from sync.errors import BadRequest, Conflict, NotFound
from sync.records.quarantine import discard, get_item, list_held, release
from tests.api.helpers import assert_couch_error

RECORDS = "/couch/records"
STAMP = {"area": "north/district-3", "updated_at": "2026-11-20T09:15:00+03:00", "updated_by": "amina"}
BP_REASON = ("Invalid fields: observations.bp_systolic: "
             "Must be greater than or equal to 50 and less than or equal to 300.")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))


def visit(doc_id: str | None = None, systolic: float = 120, **extra: Any) -> dict[str, Any]:
    """A visit document; ``systolic`` below 50 makes it invalid."""
    doc = {"type": "visit", **STAMP, "patient_id": "patient-1", "chw": "amina", "visited_at": "2026-11-20T09:00:00Z",
           "kind": "routine", "observations": {"bp_systolic": systolic, "bp_diastolic": 80}, **extra}
    return doc if doc_id is None else {"_id": doc_id, **doc}


def rev(pos: int, char: str) -> str:
    return f"{pos}-{char * 32}"


@pytest.fixture
def records(client: FlaskClient) -> FlaskClient:
    """The admin client, with the records database created."""
    assert client.put(RECORDS).status_code == 201
    return client


def stored(app: Flask) -> dict[str, list[str]]:
    """Every document of the records database with the revisions whose bodies are stored."""
    with app.app_context():
        found: dict[str, list[str]] = {}
        for doc_id, rev_ in db.session.execute(
                db.select(Document.doc_id, Revision.rev).join(Revision, Revision.document_id == Document.id)
                .join(Database, Database.id == Document.database_id).where(Database.name == "records")):
            found.setdefault(doc_id, []).append(rev_)
        return {k: sorted(v) for k, v in found.items()}


def held(app: Flask) -> list[dict[str, Any]]:
    """The quarantine's rows, as plain dicts."""
    with app.app_context():
        rows = db.session.scalars(db.select(QuarantinedRevision).order_by(QuarantinedRevision.id))
        return [{c.name: getattr(r, c.name) for c in QuarantinedRevision.__table__.columns} for r in rows]


def audit(app: Flask, action: str) -> list[dict[str, Any]]:
    with app.app_context():
        rows = db.session.scalars(db.select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))
        return [{"actor": e.actor, "doc_id": e.doc_id, "db_name": e.db_name, "device_id": e.device_id,
                 **e.detail} for e in rows]


def update_seq(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(db.select(Database.update_seq).where(Database.name == "records"))


# --------------------------------------------------------------------------------------------- writes


def test_replicated_batch_stores_the_good_and_holds_the_bad(app: Flask, records: FlaskClient) -> None:
    good = [{**visit(f"v-{i}"), "_rev": rev(1, "a"), "_revisions": {"start": 1, "ids": ["a" * 32]}} for i in range(3)]
    bad = {**visit("v-bad", systolic=20), "_rev": rev(2, "b"), "_revisions": {"start": 2, "ids": ["b" * 32, "c" * 32]}}
    batch = {"docs": [good[0], bad, good[1], good[2]], "new_edits": False}

    reply = records.post(f"{RECORDS}/_bulk_docs", json=batch)
    assert reply.status_code == 201
    assert reply.get_json() == [{"id": "v-bad", "rev": rev(2, "b"), "error": "forbidden", "reason": BP_REASON}]
    assert stored(app) == {f"v-{i}": [rev(1, "a")] for i in range(3)}  # no trace of v-bad, not even a row
    assert records.get(f"{RECORDS}/v-1").get_json()["observations"] == {"bp_systolic": 120, "bp_diastolic": 80}
    [row] = held(app)
    assert {k: row[k] for k in ("db_name", "doc_id", "rev", "parent_rev", "replicated", "reason", "actor",
                                "device_id", "attempts", "state")} == {
        "db_name": "records", "doc_id": "v-bad", "rev": rev(2, "b"), "parent_rev": None, "replicated": True,
        "reason": BP_REASON, "actor": "admin", "device_id": None, "attempts": 1, "state": "held"}
    assert row["fields"] == {"observations.bp_systolic": [
        "Must be greater than or equal to 50 and less than or equal to 300."]}
    assert json.loads(row["body"]) == bad  # as sent, with its revision path
    seq = update_seq(app)

    again = records.post(f"{RECORDS}/_bulk_docs", json=batch)
    assert again.get_json() == reply.get_json()
    [row2] = held(app)
    assert row2["id"] == row["id"] and row2["attempts"] == 2 and row2["last_seen_at"] >= row["last_seen_at"]
    assert update_seq(app) == seq  # the re-sent batch changed no document
    assert [(e["doc_id"], e["rev"], e["reason"]) for e in audit(app, "quarantine.hold")] == \
        [("v-bad", rev(2, "b"), BP_REASON)]


def test_edit_batch_answers_forbidden_items_with_ids(app: Flask, records: FlaskClient) -> None:
    first = records.put(f"{RECORDS}/v-1", json=visit()).get_json()
    reply = records.post(f"{RECORDS}/_bulk_docs", json={"docs": [
        visit("v-2"), {**visit("v-1", systolic=10), "_rev": first["rev"]}, visit(systolic=400),
        visit("v-3", kind="home")]}).get_json()
    assert reply[0]["ok"] is True and reply[0]["id"] == "v-2"
    assert reply[1] == {"id": "v-1", "error": "forbidden", "reason": BP_REASON}
    generated = reply[2]["id"]  # the server chose the id, and says which
    assert set(reply[2]) == {"id", "error", "reason"} and len(generated) == 32
    assert reply[3] == {"id": "v-3", "error": "forbidden", "reason":
                        "Invalid fields: kind: Must be one of: routine, antenatal, chronic_follow_up, screening."}
    assert stored(app) == {"v-1": [first["rev"]], "v-2": [reply[0]["rev"]]}
    rows = {r["doc_id"]: r for r in held(app)}
    assert sorted(rows) == sorted(["v-1", "v-3", generated])
    assert rows["v-1"]["parent_rev"] == first["rev"] and rows["v-1"]["replicated"] is False
    assert rows["v-1"]["rev"].startswith("2-") and rows["v-3"]["rev"].startswith("1-")
    # The same refused edit, sent again, would have had the same rev: still one row.
    records.post(f"{RECORDS}/_bulk_docs", json={"docs": [{**visit("v-1", systolic=10), "_rev": first["rev"]}]})
    assert {r["doc_id"]: r["attempts"] for r in held(app)} == {"v-1": 2, "v-3": 1, generated: 1}


def test_single_writes_of_a_refused_document_are_403_and_held(app: Flask, records: FlaskClient) -> None:
    assert_couch_error(records.put(f"{RECORDS}/v-put", json=visit(systolic=1)), 403, "forbidden", BP_REASON)
    assert_couch_error(records.post(RECORDS, json=visit("v-post", systolic=1)), 403, "forbidden", BP_REASON)
    replicated = {**visit(systolic=1), "_revisions": {"start": 1, "ids": ["d" * 32]}}
    assert_couch_error(records.put(f"{RECORDS}/v-repl?new_edits=false", json=replicated), 403, "forbidden")
    assert_couch_error(records.put(f"{RECORDS}/p-1", json={"type": "patient", **STAMP, "given_name": "A"}), 403,
                       "forbidden", "Invalid fields: birth_date: A patient needs a birth_date or an "
                       "estimated_age_years.; sex: Missing data for required field.")
    assert stored(app) == {}
    assert [(r["doc_id"], r["replicated"]) for r in held(app)] == [
        ("v-put", False), ("v-post", False), ("v-repl", True), ("p-1", False)]
    # Other databases are plain CouchDB stores: nothing is checked there.
    assert records.put("/couch/wasl").status_code == 201
    assert records.put("/couch/wasl/x", json={"type": "nonsense"}).status_code == 201
    assert len(held(app)) == 4


def test_multipart_and_attachment_writes_are_checked(app: Flask, records: FlaskClient) -> None:
    doc = {**visit(systolic=5), "_attachments": {"p.png": {"content_type": "image/png", "length": len(PNG),
                                                           "follows": True}}}
    body = (b'--B\r\nContent-Type: application/json\r\n\r\n' + json.dumps(doc).encode()
            + b"\r\n--B\r\n\r\n" + PNG + b"\r\n--B--")
    resp = records.put(f"{RECORDS}/v-mp", data=body, content_type='multipart/related; boundary="B"')
    assert_couch_error(resp, 403, "forbidden", BP_REASON)
    [row] = held(app)
    att = json.loads(row["body"])["_attachments"]["p.png"]
    assert "data" not in att and "follows" not in att and att["content_type"] == "image/png"
    with app.app_context():
        from sync.store import load_blob
        assert load_blob(att["sha256"]) == PNG  # the bytes wait in the attachment store

    ok = records.put(f"{RECORDS}/v-1", json=visit()).get_json()
    resp = records.put(f"{RECORDS}/v-1/notes.txt?rev={ok['rev']}", data=b"hi", content_type="text/plain")
    assert_couch_error(resp, 403, "forbidden", "Invalid fields: _attachments.notes.txt.content_type: "
                       "Must be one of: image/jpeg, image/png, image/webp.")
    assert held(app)[1]["parent_rev"] == ok["rev"] and stored(app)["v-1"] == [ok["rev"]]
    photo = records.put(f"{RECORDS}/v-1/p.png?rev={ok['rev']}", data=PNG, content_type="image/png")
    assert photo.status_code == 201
    gone = records.delete(f"{RECORDS}/v-1?rev={photo.get_json()['rev']}")  # a deletion is never checked
    assert gone.status_code == 200 and records.get(f"{RECORDS}/v-1").status_code == 404


def test_a_device_write_names_the_user_and_the_device(app: Flask, records: FlaskClient) -> None:
    with app.app_context():
        db.session.add(User(name="amina", password_hash=hash_password("pw"), roles=["chw"]))
        db.session.commit()
        code = create_code("amina")
    device = app.test_client().post("/api/v1/devices/enrol", json={"code": code, "name": "tablet"}).get_json()
    resp = app.test_client().put(f"{RECORDS}/v-dev", json=visit(systolic=1),
                                 headers={"Authorization": f"Bearer {device['token']}"})
    assert resp.status_code == 403
    [row] = held(app)
    assert (row["actor"], row["device_id"]) == ("amina", device["device_id"])
    assert [(e["actor"], e["device_id"]) for e in audit(app, "quarantine.hold")] == [("amina", device["device_id"])]


# -------------------------------------------------------------------------------------- release, discard


def hold_replicated(records: FlaskClient, doc_id: str = "v-bad", **extra: Any) -> dict[str, Any]:
    doc = {**visit(doc_id, systolic=20, **extra), "_rev": rev(2, "b"),
           "_revisions": {"start": 2, "ids": ["b" * 32, "c" * 32]}}
    assert records.post(f"{RECORDS}/_bulk_docs", json={"docs": [doc], "new_edits": False}).get_json()[0][
        "error"] == "forbidden"
    return doc


def test_release_stores_the_original_and_its_correction(app: Flask, records: FlaskClient) -> None:
    sent = hold_replicated(records)
    with app.app_context():
        [item] = list_held("records")
        winner = release(item.id, visit(systolic=120, notes="re-measured"), "supervisor")
    assert winner.startswith("3-")
    doc = records.get(f"{RECORDS}/v-bad?revs=true&conflicts=true").get_json()
    assert doc["_rev"] == winner and doc["notes"] == "re-measured" and doc["observations"]["bp_systolic"] == 120
    assert doc["_revisions"]["ids"][1:] == ["b" * 32, "c" * 32] and "_conflicts" not in doc
    original = records.get(f"{RECORDS}/v-bad?rev={rev(2, 'b')}").get_json()
    assert original["observations"] == sent["observations"]  # the tablet's revision, as it sent it
    assert stored(app) == {"v-bad": sorted([rev(2, "b"), winner])}
    [row] = held(app)
    assert (row["state"], row["decided_by"], row["released_rev"]) == ("released", "supervisor", winner)
    assert [(e["actor"], e["doc_id"], e["released_rev"]) for e in audit(app, "quarantine.release")] == \
        [("supervisor", "v-bad", winner)]


def test_release_of_an_edit_whose_parent_moved_on_is_a_conflict_branch(app: Flask, records: FlaskClient) -> None:
    first = records.put(f"{RECORDS}/p-1", json=visit()).get_json()["rev"]
    assert records.put(f"{RECORDS}/p-1", json={**visit(systolic=1), "_rev": first}).status_code == 403
    second = records.put(f"{RECORDS}/p-1", json={**visit(systolic=130), "_rev": first}).get_json()["rev"]
    with app.app_context():
        [item] = list_held("records")
        assert item.parent_rev == first
        release(item.id, visit(systolic=125), "supervisor")
        released = get_item(item.id).released_rev
    assert released.startswith("2-") and released != second
    branch = records.get(f"{RECORDS}/p-1?rev={released}&revs=true").get_json()
    assert branch["_revisions"]["ids"][1] == first.split("-")[1] and branch["observations"]["bp_systolic"] == 125
    leaves = {d["ok"]["_rev"] for d in records.get(f"{RECORDS}/p-1?open_revs=all",
                                                   headers={"Accept": "application/json"}).get_json()}
    assert leaves == {second, released}  # both branches stay for the conflict resolver


def test_release_of_a_refused_new_document_creates_it(app: Flask, records: FlaskClient) -> None:
    assert records.post(RECORDS, json=visit("v-new", systolic=1)).status_code == 403
    with app.app_context():
        [item] = list_held("records")
        assert (item.parent_rev, item.replicated) == (None, False)
        winner = release(item.id, visit(systolic=110), "supervisor")
    doc = records.get(f"{RECORDS}/v-new?revs=true").get_json()
    assert winner.startswith("1-") and doc["_rev"] == winner and doc["observations"]["bp_systolic"] == 110
    assert stored(app) == {"v-new": [winner]}


def test_release_keeps_the_photo_bytes_and_their_revpos(app: Flask, records: FlaskClient) -> None:
    photo = {"content_type": "image/png", "data": base64.b64encode(PNG).decode(), "revpos": 1}
    hold_replicated(records, _attachments={"p.png": photo})
    with app.app_context():
        [item] = list_held("records")
        corrected = {k: v for k, v in item.document.items() if k not in ("_rev", "_revisions")}
        assert "data" not in corrected["_attachments"]["p.png"]
        corrected["observations"] = {"bp_systolic": 118, "bp_diastolic": 76}
        winner = release(item.id, corrected, "supervisor")
    doc = records.get(f"{RECORDS}/v-bad").get_json()
    assert doc["_rev"] == winner and doc["_attachments"]["p.png"]["revpos"] == 1
    assert records.get(f"{RECORDS}/v-bad/p.png").data == PNG


def test_a_still_invalid_correction_changes_nothing(app: Flask, records: FlaskClient) -> None:
    hold_replicated(records)
    seq = update_seq(app)
    with app.app_context():
        [item] = list_held("records")
        with pytest.raises(BadRequest) as refused:
            release(item.id, visit(systolic=30), "supervisor")
        assert refused.value.reason == f"The corrected document is still invalid. {BP_REASON}"
        with pytest.raises(BadRequest, match="must keep the id"):
            release(item.id, visit("other-id"), "supervisor")
    assert stored(app) == {} and update_seq(app) == seq
    assert held(app)[0]["state"] == "held" and audit(app, "quarantine.release") == []


def test_discard_closes_the_item_and_is_audited(app: Flask, records: FlaskClient) -> None:
    hold_replicated(records)
    with app.app_context():
        [item] = list_held("records")
        with pytest.raises(BadRequest):
            discard(item.id, "supervisor", "  ")
        discard(item.id, "supervisor", "duplicate of visit v-7")
        assert list_held("records") == [] and [i.id for i in list_held("records", state="discarded")] == [item.id]
        with pytest.raises(Conflict, match="no longer held|already discarded"):
            discard(item.id, "supervisor", "again")
        with pytest.raises(Conflict, match="already discarded"):
            release(item.id, visit(), "supervisor")
        with pytest.raises(NotFound):
            discard(item.id + 100, "supervisor", "no such item")
    [row] = held(app)
    assert (row["state"], row["decided_by"], row["decision_note"]) == ("discarded", "supervisor",
                                                                       "duplicate of visit v-7")
    assert stored(app) == {}
    assert [(e["actor"], e["doc_id"], e["note"]) for e in audit(app, "quarantine.discard")] == \
        [("supervisor", "v-bad", "duplicate of visit v-7")]


# ------------------------------------------------------------------------------------------------ CLI


@pytest.fixture
def cli(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run ``wasl quarantine ...`` against the test app; returns the click result."""
    import wasl_cli
    monkeypatch.setattr(wasl_cli, "_app", lambda: app)
    with app.app_context():
        db.session.add(User(name="supervisor", password_hash=hash_password("pw"), roles=["supervisor"]))
        db.session.commit()

    def run(*args: str) -> Any:
        from click.testing import CliRunner
        return CliRunner().invoke(wasl_cli.main, ["quarantine", *args])
    return run


def test_cli_lists_shows_and_releases(app: Flask, records: FlaskClient, cli: Any, tmp_path: Any) -> None:
    hold_replicated(records)
    listed = cli("list")
    assert listed.exit_code == 0, listed.output
    [line] = listed.output.splitlines()
    item_id = int(line.split()[0])
    assert "held" in line and "v-bad" in line and rev(2, "b") in line and BP_REASON in line

    shown = cli("show", str(item_id))
    assert shown.exit_code == 0 and f"reason: {BP_REASON}" in shown.output and "sent by: admin" in shown.output
    body = cli("show", str(item_id), "--body")
    doc = json.loads(body.output)
    assert doc["_id"] == "v-bad" and doc["observations"]["bp_systolic"] == 20

    doc["observations"]["bp_systolic"] = 121
    path = tmp_path / "corrected.json"
    path.write_text(json.dumps(doc))
    done = cli("release", str(item_id), "--file", str(path), "--by", "supervisor")
    assert done.exit_code == 0, done.output
    winner = records.get(f"{RECORDS}/v-bad").get_json()
    assert done.output.strip() == f"released quarantined revision {item_id}: v-bad is now at rev {winner['_rev']}"
    assert winner["observations"]["bp_systolic"] == 121
    assert cli("list").output.strip() == "no quarantined revisions in state held"
    assert "released" in cli("list", "--state", "all").output


def test_cli_discards_with_a_note(app: Flask, records: FlaskClient, cli: Any) -> None:
    hold_replicated(records)
    item_id = held(app)[0]["id"]
    done = cli("discard", str(item_id), "--note", "entered twice", "--by", "supervisor")
    assert done.exit_code == 0 and done.output.strip() == f"discarded quarantined revision {item_id}"
    assert held(app)[0]["state"] == "discarded"
    assert "note: entered twice" in cli("show", str(item_id)).output


@pytest.mark.parametrize(("args", "message"), [
    (["show", "999"], "Error: No quarantined revision 999"),
    (["discard", "ITEM", "--note", "x", "--by", "nobody"], "Error: No user named 'nobody' (--by names the account"),
    (["release", "ITEM", "--file", "FILE", "--by", "supervisor"], "Error: The corrected document is still invalid."),
    (["release", "ITEM", "--file", "NOT_JSON", "--by", "supervisor"], "is not valid JSON"),
    (["release", "ITEM", "--file", "MISSING", "--by", "supervisor"], "Error: cannot read"),
    (["list", "--db", "nope"], None),
])
def test_cli_errors_are_one_plain_line(app: Flask, records: FlaskClient, cli: Any, tmp_path: Any,
                                       args: list[str], message: str | None) -> None:
    hold_replicated(records)
    item_id = str(held(app)[0]["id"])
    (tmp_path / "bad.json").write_text(json.dumps(visit("v-bad", systolic=10)))
    (tmp_path / "broken.json").write_text("{not json")
    paths = {"FILE": str(tmp_path / "bad.json"), "NOT_JSON": str(tmp_path / "broken.json"),
             "MISSING": str(tmp_path / "absent.json"), "ITEM": item_id}
    result = cli(*[paths.get(a, a) for a in args])
    if message is None:  # an empty listing is not an error
        assert result.exit_code == 0 and result.output.strip() == "no quarantined revisions in state held"
        return
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert held(app)[0]["state"] == "held" and stored(app) == {}  # nothing changed
