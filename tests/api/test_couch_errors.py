"""Every refusal has CouchDB's error shape and strings, and changes nothing."""
from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.api.helpers import assert_couch_error


@pytest.fixture
def db(client: FlaskClient) -> str:
    assert client.put("/couch/db").status_code == 201
    assert client.put("/couch/db/doc", json={"v": 1}).status_code == 201
    return "db"


def snapshot(client: FlaskClient) -> Any:
    """Everything a client can see of the database, to compare before and after."""
    return (client.get("/couch/db").get_json(),
            client.get("/couch/db/_all_docs?include_docs=true&conflicts=true").get_json(),
            client.get("/couch/db/_changes?style=all_docs").get_json())


BAD_REQUESTS = [
    # (method, path, kwargs, status, error)
    ("post", "/couch/db/_bulk_docs", {"data": "{not json", "content_type": "application/json"}, 400, "bad_request"),
    ("post", "/couch/db/_bulk_docs", {"data": '{"docs": [NaN]}', "content_type": "application/json"},
     400, "bad_request"),
    ("post", "/couch/db/_bulk_docs", {"data": "[" * 100000 + "]" * 100000, "content_type": "application/json"},
     400, "bad_request"),
    ("post", "/couch/db/_bulk_docs", {"data": '{"docs": []}', "content_type": "text/plain"}, 415, "bad_content_type"),
    ("post", "/couch/db/_bulk_docs", {"json": {"docs": {}}}, 400, "bad_request"),
    ("post", "/couch/db/_bulk_docs", {"json": {"docs": [], "new_edits": "no"}}, 400, "bad_request"),
    ("post", "/couch/db/_revs_diff", {"json": {"doc": "1-a"}}, 400, "bad_request"),
    ("post", "/couch/db/_revs_diff", {"json": ["doc"]}, 400, "bad_request"),
    ("post", "/couch/db/_bulk_get", {"json": {"docs": "x"}}, 400, "bad_request"),
    ("put", "/couch/db/doc", {"json": {"_rev": "x-1", "v": 2}}, 400, "bad_request"),
    ("put", "/couch/db/doc", {"json": {"_rev": "1-abc", "v": 2}}, 409, "conflict"),
    ("put", "/couch/db/doc", {"json": {"v": 2}}, 409, "conflict"),
    ("put", "/couch/db/doc2", {"json": {"_bad": 1}}, 400, "doc_validation"),
    ("put", "/couch/db/_underscore", {"json": {"v": 1}}, 400, "bad_request"),
    ("put", "/couch/db/doc2", {"json": [1, 2]}, 400, "bad_request"),
    ("put", "/couch/db/doc2", {"json": {"_attachments": {"a": {"data": "!!!"}}}}, 400, "bad_request"),
    ("put", "/couch/db/doc2", {"json": {"_attachments": {"a": {"stub": True}}}}, 412, "missing_stub"),
    ("get", "/couch/db/doc?rev=bogus", {}, 400, "bad_request"),
    ("get", "/couch/db/doc?open_revs=[1]", {}, 400, "bad_request"),
    ("get", "/couch/db/nothere", {}, 404, "not_found"),
    ("get", "/couch/db/doc?rev=9-abc", {}, 404, "not_found"),
    ("get", "/couch/db/doc/att.txt", {}, 404, "not_found"),
    ("get", "/couch/nodb", {}, 404, "not_found"),
    ("get", "/couch/nodb/_changes", {}, 404, "not_found"),
    ("get", "/couch/db/_changes?since=abc", {}, 400, "bad_request"),
    ("get", "/couch/db/_changes?limit=-1", {}, 400, "bad_request"),
    ("get", "/couch/db/_changes?feed=sideways", {}, 400, "bad_request"),
    ("get", "/couch/db/_changes?filter=app/f", {}, 404, "not_found"),
    ("put", "/couch/Bad_Name", {}, 400, "illegal_database_name"),
    ("put", "/couch/db", {}, 412, "file_exists"),
    ("patch", "/couch/db", {}, 405, "method_not_allowed"),
    ("post", "/couch/db/_revs_limit", {}, 405, "method_not_allowed"),
    ("put", "/couch/db/_revs_limit", {"data": "0"}, 400, "bad_request"),
    ("get", "/couch/db/_nosuch", {}, 404, "not_found"),
    ("get", "/couch/db/_local/x/att", {}, 400, "bad_request"),
    ("put", "/couch/db/_local/x", {"json": {"_rev": "0-7"}}, 409, "conflict"),
    ("delete", "/couch/db/doc", {}, 409, "conflict"),
]


@pytest.mark.parametrize("method,path,kwargs,status,error", BAD_REQUESTS)
def test_bad_request_is_refused_and_changes_nothing(client: FlaskClient, db: str, method: str, path: str,
                                                    kwargs: dict[str, Any], status: int, error: str) -> None:
    before = snapshot(client)
    resp = getattr(client, method)(path, **kwargs)
    assert_couch_error(resp, status, error)
    assert snapshot(client) == before


def test_body_over_the_limit_is_413(app: Any, client: FlaskClient, db: str) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 1000
    before = snapshot(client)
    resp = client.post("/couch/db/_bulk_docs", json={"docs": [{"_id": "big", "x": "y" * 5000}]})
    assert_couch_error(resp, 413, "too_large")
    app.config["MAX_CONTENT_LENGTH"] = None
    assert snapshot(client) == before


def test_unauthenticated_requests_are_refused(anon: FlaskClient, client: FlaskClient, db: str) -> None:
    assert anon.get("/couch/").status_code == 200  # the welcome is public, as in CouchDB
    assert_couch_error(anon.get("/couch/db"), 401, "unauthorized")
    assert_couch_error(anon.put("/couch/other"), 401, "unauthorized")
    wrong = {"Authorization": "Basic YWRtaW46d3Jvbmc="}  # admin:wrong
    assert_couch_error(anon.get("/couch/db", headers=wrong), 401, "unauthorized", "Name or password is incorrect.")
    assert client.get("/couch/other").status_code == 404


def test_unknown_special_member_refuses_the_whole_request(client: FlaskClient, db: str) -> None:
    before = snapshot(client)
    resp = client.post("/couch/db/_bulk_docs", json={"docs": [{"_id": "fine"}, {"_zing": 4}]})
    assert_couch_error(resp, 400, "doc_validation", "Bad special document member: _zing")
    assert snapshot(client) == before


def test_replication_state_fields_are_kept(client: FlaskClient, db: str) -> None:
    rev = client.put("/couch/db/rep", json={"_replication_id": "r", "_replication_state": "triggered"}).get_json()
    expected = {"_id": "rep", "_rev": rev["rev"], "_replication_id": "r", "_replication_state": "triggered"}
    assert client.get("/couch/db/rep").get_json() == expected


def test_unexpected_error_hides_its_text(app: Any, client: FlaskClient, db: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from sync import reads

    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("patient Amina Yusuf, HIV positive")

    monkeypatch.setattr(reads, "get_doc", boom)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    resp = client.get("/couch/db/doc")
    assert_couch_error(resp, 500, "unknown_error", "Database encountered an unknown error")
    assert b"Amina" not in resp.get_data()


def test_bulk_docs_per_document_errors_leave_the_rest(client: FlaskClient, db: str) -> None:
    resp = client.post("/couch/db/_bulk_docs", json={"docs": [
        {"_id": "ok1", "v": 1}, {"_id": "doc", "v": 2}, "not an object", {"_id": "ok2", "v": 3}]})
    assert resp.status_code == 201
    items = resp.get_json()
    assert [i.get("error") for i in items] == [None, "conflict", "bad_request", None]
    assert items[1] == {"id": "doc", "error": "conflict", "reason": "Document update conflict."}
    ids = [r["id"] for r in client.get("/couch/db/_all_docs").get_json()["rows"]]
    assert ids == ["doc", "ok1", "ok2"]
