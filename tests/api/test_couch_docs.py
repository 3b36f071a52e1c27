"""Documents, revision trees and attachments over the CouchDB endpoints (test client)."""
from __future__ import annotations

import base64
import email
import hashlib
import json
from typing import Any

import pytest
from flask.testing import FlaskClient

HELLO_DIGEST = "md5-XUFAKrxLKna5cZ2REBfFkg=="  # PouchDB's digest of b"hello"


@pytest.fixture
def db(client: FlaskClient) -> str:
    assert client.put("/couch/db/").status_code == 201
    return "/couch/db"


def push(client: FlaskClient, docs: list[dict[str, Any]]) -> Any:
    resp = client.post("/couch/db/_bulk_docs", json={"docs": docs, "new_edits": False})
    assert resp.status_code == 201
    return resp.get_json()


def branch(doc_id: str, start: int, ids: list[str], **body: Any) -> dict[str, Any]:
    return {"_id": doc_id, "_rev": f"{start}-{ids[0]}", "_revisions": {"start": start, "ids": ids}, **body}


def test_replicated_writes_answer_only_errors_and_are_idempotent(client: FlaskClient, db: str) -> None:
    docs = [branch("a", 2, ["bb", "aa"], v=1), branch("b", 1, ["cc"], v=2)]
    assert push(client, docs) == []
    seq_before = client.get(db).get_json()["update_seq"]
    assert push(client, docs) == []  # the same batch again changes nothing
    assert client.get(db).get_json()["update_seq"] == seq_before == 2
    got = client.get(f"{db}/a?revs=true&revs_info=true").get_json()
    assert got == {"_id": "a", "_rev": "2-bb", "v": 1, "_revisions": {"start": 2, "ids": ["bb", "aa"]},
                   "_revs_info": [{"rev": "2-bb", "status": "available"}, {"rev": "1-aa", "status": "missing"}]}


def test_winner_and_conflicts_follow_couchdb_rules(client: FlaskClient, db: str) -> None:
    push(client, [branch("d", 2, ["aaa", "root"], side="low"), branch("d", 2, ["bbb", "root"], side="high"),
                  branch("d", 3, ["ccc", "ddd", "root"], _deleted=True)])
    # The deleted branch is longest but loses: not deleted beats deleted, then the higher hash.
    got = client.get(f"{db}/d?conflicts=true&deleted_conflicts=true").get_json()
    assert got == {"_id": "d", "_rev": "2-bbb", "side": "high", "_conflicts": ["2-aaa"],
                   "_deleted_conflicts": ["3-ccc"]}
    changes = client.get(f"{db}/_changes?style=all_docs").get_json()["results"]
    assert sorted(c["rev"] for c in changes[0]["changes"]) == ["2-aaa", "2-bbb", "3-ccc"]
    main_only = client.get(f"{db}/_changes").get_json()["results"]
    assert main_only[0]["changes"] == [{"rev": "2-bbb"}] and "deleted" not in main_only[0]


def test_new_edit_on_any_leaf_resolves_a_conflict(client: FlaskClient, db: str) -> None:
    push(client, [branch("d", 2, ["aaa", "root"], v=1), branch("d", 2, ["bbb", "root"], v=2)])
    resp = client.delete(f"{db}/d?rev=2-aaa")
    assert resp.status_code == 200 and resp.get_json()["rev"].startswith("3-")
    got = client.get(f"{db}/d?conflicts=true").get_json()
    assert got["_rev"] == "2-bbb" and "_conflicts" not in got


def test_deterministic_revs_match_couchdb(client: FlaskClient, db: str) -> None:
    assert client.put(f"{db}/x", json={}).get_json()["rev"] == "1-967a00dff5e02add41819138abb3284d"
    assert client.put(f"{db}/y", json={"a": 1}).get_json()["rev"] == "1-23202479633c2b380f79507a776743d5"


def test_delete_then_recreate_extends_the_deleted_leaf(client: FlaskClient, db: str) -> None:
    rev1 = client.put(f"{db}/r", json={"v": 1}).get_json()["rev"]
    deleted = client.delete(f"{db}/r?rev={rev1}").get_json()["rev"]
    gone = client.get(f"{db}/r")
    assert gone.status_code == 404 and gone.get_json() == {"error": "not_found", "reason": "deleted"}
    assert client.get(f"{db}/r?rev={deleted}").get_json() == {"_id": "r", "_rev": deleted, "_deleted": True}
    again = client.put(f"{db}/r", json={"v": 2}).get_json()["rev"]
    assert again.startswith("3-")
    info = client.get(db).get_json()
    assert (info["doc_count"], info["doc_del_count"]) == (1, 0)


def test_revs_limit_stems_old_revisions(client: FlaskClient, db: str) -> None:
    assert client.put(f"{db}/_revs_limit", data="3").get_json() == {"ok": True}
    assert client.get(f"{db}/_revs_limit").get_json() == 3
    rev = client.put(f"{db}/s", json={"n": 0}).get_json()["rev"]
    for n in range(1, 6):
        rev = client.put(f"{db}/s", json={"n": n, "_rev": rev}).get_json()["rev"]
    revisions = client.get(f"{db}/s?revs=true").get_json()["_revisions"]
    assert revisions["start"] == 6 and len(revisions["ids"]) == 3


def test_ancestor_bodies_are_kept_until_compaction(client: FlaskClient, db: str) -> None:
    rev1 = client.put(f"{db}/k", json={"v": 1}).get_json()["rev"]
    rev2 = client.put(f"{db}/k", json={"v": 2, "_rev": rev1}).get_json()["rev"]
    client.put(f"{db}/k", json={"v": 3, "_rev": rev2})
    assert client.get(f"{db}/k?rev={rev1}").get_json()["v"] == 1
    assert client.post(f"{db}/_compact", json={}).status_code == 202
    assert client.get(f"{db}/k?rev={rev1}").status_code == 404
    assert client.get(f"{db}/k").get_json()["v"] == 3


def test_open_revs_json_and_latest(client: FlaskClient, db: str) -> None:
    push(client, [branch("o", 2, ["aaa", "root"], v=1), branch("o", 2, ["bbb", "root"], v=2)])
    all_revs = client.get(f"{db}/o?open_revs=all").get_json()
    assert sorted(e["ok"]["_rev"] for e in all_revs) == ["2-aaa", "2-bbb"]
    listed = client.get(f'{db}/o?open_revs=["2-aaa","9-zzz"]&revs=true').get_json()
    assert listed == [{"ok": {"_id": "o", "_rev": "2-aaa", "v": 1,
                              "_revisions": {"start": 2, "ids": ["aaa", "root"]}}}, {"missing": "9-zzz"}]
    latest = client.get(f'{db}/o?open_revs=["1-root"]&latest=true').get_json()
    assert sorted(e["ok"]["_rev"] for e in latest) == ["2-aaa", "2-bbb"]


def test_open_revs_multipart_mixed_carries_attachments(client: FlaskClient, db: str) -> None:
    hello = {"content_type": "text/plain", "digest": HELLO_DIGEST, "data": base64.b64encode(b"hello").decode()}
    doc = branch("m", 1, ["aaa"], _attachments={"a.txt": hello})
    push(client, [doc, branch("p", 1, ["bbb"], v=1)])
    resp = client.get(f'{db}/m?open_revs=["1-aaa","2-nope"]&revs=true&attachments=true',
                      headers={"Accept": "multipart/mixed"})
    assert resp.mimetype == "multipart/mixed"
    msg = email.message_from_bytes(b"Content-Type: " + resp.headers["Content-Type"].encode() + b"\r\n\r\n"
                                   + resp.get_data())
    found, missing = msg.get_payload()
    assert found.get_content_type() == "multipart/related"
    doc_part, att_part = found.get_payload()
    body = json.loads(doc_part.get_payload())
    assert body["_attachments"]["a.txt"]["follows"] is True and body["_revisions"]["ids"] == ["aaa"]
    assert att_part.get_payload(decode=True) == b"hello"
    assert json.loads(missing.get_payload()) == {"missing": "2-nope"}


def test_multipart_related_put_with_new_edits_false(client: FlaskClient, db: str) -> None:
    boundary = "abc123"
    doc = {"_id": "mp", "_rev": "1-fff", "_revisions": {"start": 1, "ids": ["fff"]}, "k": "v",
           "_attachments": {"f.bin": {"content_type": "application/octet-stream", "length": 3, "follows": True,
                                      "digest": "md5-sender-digest", "revpos": 1}}}
    body = (f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{json.dumps(doc)}\r\n"
            f"--{boundary}\r\nContent-Disposition: attachment; filename=\"f.bin\"\r\n\r\n").encode() \
        + b"\x00\x01\x02" + f"\r\n--{boundary}--".encode()
    resp = client.put(f"{db}/mp?new_edits=false", data=body,
                      content_type=f'multipart/related; boundary="{boundary}"')
    assert resp.status_code == 201, resp.get_data()
    assert resp.get_json() == {"ok": True, "id": "mp", "rev": "1-fff"}
    stub = client.get(f"{db}/mp").get_json()["_attachments"]["f.bin"]
    # The sender's digest is kept: CouchDB's digests cover its gzipped stream.
    assert stub == {"content_type": "application/octet-stream", "digest": "md5-sender-digest", "length": 3,
                    "revpos": 1, "stub": True}
    assert client.get(f"{db}/mp/f.bin").get_data() == b"\x00\x01\x02"


def test_attachment_upload_stub_and_download(client: FlaskClient, db: str) -> None:
    resp = client.put(f"{db}/att/note.txt", data=b"hello", content_type="text/plain")
    assert resp.status_code == 201
    rev = resp.get_json()["rev"]
    doc = client.get(f"{db}/att").get_json()
    assert doc["_attachments"] == {"note.txt": {"content_type": "text/plain", "digest": HELLO_DIGEST,
                                                "length": 5, "revpos": 1, "stub": True}}
    inline = client.get(f"{db}/att?attachments=true").get_json()["_attachments"]["note.txt"]
    assert base64.b64decode(inline["data"]) == b"hello"
    got = client.get(f"{db}/att/note.txt")
    assert got.get_data() == b"hello" and got.mimetype == "text/plain"
    # An edit that keeps the stub keeps the bytes and the revpos.
    rev2 = client.put(f"{db}/att", json={"_rev": rev, "x": 1, "_attachments": doc["_attachments"]}).get_json()["rev"]
    kept = client.get(f"{db}/att").get_json()["_attachments"]["note.txt"]
    assert kept["revpos"] == 1 and client.get(f"{db}/att/note.txt?rev={rev2}").get_data() == b"hello"
    # atts_since: the attachment has not changed since rev, so it travels as a stub.
    since = client.get(f'{db}/att?rev={rev2}&atts_since=["{rev}"]').get_json()["_attachments"]["note.txt"]
    assert since.get("stub") is True
    gone = client.delete(f"{db}/att/note.txt?rev={rev2}")
    assert gone.status_code == 200
    assert "_attachments" not in client.get(f"{db}/att").get_json()


def test_attachment_with_lying_digest_cannot_replace_other_bytes(client: FlaskClient, db: str) -> None:
    client.put(f"{db}/real/a.txt", data=b"hello", content_type="text/plain")
    push(client, [branch("liar", 1, ["aaa"], _attachments={"a.txt": {
        "content_type": "text/plain", "digest": HELLO_DIGEST, "data": base64.b64encode(b"evil").decode()}})])
    assert client.get(f"{db}/real/a.txt").get_data() == b"hello"
    assert client.get(f"{db}/liar/a.txt").get_data() == b"evil"


def test_bulk_get_revs_latest_and_missing(client: FlaskClient, db: str) -> None:
    push(client, [branch("g", 2, ["bbb", "aaa"], v=2)])
    resp = client.post(f"{db}/_bulk_get?revs=true&latest=true", json={"docs": [
        {"id": "g", "rev": "1-aaa"}, {"id": "g"}, {"id": "nope", "rev": "1-x"}]})
    results = resp.get_json()["results"]
    assert results[0]["docs"][0]["ok"]["_rev"] == "2-bbb"  # latest follows 1-aaa to its leaf
    assert results[1]["docs"][0]["ok"]["_revisions"] == {"start": 2, "ids": ["bbb", "aaa"]}
    assert results[2] == {"id": "nope", "docs": [{"error": {"id": "nope", "rev": "1-x", "error": "not_found",
                                                            "reason": "missing"}}]}


def test_revs_diff_reports_missing_and_possible_ancestors(client: FlaskClient, db: str) -> None:
    push(client, [branch("r", 2, ["bbb", "aaa"])])
    diff = client.post(f"{db}/_revs_diff", json={"r": ["2-bbb", "3-ccc"], "new": ["1-x"]}).get_json()
    assert diff == {"r": {"missing": ["3-ccc"], "possible_ancestors": ["2-bbb"]}, "new": {"missing": ["1-x"]}}
    assert client.post(f"{db}/_revs_diff", json={"r": ["2-bbb", "1-aaa"]}).get_json() == {}


def test_ids_with_slashes_and_unicode_survive_the_url(client: FlaskClient, db: str) -> None:
    for doc_id in ("a/b", "x%y", "عائلة/١", "sp ace"):
        path = f"{db}/" + __import__("urllib.parse").parse.quote(doc_id, safe="")
        assert client.put(path, json={"id": doc_id}).status_code == 201
        assert client.get(path).get_json()["_id"] == doc_id
    ids = [r["id"] for r in client.get(f"{db}/_all_docs").get_json()["rows"]]
    assert sorted(ids) == ids and set(ids) == {"a/b", "x%y", "عائلة/١", "sp ace"}
    assert client.put(f"{db}/_design/app", json={"views": {}}).status_code == 201
    assert client.get(f"{db}/_design%2Fapp").get_json()["_id"] == "_design/app"


def test_all_docs_ranges_paging_and_keys(client: FlaskClient, db: str) -> None:
    for doc_id in "abcde":
        client.put(f"{db}/{doc_id}", json={"v": doc_id})
    rev_c = client.get(f"{db}/c").get_json()["_rev"]
    client.delete(f"{db}/c?rev={rev_c}")
    rows = client.get(f'{db}/_all_docs?startkey="b"&endkey="e"&inclusive_end=false').get_json()
    assert [r["id"] for r in rows["rows"]] == ["b", "d"] and rows["total_rows"] == 4 and rows["offset"] == 1
    desc = client.get(f"{db}/_all_docs?descending=true&limit=2&skip=1").get_json()
    assert [r["id"] for r in desc["rows"]] == ["d", "b"]
    keyed = client.post(f"{db}/_all_docs?include_docs=true", json={"keys": ["e", "c", "zz"]}).get_json()["rows"]
    assert keyed[0]["doc"]["v"] == "e"
    assert keyed[1] == {"id": "c", "key": "c", "value": {"rev": keyed[1]["value"]["rev"], "deleted": True},
                        "doc": None}
    assert keyed[2] == {"key": "zz", "error": "not_found"}


def test_local_docs_are_checkpoints_outside_the_feed(client: FlaskClient, db: str) -> None:
    assert client.get(f"{db}/_local/cp").get_json() == {"error": "not_found", "reason": "missing"}
    first = client.put(f"{db}/_local/cp%3D%3D", json={"last_seq": 5, "_revisions": {"start": 9, "ids": []}})
    assert first.status_code == 201 and first.get_json() == {"ok": True, "id": "_local/cp==", "rev": "0-1"}
    assert client.put(f"{db}/_local/cp==", json={"last_seq": 6}).status_code == 409
    assert client.put(f"{db}/_local/cp==", json={"_rev": "0-1", "last_seq": 6}).get_json()["rev"] == "0-2"
    assert client.get(f"{db}/_local/cp%3D%3D").get_json() == {"_id": "_local/cp==", "_rev": "0-2", "last_seq": 6}
    info = client.get(db).get_json()
    assert info["doc_count"] == 0 and info["update_seq"] == 0
    assert client.get(f"{db}/_changes").get_json()["results"] == []
    assert client.delete(f"{db}/_local/cp==?rev=0-2").status_code == 200
    assert client.get(f"{db}/_local/cp==").status_code == 404


def test_sessions_sign_in_with_a_cookie(anon: FlaskClient, client: FlaskClient, db: str) -> None:
    bad = anon.post("/couch/_session", data={"name": "admin", "password": "nope"})
    assert bad.status_code == 401 and bad.get_json()["error"] == "unauthorized"
    ok = anon.post("/couch/_session", data={"name": "admin", "password": "secret"})
    assert ok.get_json() == {"ok": True, "name": "admin", "roles": ["_admin"]}
    assert anon.get(db).status_code == 200  # the cookie now signs requests in
    assert anon.get("/couch/_session").get_json()["userCtx"] == {"name": "admin", "roles": ["_admin"]}
    anon.delete("/couch/_session")
    assert anon.get(db).status_code == 401


def test_server_uuid_is_stable_across_restarts(tmp_path: Any) -> None:
    from tests.conftest import make_app
    url = f"sqlite:///{tmp_path}/same.sqlite"
    first = make_app(url).test_client().get("/couch/").get_json()["uuid"]
    second = make_app(url).test_client().get("/couch/").get_json()["uuid"]
    assert first == second and len(first) == 32


def test_uuids_and_all_dbs(client: FlaskClient, db: str) -> None:
    uuids = client.get("/couch/_uuids?count=3").get_json()["uuids"]
    assert len(set(uuids)) == 3
    assert client.get("/couch/_all_dbs").get_json() == ["db"]
    assert client.put("/couch/couchdb-python%2F1").status_code == 201
    assert client.get("/couch/couchdb-python%2F1/").get_json()["db_name"] == "couchdb-python/1"


def test_attachment_digest_is_md5_of_bytes(client: FlaskClient, db: str) -> None:
    data = bytes(range(256)) * 10
    client.put(f"{db}/bin/b", data=data, content_type="application/octet-stream")
    digest = client.get(f"{db}/bin").get_json()["_attachments"]["b"]["digest"]
    assert digest == "md5-" + base64.b64encode(hashlib.md5(data).digest()).decode()


def test_compaction_keeps_the_common_ancestor_of_a_conflict(client: FlaskClient, db: str) -> None:
    push(client, [branch("c", 1, ["root"], v=0)])
    push(client, [branch("c", 2, ["aaa", "root"], v=1), branch("c", 2, ["bbb", "root"], v=2),
                  branch("c", 3, ["ccc", "aaa", "root"], v=3)])
    client.post(f"{db}/_compact", json={})
    assert client.get(f"{db}/c?rev=1-root").get_json()["v"] == 0  # branch point: kept for the merge
    assert client.get(f"{db}/c?rev=2-aaa").status_code == 404  # a plain ancestor: dropped


def test_get_with_latest_follows_an_old_rev_to_its_leaf(client: FlaskClient, db: str) -> None:
    push(client, [branch("l", 3, ["ccc", "bbb", "aaa"], v=3), branch("l", 2, ["zzz", "aaa"], v=9)])
    assert client.get(f"{db}/l?rev=2-bbb&latest=true").get_json()["_rev"] == "3-ccc"
    assert client.get(f"{db}/l?rev=1-aaa&latest=true").get_json()["_rev"] == "3-ccc"
    assert client.get(f"{db}/l?rev=2-zzz&latest=true").get_json()["v"] == 9


def test_overlong_ids_and_revs_are_refused(client: FlaskClient, db: str) -> None:
    assert client.put(f"{db}/" + "x" * 2001, json={}).get_json()["error"] == "bad_request"
    resp = client.post(f"{db}/_bulk_docs", json={"new_edits": False, "docs": [branch("y", 1, ["h" * 400])]})
    assert resp.get_json()[0]["error"] == "bad_request"
    assert client.get(f"{db}/_all_docs").get_json()["rows"] == []


def test_all_docs_key_is_a_range_and_excludes_keys(client: FlaskClient, db: str) -> None:
    for doc_id in "123":
        client.put(f"{db}/{doc_id}", json={})
    rev = client.get(f"{db}/3").get_json()["_rev"]
    client.delete(f"{db}/3?rev={rev}")
    assert [r["id"] for r in client.get(f'{db}/_all_docs?key="2"').get_json()["rows"]] == ["2"]
    assert client.get(f'{db}/_all_docs?key="3"').get_json()["rows"] == []
    resp = client.post(f'{db}/_all_docs?key="1"', json={"keys": ["1", "2"]})
    assert resp.status_code == 400 and resp.get_json()["error"] == "bad_request"


def test_attachment_rules_on_edit(client: FlaskClient, db: str) -> None:
    bad = client.put(f"{db}/u", json={"_attachments": {"_x.txt": {"content_type": "text/plain", "data": "aGk="}}})
    assert bad.status_code == 400 and bad.get_json()["error"] == "bad_request"
    rev = client.put(f"{db}/u", json={"_attachments": {"one": {"content_type": "text/plain", "data": "b25l"}}})
    doc = client.get(f"{db}/u").get_json()
    one = doc["_attachments"]["one"]
    del one["stub"]
    one["data"] = base64.b64encode(b"one-changed").decode()  # the old length stays beside new data
    assert client.put(f"{db}/u", json=doc).status_code == 201, rev
    assert client.get(f"{db}/u").get_json()["_attachments"]["one"]["revpos"] == 2
    assert client.get(f"{db}/u/one").get_data() == b"one-changed"
