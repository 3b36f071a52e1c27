"""Scoped reads: every role × every endpoint a document can leave by, a document inside and one outside.

For each role the documents seen through each endpoint are exactly the role's scope
(``SEES``), with the same bodies the admin reads; every document outside answers exactly
as a document the server does not hold.
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from .test_scoped_index import (ALL_IDS, DB, PHOTO, SEES, V1, V9, World, basic, household, make_world, world)

__all__ = ["world"]  # the fixture, shared with test_scoped_index
ROLES = ["amina", "bashir", "sara", "clara", "omar", "admin"]
URL = f"/couch/{DB}"
Probe = Callable[[FlaskClient, str, str], Any]


def live_docs(role: str) -> list[str]:
    return sorted(SEES[role])


# ------------------------------------------------------------------------------ what each endpoint shows
def via_changes(c: FlaskClient, **params: Any) -> dict[str, Any]:
    resp = c.get(f"{URL}/_changes", query_string=params)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()  # type: ignore[no-any-return]


def ids_changes(c: FlaskClient) -> set[str]:
    return {row["id"] for row in via_changes(c)["results"]}


def ids_changes_longpoll(c: FlaskClient) -> set[str]:
    return {row["id"] for row in via_changes(c, feed="longpoll")["results"]}


def ids_changes_continuous(c: FlaskClient) -> set[str]:
    lines = [json.loads(line) for line in c.get(f"{URL}/_changes?feed=continuous&timeout=50").get_data(
        as_text=True).splitlines() if line.strip()]
    assert "last_seq" in lines[-1]
    return {line["id"] for line in lines[:-1]}


def ids_changes_doc_ids(c: FlaskClient) -> set[str]:
    resp = c.post(f"{URL}/_changes?filter=_doc_ids", json={"doc_ids": ALL_IDS})
    return {row["id"] for row in resp.get_json()["results"]}


def ids_changes_selector(c: FlaskClient) -> set[str]:
    resp = c.post(f"{URL}/_changes?filter=_selector", json={"selector": {"_id": {"$gt": None}}})
    return {row["id"] for row in resp.get_json()["results"]}


def ids_changes_descending(c: FlaskClient) -> set[str]:
    return {row["id"] for row in via_changes(c, descending="true")["results"]}


def ids_changes_paged(c: FlaskClient) -> set[str]:
    """Page through the feed two at a time, as a replicator does; pending counts down."""
    seen: list[str] = []
    since: Any = 0
    while True:
        page = via_changes(c, since=since, limit=2)
        if not page["results"]:
            return set(seen)
        seen += [row["id"] for row in page["results"]]
        assert len(seen) == len(set(seen))
        assert page["pending"] == max(0, len(live_or_deleted(c)) - len(seen)), page
        since = page["last_seq"]


def live_or_deleted(c: FlaskClient) -> list[str]:
    return [row["id"] for row in via_changes(c)["results"]]


def ids_all_docs(c: FlaskClient) -> set[str]:
    body = c.get(f"{URL}/_all_docs").get_json()
    assert body["total_rows"] == len(body["rows"]) and body["offset"] == 0
    return {row["id"] for row in body["rows"]}


def ids_all_docs_keys(c: FlaskClient) -> set[str]:
    rows = c.post(f"{URL}/_all_docs", json={"keys": ALL_IDS}).get_json()["rows"]
    assert [row["key"] for row in rows] == ALL_IDS
    assert all(row == {"key": row["key"], "error": "not_found"} for row in rows if "error" in row)
    return {row["id"] for row in rows if "id" in row}


def ids_bulk_get(c: FlaskClient) -> set[str]:
    results = c.post(f"{URL}/_bulk_get", json={"docs": [{"id": i} for i in ALL_IDS]}).get_json()["results"]
    return {r["id"] for r in results if "ok" in r["docs"][0]}


def ids_get(c: FlaskClient) -> set[str]:
    return {i for i in ALL_IDS if c.get(f"{URL}/{i}").status_code == 200}


def ids_open_revs(c: FlaskClient) -> set[str]:
    return {i for i in ALL_IDS if c.get(f"{URL}/{i}?open_revs=all", headers={"Accept": "application/json"}
                                        ).get_json()}


def ids_revs_diff(c: FlaskClient, revs: dict[str, str]) -> set[str]:
    diff = c.post(f"{URL}/_revs_diff", json={i: [revs[i]] for i in ALL_IDS}).get_json()
    return set(ALL_IDS) - set(diff)


def ids_attachment(c: FlaskClient) -> set[str]:
    return {i for i in ("vs-1", "vs-3") if c.get(f"{URL}/{i}/p.png").data == PHOTO}


ENDPOINTS: dict[str, Callable[[FlaskClient], set[str]]] = {
    "changes": ids_changes, "changes longpoll": ids_changes_longpoll, "changes continuous": ids_changes_continuous,
    "changes _doc_ids": ids_changes_doc_ids, "changes _selector": ids_changes_selector,
    "changes descending": ids_changes_descending, "changes paged": ids_changes_paged,
    "all_docs": ids_all_docs, "all_docs keys": ids_all_docs_keys, "bulk_get": ids_bulk_get, "get": ids_get,
    "open_revs": ids_open_revs,
}


@pytest.mark.parametrize("role", ROLES)
def test_every_endpoint_shows_exactly_the_scope_with_the_admins_bodies(world: World, role: str) -> None:
    c, admin = world.client(role), world.admin
    for name, endpoint in ENDPOINTS.items():
        assert endpoint(c) == SEES[role], (role, name)
    assert ids_revs_diff(c, world.revs) == SEES[role]
    assert ids_attachment(c) == SEES[role] & {"vs-1", "vs-3"}
    mine = {row["id"]: row["doc"] for row in via_changes(c, include_docs="true")["results"]}
    assert mine == {i: admin.get(f"{URL}/{i}").get_json() for i in SEES[role]}
    rows = c.get(f"{URL}/_all_docs?include_docs=true").get_json()["rows"]
    assert [row["id"] for row in rows] == sorted(SEES[role]) and all(row["doc"] == mine[row["id"]] for row in rows)
    got = c.post(f"{URL}/_bulk_get?revs=true&attachments=true",
                 json={"docs": [{"id": i, "rev": world.revs[i]} for i in SEES[role]]}).get_json()["results"]
    assert {r["id"]: r["docs"][0]["ok"] for r in got} == {
        i: admin.get(f"{URL}/{i}?revs=true&attachments=true").get_json() for i in SEES[role]}
    # _all_docs counts and pages within the scope.
    ids = sorted(SEES[role])
    page = c.get(f"{URL}/_all_docs?skip=1&limit=2").get_json()
    assert page["total_rows"] == len(ids) and page["offset"] == 1
    assert [row["id"] for row in page["rows"]] == ids[1:3]
    ranged = c.get(f'{URL}/_all_docs?startkey="{ids[1]}"&endkey="{ids[-1]}"&inclusive_end=false').get_json()
    assert [row["id"] for row in ranged["rows"]] == ids[1:-1] and ranged["offset"] == 1
    back = c.get(f"{URL}/_all_docs?descending=true&limit=3").get_json()
    assert [row["id"] for row in back["rows"]] == ids[::-1][:3]


# ------------------------------------------------------------------------------ outside == absent
def _masked(resp: Any, doc_id: str) -> tuple[int, str]:
    """Status and body with the document id replaced, so two ids can be compared."""
    return resp.status_code, resp.get_data(as_text=True).replace(doc_id, "<id>")


PROBES: dict[str, Probe] = {
    "get": lambda c, i, r: c.get(f"{URL}/{i}"),
    "head": lambda c, i, r: c.head(f"{URL}/{i}"),
    "get rev": lambda c, i, r: c.get(f"{URL}/{i}?rev={r}"),
    "get revs": lambda c, i, r: c.get(f"{URL}/{i}?revs=true&revs_info=true&conflicts=true"),
    "get meta latest": lambda c, i, r: c.get(f"{URL}/{i}?meta=true&latest=true&rev={r}"),
    "open_revs all": lambda c, i, r: c.get(f"{URL}/{i}?open_revs=all", headers={"Accept": "application/json"}),
    "open_revs list": lambda c, i, r: c.get(f'{URL}/{i}?open_revs=["{r}"]&revs=true',
                                            headers={"Accept": "application/json"}),
    "open_revs multipart": lambda c, i, r: c.get(f'{URL}/{i}?open_revs=["{r}"]',
                                                 headers={"Accept": "multipart/mixed"}),
    "attachment": lambda c, i, r: c.get(f"{URL}/{i}/p.png"),
    "attachment rev": lambda c, i, r: c.get(f"{URL}/{i}/p.png?rev={r}"),
    "bulk_get": lambda c, i, r: c.post(f"{URL}/_bulk_get", json={"docs": [{"id": i}, {"id": i, "rev": r}]}),
    "revs_diff": lambda c, i, r: c.post(f"{URL}/_revs_diff", json={i: [r, "9-" + "a" * 32]}),
    "all_docs key": lambda c, i, r: c.get(f'{URL}/_all_docs?key="{i}"'),
    "all_docs keys": lambda c, i, r: c.post(f"{URL}/_all_docs", json={"keys": [i]}),
    "changes doc_ids": lambda c, i, r: c.post(f"{URL}/_changes?filter=_doc_ids", json={"doc_ids": [i]}),
}


@pytest.mark.parametrize("role", [r for r in ROLES if r != "admin"])
def test_a_document_outside_answers_as_an_absent_one(world: World, role: str) -> None:
    c = world.client(role)
    outside = "vs-3" if "vs-3" not in SEES[role] else "vs-1" if "vs-1" not in SEES[role] else "hh-9"
    inside = next(i for i in ("vs-1", "vs-3") if i in SEES[role])
    rev = world.revs[outside]
    for name, probe in PROBES.items():
        # An absent id that sorts where the hidden one does (_all_docs offsets count ids before the key).
        hidden, absent = probe(c, outside, rev), probe(c, outside + "-absent", rev)
        if name.startswith("open_revs multipart"):  # random part boundaries: compare the parts' JSON
            assert hidden.status_code == absent.status_code == 200
            assert b"missing" in hidden.data and b"vs-" not in hidden.data, name
            continue
        assert _masked(hidden, outside) == _masked(absent, outside + "-absent"), (role, name)
        shown = probe(c, inside, world.revs[inside])
        expected = PHOTO if name.startswith("attachment") else b"" if name == "head" else inside.encode()
        assert shown.status_code == 200 and expected in shown.data, (role, name)
        if name == "revs_diff":  # the rev it holds is not missing; only the unknown one
            assert shown.get_json() == {inside: {"missing": ["9-" + "a" * 32], "possible_ancestors": [
                world.revs[inside]]}}


def test_the_admin_sees_a_document_no_role_sees(world: World) -> None:
    assert world.admin.get(f"{URL}/misc-1").get_json()["note"] == "no type: only admins see it"
    for role in ROLES[:-1]:
        assert world.client(role).get(f"{URL}/misc-1").status_code == 404


# ------------------------------------------------------------------------------ the feed's sequences
def test_since_now_limit_and_last_seq(world: World) -> None:
    amina, admin = world.client("amina"), world.admin
    update_seq = admin.get(URL).get_json()["update_seq"]
    assert via_changes(amina, since="now") == {"results": [], "last_seq": update_seq, "pending": 0}
    first = via_changes(amina, limit=3)
    assert len(first["results"]) == 3 and first["last_seq"] == first["results"][-1]["seq"]
    assert first["pending"] == len(SEES["amina"]) - 3
    assert via_changes(amina, limit=0)["pending"] == len(SEES["amina"])
    # The whole feed answered: last_seq is the database's, past the changes amina does not see.
    assert via_changes(amina)["last_seq"] == update_seq
    seqs = {row["id"]: row["seq"] for row in via_changes(admin)["results"]}
    assert {row["id"]: row["seq"] for row in via_changes(amina)["results"]} == {i: seqs[i] for i in SEES["amina"]}
    # A change outside the scope moves update_seq but not amina's feed.
    doc = admin.get(f"{URL}/hh-9").get_json()
    admin.put(f"{URL}/hh-9", json={**doc, "name": "moved on"})
    assert via_changes(amina, since=update_seq) == {"results": [], "last_seq": update_seq + 1, "pending": 0}


def test_a_document_leaving_the_scope_leaves_the_feed(world: World) -> None:
    amina, admin = world.client("amina"), world.admin
    since = via_changes(amina)["last_seq"]
    doc = admin.get(f"{URL}/hh-1").get_json()
    admin.put(f"{URL}/hh-1", json={**doc, "area": V9})
    assert via_changes(amina, since=since)["results"] == []
    assert amina.get(f"{URL}/hh-1").status_code == 404 and "hh-1" not in ids_changes(amina)
    back = admin.get(f"{URL}/hh-1").get_json()
    admin.put(f"{URL}/hh-1", json={**back, "area": V1})
    assert [row["id"] for row in via_changes(amina, since=since)["results"]] == ["hh-1"]


def test_a_longpoll_wakes_only_for_a_change_in_scope(app: Any, client: FlaskClient, live_server: str) -> None:
    make_world(app, client)
    url = f"{live_server}{URL}/_changes"
    auth = basic("amina")["Authorization"]
    since = requests.get(url, headers={"Authorization": auth}, timeout=10).json()["last_seq"]
    answer: dict[str, Any] = {}

    def poll() -> None:
        started = time.monotonic()
        answer["body"] = requests.get(url, params={"feed": "longpoll", "since": since, "timeout": 10000},
                                      headers={"Authorization": auth}, timeout=30).json()
        answer["waited"] = time.monotonic() - started
    waiter = threading.Thread(target=poll)
    waiter.start()
    time.sleep(0.4)
    for n in range(3):  # outside amina's scope: the feed wakes, finds nothing, and waits again
        client.put(f"{URL}/out-{n}", json=household(f"out-{n}", V9, "zed"))
        time.sleep(0.2)
    assert waiter.is_alive()
    written = client.put(f"{URL}/in-1", json=household("in-1", V1)).get_json()
    waiter.join(10)
    assert [(row["id"], row["changes"]) for row in answer["body"]["results"]] == [("in-1", [{"rev": written["rev"]}])]
    assert answer["waited"] >= 0.9


def test_a_longpoll_with_nothing_in_scope_times_out_empty(world: World) -> None:
    amina, admin = world.client("amina"), world.admin
    since = via_changes(amina)["last_seq"]
    admin.put(f"{URL}/out-1", json=household("out-1", V9, "zed"))
    body = via_changes(amina, feed="longpoll", since=since, timeout=300)
    assert body["results"] == [] and body["last_seq"] == since + 1
    lines = amina.get(f"{URL}/_changes?feed=continuous&since={since}&timeout=300").get_data(as_text=True)
    assert [json.loads(line) for line in lines.splitlines() if line.strip()] == [{"last_seq": since + 1}]
