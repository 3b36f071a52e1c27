"""Property-based bad input for the replication endpoints: never a 5xx, always a clear error, no damage.

hypothesis sends malformed and hostile bodies and parameters to ``_bulk_docs``, ``_revs_diff``,
``_bulk_get``, ``_changes`` and single-document writes: deep nesting, huge numbers, invalid
UTF-8, odd ids, reserved ``_`` fields, attachments whose length or digest lies. Each reply is
below 500 and, when it is an error, CouchDB's ``{"error", "reason"}``; and what a refused
request leaves behind is exactly what was there before it.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings, strategies as st

from models import db
from tests.conftest import AUTH, make_app

DB = "/couch/fuzz"
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                      st.text(max_size=20))
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
odd_id = st.one_of(st.text(max_size=40), st.sampled_from(["", "_design", "_local", "_bad", "_design/", "a/b", "%2F",
                                                          "\u0000", "\ud800x", "x" * 3000, "_local/x", " "]),
                   st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2))
odd_rev = st.one_of(st.text(max_size=12), st.sampled_from(["1-", "-1-a", "0-abc", "1-xyz", "99999999999999999999-a",
                                                           "1-" + "a" * 400]), st.integers(), st.none())
reserved = st.sampled_from(["_foo", "_conflicts", "_deleted_conflicts", "_local_seq", "_revs_info", "_attachments",
                            "_revisions", "_deleted", "_rev", "_id"])
b64 = st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode())
attachment = st.fixed_dictionaries({"content_type": st.sampled_from(["text/plain", "image/png", "", "x"]),
                                    "data": st.one_of(b64, st.text(max_size=10))},
                                   optional={"length": st.integers(-5, 10**12), "digest": st.text(max_size=30),
                                             "stub": st.booleans(), "revpos": st.integers(-3, 5),
                                             "follows": st.booleans()})
document = st.fixed_dictionaries({}, optional={
    "_id": odd_id, "_rev": odd_rev, "_deleted": json_leaf,
    "_revisions": st.one_of(json_value, st.fixed_dictionaries({
        "start": st.integers(-2, 10**6), "ids": st.lists(st.text(max_size=34), max_size=3)})),
    "_attachments": st.one_of(json_value, st.dictionaries(st.text(max_size=8), attachment, max_size=2)),
    "body": json_value}).flatmap(lambda d: st.dictionaries(reserved, json_value, max_size=2).map(lambda r: {**d, **r}))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, FlaskClient]]:
    """One app for the whole module (hypothesis runs many examples per test)."""
    path: Path = tmp_path_factory.mktemp("fuzz")
    app = make_app(f"sqlite:///{path}/fuzz.sqlite", WASL_RATE_LIMIT_ADDRESS="")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = AUTH["Authorization"]
    assert client.put(DB).status_code == 201
    assert client.put(f"{DB}/known", json={"v": 1}).status_code == 201
    yield app, client
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def state(client: FlaskClient) -> Any:
    """Everything a client can see of the database: counts and every document with its tree."""
    info = client.get(DB).get_json()
    rows = client.get(f"{DB}/_all_docs", query_string={"include_docs": "true", "conflicts": "true"}).get_json()
    return info["doc_count"], info["doc_del_count"], info["update_seq"], rows["rows"]


def check_reply(resp: Any) -> None:
    assert resp.status_code < 500, resp.get_data(as_text=True)[:500]
    if resp.status_code >= 400:
        body = resp.get_json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("reason"), str)


@SETTINGS
@given(docs=st.lists(document, max_size=4), new_edits=st.one_of(st.booleans(), json_leaf))
def test_bulk_docs_never_fails_with_a_5xx(server: tuple[Flask, FlaskClient], docs: list[Any], new_edits: Any) -> None:
    _, client = server
    before = state(client)
    resp = client.post(f"{DB}/_bulk_docs", json={"docs": docs, "new_edits": new_edits})
    check_reply(resp)
    if resp.status_code >= 400:
        assert state(client) == before  # a refused request changed nothing
    else:
        items = resp.get_json()
        assert isinstance(items, list)
        assert all(isinstance(i, dict) and ("error" in i or "ok" in i or "rev" in i) for i in items)


@SETTINGS
@given(raw=st.one_of(st.binary(max_size=200), st.sampled_from([
    b'{"docs": [' + b'[' * 5000 + b']' * 5000 + b']}',  # deep nesting
    b'{"docs": [{"_id": "n", "x": 1' + b'0' * 400 + b'}]}',  # a number no float holds
    b'{"docs": [{"_id": "u", "x": "\xff\xfe"}]}',  # invalid UTF-8
    b'{"docs": [{"_id": "s", "x": "\\ud800"}]}',  # a lone surrogate
    b'{"docs": {"_id": "x"}}', b'[]', b'null', b'{"docs": [1, "a", null]}', b'{"docs": []', b''])),
    path=st.sampled_from(["_bulk_docs", "_revs_diff", "_bulk_get", "_all_docs", "_changes", "known", "new-doc"]))
def test_raw_bodies_get_a_clear_error(server: tuple[Flask, FlaskClient], raw: bytes, path: str) -> None:
    _, client = server
    before = state(client)
    method = client.put if path in ("known", "new-doc") else client.post
    resp = method(f"{DB}/{path}", data=raw, content_type="application/json")
    check_reply(resp)
    if resp.status_code >= 400:
        assert state(client) == before


@SETTINGS
@given(body=st.one_of(json_value, st.dictionaries(odd_id.filter(lambda x: isinstance(x, str)),
                                                  st.one_of(st.lists(odd_rev), json_leaf), max_size=3)))
def test_revs_diff_answers_or_refuses(server: tuple[Flask, FlaskClient], body: Any) -> None:
    _, client = server
    resp = client.post(f"{DB}/_revs_diff", json=body)
    check_reply(resp)
    if resp.status_code == 200:
        assert isinstance(resp.get_json(), dict)


@SETTINGS
@given(docs=st.one_of(json_value, st.lists(st.fixed_dictionaries({}, optional={
    "id": odd_id, "rev": odd_rev, "atts_since": json_value, "open_revs": json_value}), max_size=3)),
    params=st.dictionaries(st.sampled_from(["revs", "latest", "attachments"]), st.text(max_size=6), max_size=3))
def test_bulk_get_answers_each_item_or_refuses(server: tuple[Flask, FlaskClient], docs: Any,
                                               params: dict[str, str]) -> None:
    _, client = server
    resp = client.post(f"{DB}/_bulk_get", json={"docs": docs}, query_string=params)
    check_reply(resp)
    if resp.status_code == 200:
        results = resp.get_json()["results"]
        assert len(results) == len(docs)


@SETTINGS
@given(params=st.dictionaries(st.sampled_from(["since", "limit", "feed", "style", "include_docs", "conflicts",
                                               "descending", "heartbeat", "timeout", "filter", "doc_ids",
                                               "seq_interval", "attachments", "selector"]),
                              st.one_of(st.text(max_size=12), st.integers(-5, 10**20).map(str),
                                        st.sampled_from(["now", "0", "-1", "1-abc", "[]", "{}", '["known"]',
                                                         "normal", "longpoll", "_doc_ids", "_selector"])),
                              max_size=5))
def test_changes_parameters_answer_or_refuse(server: tuple[Flask, FlaskClient], params: dict[str, str]) -> None:
    _, client = server
    if params.get("feed") in ("longpoll", "continuous", "eventsource"):
        params["timeout"] = "1"  # a waiting feed must still end within the test
    resp = client.get(f"{DB}/_changes", query_string=params)
    check_reply(resp)
    if resp.status_code == 200 and params.get("feed") not in ("continuous", "eventsource"):
        body = json.loads(resp.get_data(as_text=True))
        assert "results" in body and "last_seq" in body
