"""The audit of document reads and writes in the records database (docs/access.md, "Audit of documents").

A CHW's tablet (device token) and the admin read and write through every CouchDB endpoint;
each request leaves exactly one ``doc.read`` entry per document whose body left, written
with one insert, and each accepted revision one ``doc.write`` entry in the write's own
transaction. A read whose entries cannot be written returns no data.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, text

from models import db
from models.audit import AuditEntry
from models.health import Patient, Referral, Visit
from sync import audit
from sync.devices import create_code, enrol
from sync.store import create_database
from tests.pouch import require_peer
from tests.village import chw_in_village, patient, visit

DB = "records"
URL = f"/couch/{DB}"
PHOTO = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(32)).decode()


@pytest.fixture
def tablet(app: Flask, client: FlaskClient) -> dict[str, Any]:
    """The CHW amina with an enrolled tablet; a patient and two visits of her village, written by the admin."""
    with app.app_context():
        chw_in_village()
        create_database(DB)
        device, token = enrol(create_code("amina"), "tablet-1")
        db.session.commit()
    docs = [patient("patient-9"), visit("visit-1"), visit("visit-2", _attachments={
        "photo.png": {"content_type": "image/png", "data": PHOTO}})]
    docs[0]["updated_by"] = "admin"
    written = client.post(f"{URL}/_bulk_docs", json={"docs": docs}).get_json()
    assert all(item.get("ok") for item in written), written
    with app.app_context():
        db.session.execute(db.delete(AuditEntry))
        db.session.commit()
    return {"headers": {"Authorization": f"Bearer {token}"}, "device_id": device.device_id,
            "revs": {item["id"]: item["rev"] for item in written}}


def reads(app: Flask) -> list[tuple[str, str, str | None, str | None, dict[str, Any]]]:
    """Every ``doc.read`` entry, oldest first: (actor, doc id, device, db, detail)."""
    with app.app_context():
        rows = db.session.scalars(db.select(AuditEntry).where(AuditEntry.action == "doc.read")
                                  .order_by(AuditEntry.id)).all()
        return [(r.actor, r.doc_id, r.device_id, r.db_name, r.detail) for r in rows]


def clear(app: Flask) -> None:
    with app.app_context():
        db.session.execute(db.delete(AuditEntry))
        db.session.commit()


@pytest.fixture
def inserts(app: Flask) -> Iterator[list[str]]:
    """The INSERT statements into audit_entry sent to the driver meanwhile (an executemany counts once)."""
    seen: list[str] = []
    with app.app_context():
        engine = db.engine

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.startswith("INSERT INTO audit_entry"):
            seen.append(statement)
    event.listen(engine, "before_cursor_execute", count)
    yield seen
    event.remove(engine, "before_cursor_execute", count)


def test_each_endpoint_audits_one_entry_per_document_read(app: Flask, client: FlaskClient,
                                                          tablet: dict[str, Any], inserts: list[str]) -> None:
    c, h, revs = app.test_client(), tablet["headers"], tablet["revs"]
    ids = ["patient-9", "visit-1", "visit-2"]
    probes: list[tuple[str, Any, list[tuple[str, str | None]], dict[str, Any]]] = [
        ("changes", lambda: c.get(f"{URL}/_changes?include_docs=true", headers=h),
         [(i, revs[i]) for i in ids], {}),
        ("changes", lambda: c.get(f"{URL}/_changes?include_docs=true&feed=longpoll", headers=h),
         [(i, revs[i]) for i in ids], {}),
        ("changes", lambda: c.get(f"{URL}/_changes?include_docs=true&feed=continuous&timeout=10", headers=h),
         [(i, revs[i]) for i in ids], {}),
        ("bulk_get", lambda: c.post(f"{URL}/_bulk_get", headers=h, json={"docs": [
            {"id": "visit-1"}, {"id": "visit-2", "rev": revs["visit-2"]}, {"id": "nope"}]}),
         [("visit-1", revs["visit-1"]), ("visit-2", revs["visit-2"])], {}),
        ("get", lambda: c.get(f"{URL}/visit-1", headers=h), [("visit-1", revs["visit-1"])], {}),
        ("get", lambda: c.get(f"{URL}/visit-1?revs=true&rev={revs['visit-1']}", headers=h),
         [("visit-1", revs["visit-1"])], {}),
        ("get", lambda: c.get(f"{URL}/visit-2?open_revs=all", headers=h), [("visit-2", revs["visit-2"])], {}),
        ("get", lambda: c.get(f"{URL}/visit-2?open_revs=all&attachments=true", headers={
            **h, "Accept": "multipart/mixed"}), [("visit-2", revs["visit-2"])], {}),
        ("all_docs", lambda: c.get(f"{URL}/_all_docs?include_docs=true", headers=h),
         [(i, revs[i]) for i in ids], {}),
        ("attachment", lambda: c.get(f"{URL}/visit-2/photo.png", headers=h), [("visit-2", None)],
         {"attachment": "photo.png"}),
    ]
    for via, probe, expected, extra in probes:
        clear(app)
        inserts.clear()
        resp = probe()
        assert resp.status_code == 200, (via, resp.get_data())
        want = [("amina", doc_id, tablet["device_id"], DB, {"via": via, **({"rev": rev} if rev else {}), **extra})
                for doc_id, rev in expected]
        assert sorted(reads(app), key=lambda r: r[1]) == want, via
        assert len(inserts) == 1, (via, inserts)  # one set-wise insert per request


def test_an_admin_view_is_audited_per_document_its_rows_came_from(app: Flask, client: FlaskClient,
                                                                  tablet: dict[str, Any]) -> None:
    require_peer()  # views run in Node
    ddoc = {"views": {"by_type": {"map": "function (doc) { emit(doc.type, doc.patient_id || null); }",
                                  "reduce": "_count"}}}
    assert client.put(f"{URL}/_design/audit", json=ddoc).status_code == 201
    revs, detail = tablet["revs"], {"via": "view", "view": "audit/by_type"}
    clear(app)
    rows = client.get(f"{URL}/_design/audit/_view/by_type?reduce=false").get_json()["rows"]
    assert {r["id"] for r in rows} == set(revs)  # keys and values read out of the documents
    assert sorted(reads(app), key=lambda r: r[1]) == [("admin", i, None, DB, detail) for i in sorted(revs)]
    clear(app)
    assert client.get(f"{URL}/_design/audit/_view/by_type?reduce=false&include_docs=true&key=%22visit%22"
                      ).status_code == 200
    assert sorted(reads(app), key=lambda r: r[1]) == [
        ("admin", i, None, DB, {**detail, "rev": revs[i]}) for i in ("visit-1", "visit-2")]
    clear(app)
    assert client.get(f"{URL}/_design/audit/_view/by_type").get_json()["rows"] == [{"key": None, "value": 3}]
    assert reads(app) == []  # a reduced row names no document


def test_reads_that_return_no_body_are_not_audited(app: Flask, client: FlaskClient, tablet: dict[str, Any]) -> None:
    c, h = app.test_client(), tablet["headers"]
    assert c.get(f"{URL}/_changes", headers=h).status_code == 200  # ids and revs only
    assert c.get(f"{URL}/_all_docs", headers=h).status_code == 200
    assert c.head(f"{URL}/visit-1", headers=h).status_code == 200
    assert c.post(f"{URL}/_revs_diff", headers=h, json={"visit-1": ["1-abc"]}).status_code == 200
    assert c.get(f"{URL}/nope", headers=h).status_code == 404
    assert client.put("/couch/other").status_code == 201
    assert client.put("/couch/other/d1", json={"a": 1}).status_code == 201
    assert client.get("/couch/other/d1").status_code == 200  # another database: not audited
    assert reads(app) == []


def test_an_admin_read_is_audited_without_a_device(app: Flask, client: FlaskClient, tablet: dict[str, Any]) -> None:
    assert client.get(f"{URL}/patient-9").status_code == 200
    assert reads(app) == [("admin", "patient-9", None, DB, {"via": "get", "rev": tablet["revs"]["patient-9"]})]


def test_a_read_whose_audit_cannot_be_written_returns_no_data(app: Flask, tablet: dict[str, Any]) -> None:
    with app.app_context():
        db.session.execute(text("ALTER TABLE audit_entry RENAME TO audit_entry_away"))
        db.session.commit()
    try:
        c, h = app.test_client(), tablet["headers"]
        for resp in (c.get(f"{URL}/patient-9", headers=h), c.get(f"{URL}/_changes?include_docs=true", headers=h),
                     c.post(f"{URL}/_bulk_get", headers=h, json={"docs": [{"id": "patient-9"}]})):
            assert resp.status_code == 500
            assert b"Halima" not in resp.get_data() and b"patient-9" not in resp.get_data()
    finally:
        with app.app_context():
            db.session.rollback()
            db.session.execute(text("ALTER TABLE audit_entry_away RENAME TO audit_entry"))
            db.session.commit()


def writes(app: Flask) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    with app.app_context():
        rows = db.session.scalars(db.select(AuditEntry).where(AuditEntry.action == "doc.write")
                                  .order_by(AuditEntry.id)).all()
        return [(r.actor, r.doc_id, r.device_id, r.detail) for r in rows]


def test_every_accepted_revision_is_audited_in_its_write(app: Flask, client: FlaskClient, tablet: dict[str, Any],
                                                         inserts: list[str]) -> None:
    c, h, dev = app.test_client(), tablet["headers"], tablet["device_id"]
    pushed = [{**visit("visit-3"), "_rev": "1-aaa", "_revisions": {"start": 1, "ids": ["aaa"]}},
              {**visit("visit-4", chw="bashir"), "_rev": "1-bbb", "_revisions": {"start": 1, "ids": ["bbb"]}},
              {**visit("visit-5", kind="nonsense"), "_rev": "1-ccc", "_revisions": {"start": 1, "ids": ["ccc"]}},
              {"_id": "visit-1", "_rev": "2-ddd", "_deleted": True,
               "_revisions": {"start": 2, "ids": ["ddd", tablet["revs"]["visit-1"].split("-")[1]]}}]
    resp = c.post(f"{URL}/_bulk_docs", headers=h, json={"docs": pushed, "new_edits": False})
    assert resp.status_code == 201
    assert {item["id"] for item in resp.get_json()} == {"visit-4", "visit-5"}  # access, schema
    assert writes(app) == [("amina", "visit-3", dev, {"rev": "1-aaa", "via": "replication"}),
                           ("amina", "visit-1", dev, {"rev": "2-ddd", "via": "replication", "deleted": True})]
    inserts.clear()
    more = [{**visit(f"visit-{n}"), "_rev": "1-eee", "_revisions": {"start": 1, "ids": ["eee"]}} for n in (6, 7, 8)]
    assert c.post(f"{URL}/_bulk_docs", headers=h, json={"docs": more, "new_edits": False}).get_json() == []
    assert len(inserts) == 1 and len(writes(app)) == 5  # three entries, one statement
    assert c.post(f"{URL}/_bulk_docs", headers=h, json={"docs": pushed[:1], "new_edits": False}).status_code == 201
    assert len(writes(app)) == 5  # a revision already held is not written again
    edited = {**patient("patient-9"), "_rev": tablet["revs"]["patient-9"], "updated_by": "admin"}
    put = client.put(f"{URL}/patient-9", json=edited)
    assert put.status_code == 201
    assert writes(app)[-1] == ("admin", "patient-9", None, {"rev": put.get_json()["rev"], "via": "replication"})


def test_a_write_that_fails_leaves_no_entry(app: Flask, tablet: dict[str, Any]) -> None:
    """The entries are inserted with the revisions: a write rolled back leaves neither."""
    from sync.access_gate import AccessGate as Gate
    from sync.scope import Scope
    from sync.writes import bulk_docs

    class Boom(Exception):
        pass

    class Failing:
        def refuse(self, db_name: str, doc: Any, **kw: Any) -> None:
            if doc["_id"] == "visit-7":
                raise Boom()
            return None

    gate = Gate("admin", ("admin",), Scope(True, frozenset()), None, Failing())  # type: ignore[arg-type]
    with app.app_context():
        with pytest.raises(Boom):
            bulk_docs(DB, [visit("visit-6"), visit("visit-7")], gate=gate)
        bulk_docs(DB, [visit("visit-8")], gate=gate)
    assert [(w[1], w[3]["via"]) for w in writes(app)] == [("visit-8", "replication")]


def test_patient_filter_finds_reads_of_the_patient_and_their_records(app: Flask, client: FlaskClient,
                                                                     tablet: dict[str, Any]) -> None:
    with app.app_context():
        db.session.add_all([Patient(db_name=DB, doc_id="patient-9", rev="1-a"),
                            Patient(db_name=DB, doc_id="patient-old", rev="1-a", merged_into="patient-9"),
                            Visit(db_name=DB, doc_id="visit-1", rev="1-a", patient_id="patient-9",
                                  patient_doc_id="patient-9"),
                            Visit(db_name=DB, doc_id="visit-2", rev="1-a", patient_id="patient-2",
                                  patient_doc_id="patient-2"),
                            Referral(db_name=DB, doc_id="ref-1", rev="1-a", patient_id="patient-9",
                                     patient_doc_id="patient-old")])
        audit.record_reads("sara", DB, ["ref-1", "patient-old", "visit-2"], via="page")
        audit.record_reads("sara", "other", ["visit-1"], via="api")  # same id, another database
    h = tablet["headers"]
    assert app.test_client().get(f"{URL}/visit-1", headers=h).status_code == 200
    assert app.test_client().get(f"{URL}/visit-2", headers=h).status_code == 200
    found = client.get("/api/v1/audit?patient=patient-9&action=doc.read").get_json()["entries"]
    assert [(e["actor"], e["db"], e["doc_id"]) for e in found] == [
        ("amina", DB, "visit-1"), ("sara", DB, "patient-old"), ("sara", DB, "ref-1")]
    none = client.get("/api/v1/audit?patient=patient-404").get_json()["entries"]
    assert none == []


def test_cli_filters_by_patient(app: Flask, tablet: dict[str, Any], tmp_path: Any,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from wasl_cli import main
    with app.app_context():
        db.session.add(Visit(db_name=DB, doc_id="visit-2", rev="1-a", patient_id="patient-7"))
        db.session.commit()
        audit.record_reads("sara", DB, ["visit-1", "visit-2"], via="page")
    monkeypatch.setenv("WASL_DATABASE_URL", app.config["SQLALCHEMY_DATABASE_URI"])
    monkeypatch.setenv("WASL_INSTANCE", str(tmp_path))
    result = CliRunner().invoke(main, ["audit", "--patient", "patient-7", "--json"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["doc_id"] for line in result.output.splitlines()] == ["visit-2"]
