"""The change feed over HTTP: limits, since, styles, filters and the waiting feeds."""
from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from flask.testing import FlaskClient

from tests.conftest import ADMIN


@pytest.fixture
def db(client: FlaskClient) -> str:
    client.put("/couch/db")
    for n in range(5):
        client.put(f"/couch/db/d{n}", json={"n": n})
    return "/couch/db"


def test_limit_cuts_the_feed_and_last_seq_is_the_last_row(client: FlaskClient, db: str) -> None:
    body = client.get(f"{db}/_changes?limit=2").get_json()
    assert [r["seq"] for r in body["results"]] == [1, 2] and body["last_seq"] == 2 and body["pending"] == 3
    rest = client.get(f"{db}/_changes?since=2").get_json()
    assert [r["id"] for r in rest["results"]] == ["d2", "d3", "d4"] and rest["last_seq"] == 5


def test_since_now_descending_and_seq_interval(client: FlaskClient, db: str) -> None:
    assert client.get(f"{db}/_changes?since=now").get_json() == {"results": [], "last_seq": 5, "pending": 0}
    desc = client.get(f"{db}/_changes?descending=true&limit=2").get_json()
    assert [r["id"] for r in desc["results"]] == ["d4", "d3"]
    spaced = client.get(f"{db}/_changes?seq_interval=2").get_json()["results"]
    assert [r["seq"] for r in spaced] == [None, 2, None, 4, 5]
    assert client.get(f'{db}/_changes?since=3-g1AAAA').get_json()["results"][0]["id"] == "d3"


def test_an_edited_doc_appears_once_at_its_latest_seq(client: FlaskClient, db: str) -> None:
    rev = client.get(f"{db}/d0").get_json()["_rev"]
    client.put(f"{db}/d0", json={"_rev": rev, "n": 9})
    rows = client.get(f"{db}/_changes").get_json()["results"]
    assert [r["id"] for r in rows] == ["d1", "d2", "d3", "d4", "d0"] and rows[-1]["seq"] == 6


def test_include_docs_conflicts_and_doc_ids_filter(client: FlaskClient, db: str) -> None:
    rows = client.post(f"{db}/_changes?filter=_doc_ids&include_docs=true",
                       json={"doc_ids": ["d3", "nope"]}).get_json()["results"]
    assert len(rows) == 1 and rows[0]["doc"]["n"] == 3
    by_query = client.get(f'{db}/_changes?filter=_doc_ids&doc_ids=["d1"]').get_json()["results"]
    assert [r["id"] for r in by_query] == ["d1"]


def test_longpoll_waits_for_a_change(live_server: str) -> None:
    root = f"{live_server}/couch/lp"
    requests.put(root, auth=ADMIN, timeout=10)
    result: dict[str, object] = {}

    def poll() -> None:
        resp = requests.get(f"{root}/_changes?feed=longpoll&since=0&heartbeat=200", auth=ADMIN, timeout=30)
        result["body"] = json.loads(resp.text)

    waiter = threading.Thread(target=poll)
    waiter.start()
    time.sleep(0.6)  # the feed is held open, with heartbeats, until the write
    assert "body" not in result
    requests.put(f"{root}/late", json={"v": 1}, auth=ADMIN, timeout=10)
    waiter.join(10)
    assert [r["id"] for r in result["body"]["results"]] == ["late"]  # type: ignore[index]


def test_longpoll_and_continuous_honour_timeout(live_server: str) -> None:
    root = f"{live_server}/couch/to"
    requests.put(root, auth=ADMIN, timeout=10)
    started = time.monotonic()
    body = requests.get(f"{root}/_changes?feed=longpoll&since=now&timeout=300", auth=ADMIN, timeout=10).json()
    assert body == {"results": [], "last_seq": 0, "pending": 0} and time.monotonic() - started < 5
    requests.put(f"{root}/a", json={}, auth=ADMIN, timeout=10)
    lines = requests.get(f"{root}/_changes?feed=continuous&timeout=300", auth=ADMIN, timeout=10).text.split("\n")
    rows = [json.loads(line) for line in lines if line.strip()]
    assert rows[0]["id"] == "a" and rows[-1] == {"last_seq": 1}


def test_a_feed_ends_cleanly_when_its_database_is_deleted(live_server: str) -> None:
    root = f"{live_server}/couch/gone"
    requests.put(root, auth=ADMIN, timeout=10)
    result: dict[str, requests.Response] = {}
    waiter = threading.Thread(target=lambda: result.setdefault("r", requests.get(
        f"{root}/_changes?feed=longpoll&since=now&timeout=10000", auth=ADMIN, timeout=30)))
    waiter.start()
    time.sleep(0.5)
    requests.delete(root, auth=ADMIN, timeout=10)
    waiter.join(15)
    assert result["r"].status_code == 200 and result["r"].json()["results"] == []


def test_selector_filter_returns_matching_docs_and_moves_past_the_rest(client: FlaskClient, db: str) -> None:
    body = client.post(f"{db}/_changes?filter=_selector&include_docs=true",
                       json={"selector": {"n": {"$gte": 3}}}).get_json()
    assert [r["id"] for r in body["results"]] == ["d3", "d4"] and body["last_seq"] == 5
    limited = client.post(f"{db}/_changes?filter=_selector&limit=1", json={"selector": {"n": {"$gte": 1}}})
    assert [r["id"] for r in limited.get_json()["results"]] == ["d1"] and limited.get_json()["last_seq"] == 2
    none = client.post(f"{db}/_changes?filter=_selector", json={"selector": {"n": 99}}).get_json()
    assert none == {"results": [], "last_seq": 5, "pending": 0}  # a filtered feed still checkpoints forward
    bad = client.post(f"{db}/_changes?filter=_selector", json={"selector": {"n": {"$bogus": 1}}})
    assert bad.status_code == 400 and bad.get_json()["error"] == "bad_request"
    missing = client.get(f"{db}/_changes?filter=_selector")
    assert missing.status_code == 400


def test_large_replies_are_gzipped_and_feeds_that_wait_are_not(live_server: str) -> None:
    root = f"{live_server}/couch/gz"
    requests.put(root, auth=ADMIN, timeout=10)
    docs = [{"_id": f"v{i}", "notes": "blood pressure taken, referred to the clinic " * 5} for i in range(50)]
    requests.post(f"{root}/_bulk_docs", json={"docs": docs}, auth=ADMIN, timeout=10)
    packed = requests.get(f"{root}/_all_docs?include_docs=true", auth=ADMIN, timeout=10,
                          headers={"Accept-Encoding": "gzip"}, stream=True)
    raw = packed.raw.read()  # the bytes on the wire
    assert packed.headers["Content-Encoding"] == "gzip" and len(raw) * 4 < len(json.dumps(docs))
    waiting = requests.get(f"{root}/_changes?feed=longpoll&since=now&timeout=200", auth=ADMIN, timeout=10,
                           headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in waiting.headers and waiting.json()["results"] == []
