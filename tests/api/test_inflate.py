"""gzip request bodies: inflated for every route, refused clearly when broken, too big or unknown."""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from api.security import EVERY_REPLY
from sync.remote import COMPRESS_MIN_BYTES, RemoteDatabase
from tests.api.helpers import assert_couch_error
from tests.conftest import ADMIN, AUTH, make_app

DOCS = [{"_id": f"visit-{i:03d}", "notes": "fever cough referral " * 20, "n": i} for i in range(40)]


def post_bulk(client: FlaskClient, body: bytes, encoding: str | None = "gzip") -> Any:
    headers = {"Content-Type": "application/json", **({"Content-Encoding": encoding} if encoding else {})}
    return client.post("/couch/wasl/_bulk_docs", data=body, headers=headers)


def doc_count(client: FlaskClient) -> int:
    return int(client.get("/couch/wasl").get_json()["doc_count"])


@pytest.fixture
def db_client(client: FlaskClient) -> FlaskClient:
    assert client.put("/couch/wasl").status_code == 201
    return client


def test_a_gzip_body_is_stored_as_if_sent_plain(db_client: FlaskClient) -> None:
    plain = json.dumps({"docs": DOCS}).encode()
    packed = gzip.compress(plain)
    assert len(packed) * 5 < len(plain)  # what a 2G upload saves on such a batch
    resp = post_bulk(db_client, packed)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert [item["id"] for item in resp.get_json()] == [d["_id"] for d in DOCS]
    stored = db_client.get("/couch/wasl/visit-007").get_json()
    assert {k: stored[k] for k in ("_id", "notes", "n")} == DOCS[7]
    assert doc_count(db_client) == len(DOCS)


def test_concatenated_gzip_members_are_one_body(db_client: FlaskClient) -> None:
    plain = json.dumps({"docs": DOCS[:3]}).encode()
    packed = gzip.compress(plain[:20]) + gzip.compress(plain[20:])
    assert post_bulk(db_client, packed).status_code == 201
    assert doc_count(db_client) == 3


def test_identity_and_plain_bodies_pass_untouched(db_client: FlaskClient) -> None:
    plain = json.dumps({"docs": DOCS[:2]}).encode()
    assert post_bulk(db_client, plain, "identity").status_code == 201
    assert post_bulk(db_client, json.dumps({"docs": DOCS[2:4]}).encode(), None).status_code == 201
    assert doc_count(db_client) == 4


@pytest.mark.parametrize("body", [b"not gzip at all", gzip.compress(b'{"docs": []}')[:-9], b"\x1f\x8b"],
                         ids=["garbage", "truncated", "header only"])
def test_a_body_that_is_not_gzip_gets_400_and_changes_nothing(db_client: FlaskClient, body: bytes) -> None:
    assert_couch_error(post_bulk(db_client, body), 400, "bad_request", "Request body is not valid gzip")
    assert doc_count(db_client) == 0


def test_gzip_followed_by_garbage_gets_400(db_client: FlaskClient) -> None:
    body = gzip.compress(json.dumps({"docs": DOCS[:1]}).encode()) + b"trailing"
    assert_couch_error(post_bulk(db_client, body), 400, "bad_request")
    assert doc_count(db_client) == 0


def test_another_encoding_gets_415_and_changes_nothing(db_client: FlaskClient) -> None:
    resp = post_bulk(db_client, json.dumps({"docs": DOCS[:1]}).encode(), "br")
    assert_couch_error(resp, 415, "bad_content_type", "Content-Encoding must be gzip or identity")
    assert doc_count(db_client) == 0


def test_a_refusal_carries_the_headers_every_reply_carries(db_client: FlaskClient) -> None:
    answered = db_client.get("/couch/wasl")
    for resp in (post_bulk(db_client, b"not gzip at all"), post_bulk(db_client, b"{}", "br")):
        for name, value in EVERY_REPLY:
            assert resp.headers[name] == value == answered.headers[name], name


def test_the_size_limit_applies_to_the_inflated_body(tmp_path: Path) -> None:
    """A kilobyte that inflates to a megabyte (a zip bomb) is refused before it is all inflated."""
    app = make_app(f"sqlite:///{tmp_path}/small.sqlite", MAX_CONTENT_LENGTH=64 * 1024)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = AUTH["Authorization"]
    assert client.put("/couch/wasl").status_code == 201
    bomb = gzip.compress(b'{"docs": [' + b" " * (1024 * 1024) + b"]}")
    assert len(bomb) < 2048
    assert_couch_error(post_bulk(client, bomb), 413, "too_large")
    # Within the limit once inflated: accepted.
    assert post_bulk(client, gzip.compress(json.dumps({"docs": DOCS[:5]}).encode())).status_code == 201
    # Over the limit before inflating, too.
    assert_couch_error(post_bulk(client, b"\x1f\x8b" + b"x" * (64 * 1024)), 413, "too_large")
    assert doc_count(client) == 5


def test_the_device_client_sends_gzip_and_the_server_stores_it(app: Flask, live_server: str) -> None:
    """The tablet's client against a real server on loopback: gzip on the wire, the docs stored."""
    sent: list[tuple[str | None, bytes]] = []
    with requests.Session() as session:
        session.hooks["response"].append(
            lambda resp, *args, **kwargs: sent.append((resp.request.headers.get("Content-Encoding"),
                                                       resp.request.body or b"")))
        session.put(f"{live_server}/couch/wasl", headers=AUTH).raise_for_status()
        with RemoteDatabase(f"{live_server}/couch/wasl", auth=ADMIN, session=session,
                            compress_requests=True) as remote:
            batch = [{**d, "_rev": f"1-{i:032x}"} for i, d in enumerate(DOCS, 1)]
            assert remote.bulk_docs_replicated(batch) == []
            small = remote.revs_diff({"visit-000": ["1-" + "0" * 32]})
        assert small == {"visit-000": {"missing": ["1-" + "0" * 32]}}
        info = session.get(f"{live_server}/couch/wasl", headers=AUTH).json()
    bulk = [body for encoding, body in sent if body.startswith(b"\x1f\x8b")]
    assert len(bulk) == 1 and json.loads(gzip.decompress(bulk[0]))["docs"][0]["_id"] == "visit-000"
    assert all(encoding == "gzip" for encoding, body in sent if body.startswith(b"\x1f\x8b"))
    # The small revs_diff went plain: below the size where gzip pays.
    assert any(encoding is None and 0 < len(body) < COMPRESS_MIN_BYTES for encoding, body in sent)
    assert info["doc_count"] == len(DOCS)
