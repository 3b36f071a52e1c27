"""Scoped replication end to end: a real PouchDB 9 and the project's own tablet client, as a CHW.

PouchDB receives exactly the CHW's scope, is denied a forged visit, receives the new
village after a reassignment and learns what to drop; as a revoked device it is refused.
The tablet client (``wasl device sync``) drops what left the scope, but only once its
unpushed edits are on the server.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient

from models import db
from models.quarantine import QuarantinedRevision
from sync import access
from sync.device import DeviceStore
from sync.devices import create_code, held_reports
from tests.conftest import ADMIN
from tests.pouch import docs_by_id, run_peer, step_result

from .test_scoped_index import DB, SEES, V1, V2, household, make_world, visit

PIN = "482915"
OLD_VILLAGE = {"hh-1", "pt-1", "pt-2", "vs-1", "rf-1", "rf-2"}
AFTER_MOVE = SEES["bashir"]  # amina in V2 sees what bashir sees there (reviews carry their area too)


def enrol(app: Flask, user: str) -> dict[str, Any]:
    with app.app_context():
        code = create_code(user)
    resp = app.test_client().post("/api/v1/devices/enrol", json={"code": code, "name": "tablet"})
    assert resp.status_code == 201
    return resp.get_json()  # type: ignore[no-any-return]


def move_amina(app: Flask) -> None:
    """Reassign amina from V1 to V2."""
    with app.app_context():
        access.unassign("amina", V1, actor="admin")
        access.assign("amina", V2, "works_in", actor="admin")


def when_touched(path: Path, action: Any) -> threading.Thread:
    """Run ``action`` as soon as the peer writes ``path`` (its signal)."""
    def watch() -> None:
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        action()
    thread = threading.Thread(target=watch)
    thread.start()
    return thread


@pytest.mark.pouchdb
def test_pouchdb_replicates_exactly_the_chws_scope(app: Flask, client: FlaskClient, live_server: str,
                                                   tmp_path: Path) -> None:
    world = make_world(app, client)
    device = enrol(app, "amina")
    remote = live_server.replace("http://", f"http://_device:{device['token']}@") + f"/couch/{DB}"
    signal = tmp_path / "pulled"
    mover = when_touched(signal, lambda: move_amina(app))
    forged = visit("vs-forged", V1, "pt-1", "bashir")
    good = visit("vs-good", V1, "pt-1", "amina")
    result = run_peer({"remotes": {"server": remote}, "steps": [
        {"op": "replicate", "source": "server", "target": "local", "as": "pull"},
        {"op": "bulkDocs", "docs": [forged, good]},
        {"op": "replicate", "source": "local", "target": "server", "as": "push"},
        {"op": "allDocs", "options": {"include_docs": True}, "as": "before_move"},
        {"op": "touch", "path": str(signal)},
        {"op": "sleep", "ms": 1500},
        {"op": "replicate", "source": "server", "target": "local", "as": "pull_after_move"},
    ]})
    mover.join(10)
    before = docs_by_id(step_result(result, "before_move"))
    assert set(before) == SEES["amina"] | {"vs-forged", "vs-good"}
    for doc_id in SEES["amina"]:
        assert before[doc_id] == client.get(f"/couch/{DB}/{doc_id}").get_json(), doc_id
    push = step_result(result, "push")
    assert (push["docs_written"], push["doc_write_failures"], push["denied"]) == (1, 1, 1)
    assert client.get(f"/couch/{DB}/vs-good").get_json()["chw"] == "amina"
    assert client.get(f"/couch/{DB}/vs-forged").status_code == 404
    with app.app_context():
        [row] = db.session.scalars(db.select(QuarantinedRevision)).all()
        assert (row.doc_id, row.actor, row.device_id, row.replicated, row.reason) == (
            "vs-forged", "amina", device["device_id"], True, "`chw` must be your user name")

    # After the move: the new village arrived (its documents are older than the checkpoint) ...
    held = set(docs_by_id(result["dbs"]["local"]))
    assert held == SEES["amina"] | {"vs-forged", "vs-good"} | AFTER_MOVE
    # ... and the tablet learns what to drop: the old village's records, its new visit too; the review of
    # her visit is still addressed to her (user:amina), and the campaign still reaches her district.
    answer = requests.post(f"{live_server}/api/v1/devices/me/held", json={
        "db": DB, "doc_ids": sorted(held), "pending": 0}, headers={"Authorization": f"Bearer {device['token']}"},
        timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {"drop": sorted(OLD_VILLAGE | {"vs-good"})}
    listed = client.get("/api/v1/devices").get_json()["devices"]
    assert [d["held"] for d in listed] == [[{"db": DB, "reported_at": listed[0]["held"][0]["reported_at"],
                                             "held": len(held), "out_of_scope": 7, "pending": 0}]]

    client.post(f"/api/v1/devices/{device['device_id']}/revoke")
    refused = run_peer({"remotes": {"server": remote}, "steps": [
        {"op": "replicate", "source": "server", "target": "local", "as": "pull", "may_fail": True}]}, check=False)
    assert step_result(refused, "pull")["ok"] is False
    assert any(e["status"] == 401 and "revoked" in e["body"] for e in refused["http_errors"])
    assert world.revs  # the world stayed as written


def tablet(*args: str) -> Result:
    from wasl_cli import main
    return CliRunner().invoke(main, ["device", *args], env={"WASL_PIN": PIN})


def test_the_tablet_drops_what_left_its_scope_once_its_edits_are_pushed(
        app: Flask, client: FlaskClient, live_server: str, tmp_path: Path) -> None:
    make_world(app, client)
    with app.app_context():
        code = create_code("amina")
    store = tmp_path / "tablet.db"
    enrolled = tablet("enrol", "--server", live_server, "--code", code, "--store", str(store), "--db", DB)
    assert enrolled.exit_code == 0, enrolled.output
    first = tablet("sync", "--store", str(store))
    assert first.exit_code == 0, first.output
    with DeviceStore.open(str(store), PIN) as local:
        assert set(local.held_ids()) == SEES["amina"]
        hh = local.get("hh-1")
    move_amina(app)
    # An edit made offline before the tablet heard of the move: it is pushed (and refused), then dropped.
    with DeviceStore.open(str(store), PIN) as local:
        local.put({**hh, "name": "Painted blue", "updated_by": "amina"})
    moved = tablet("sync", "--store", str(store))
    assert moved.exit_code == 0, moved.output
    assert "refused by the server: hh-1 (forbidden: The document's area is not one of your villages)" in moved.output
    assert "dropped 6 documents no longer in your scope" in moved.output
    with DeviceStore.open(str(store), PIN) as local:
        assert set(local.held_ids()) == (SEES["amina"] - OLD_VILLAGE) | AFTER_MOVE
    with app.app_context():
        [row] = db.session.scalars(db.select(QuarantinedRevision)).all()
        assert (row.doc_id, row.body and "Painted blue" in row.body) == ("hh-1", True)
        [(device_id, [report])] = held_reports().items()
        assert (report.held, report.out_of_scope, report.pending) == (
            len(SEES["amina"] | AFTER_MOVE), 6, 0)


def test_an_unpushed_edit_keeps_its_document_until_it_is_pushed(
        app: Flask, client: FlaskClient, live_server: str, tmp_path: Path) -> None:
    from sync.remote import RemoteDatabase
    from sync.replicator import replicate
    from wasl_cli.tablet import _drop_out_of_scope
    make_world(app, client)
    device = enrol(app, "amina")
    with DeviceStore.create(str(tmp_path / "t.db"), PIN, db_name=DB) as local, \
            RemoteDatabase(f"{live_server}/couch/{DB}", auth=device["token"]) as remote:
        assert replicate(remote, local).ok
        pushed = replicate(local, remote)
        server = {"server_url": live_server, "credentials": {"token": device["token"], "db": DB}}
        move_amina(app)
        local.put({**local.get("pt-2"), "given_name": "Edited after the push", "updated_by": "amina"})
        _drop_out_of_scope(local, server, "moved", pushed)
        assert "pt-2" in local.held_ids() and "pt-1" not in local.held_ids()
        assert local.note("held.scope") is None  # not done: the next sync asks again
        again = replicate(local, remote)
        assert again.errors[0]["id"] == "pt-2"  # pushed, refused, quarantined
        _drop_out_of_scope(local, server, "moved", again)
        assert "pt-2" not in local.held_ids() and local.note("held.scope") == "moved"
    assert household("x", V2)["area"] == V2 and ADMIN[0] == "admin"
