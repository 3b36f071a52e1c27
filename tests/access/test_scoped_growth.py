"""A scope that grows: documents older than a device's checkpoint come after it (backfill), for that user only."""
from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from models import db
from models.access import ScopeBackfill, ScopeUser
from sync import access

from .test_scoped_index import DB, SEES, V1, V2, World, visit, world

__all__ = ["world"]
URL = f"/couch/{DB}/_changes"


def feed(c: FlaskClient, **params: Any) -> dict[str, Any]:
    resp = c.get(URL, query_string=params)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()  # type: ignore[no-any-return]


def ids(body: dict[str, Any]) -> list[str]:
    return [row["id"] for row in body["results"]]


def backfill_rows(world: World) -> dict[str, list[int]]:
    with world.app.app_context():
        rows = db.session.execute(db.select(ScopeBackfill.user_name, ScopeBackfill.seq)).all()
    found: dict[str, list[int]] = {}
    for user, seq in rows:
        found.setdefault(user, []).append(seq)
    return found


def test_a_new_village_arrives_after_the_checkpoint(world: World) -> None:
    amina, bashir, admin = world.client("amina"), world.client("bashir"), world.admin
    checkpoint = feed(amina)["last_seq"]
    bashir_checkpoint = feed(bashir)["last_seq"]
    with world.app.app_context():
        access.assign("amina", V2, "works_in", actor="admin")  # a second village
    grown = feed(amina, since=checkpoint)
    # Every document of V2 she did not already see, each once, in the order of its own changes.
    assert sorted(ids(grown)) == sorted(SEES["bashir"] - SEES["amina"])
    seqs = [row["seq"] for row in grown["results"]]
    assert seqs == sorted(seqs) and min(seqs) > checkpoint
    assert grown["last_seq"] == admin.get(f"/couch/{DB}").get_json()["update_seq"] == seqs[-1]
    assert feed(amina, since=grown["last_seq"])["results"] == []  # once only
    # Paged, as a replicator reads it, the same documents come through.
    paged, since = [], checkpoint
    while page := feed(amina, since=since, limit=2)["results"]:
        paged += [row["id"] for row in page]
        since = page[-1]["seq"]
    assert paged == ids(grown)
    # Other users' feeds are unaffected.
    assert feed(bashir, since=bashir_checkpoint)["results"] == []
    assert list(backfill_rows(world)) == ["amina"]


def test_a_change_after_the_backfill_comes_again_and_nothing_is_skipped(world: World) -> None:
    amina, admin = world.client("amina"), world.admin
    checkpoint = feed(amina)["last_seq"]
    with world.app.app_context():
        access.assign("amina", V2, "works_in", actor="admin")
    first = feed(amina, since=checkpoint, limit=3)
    doc = admin.get(f"/couch/{DB}/hh-2").get_json()
    admin.put(f"/couch/{DB}/hh-2", json={**doc, "name": "Green door"})
    rest = feed(amina, since=first["last_seq"], include_docs="true")
    assert set(ids(first)) | set(ids(rest)) == SEES["bashir"] - SEES["amina"]
    assert [row["doc"]["name"] for row in rest["results"] if row["id"] == "hh-2"] == ["Green door"]


def test_since_now_lies_after_the_backfill(world: World) -> None:
    amina = world.client("amina")
    feed(amina)
    with world.app.app_context():
        access.assign("amina", V2, "works_in", actor="admin")
    now = feed(amina, since="now")
    assert now["results"] == [] and now["last_seq"] == world.admin.get(f"/couch/{DB}").get_json()["update_seq"]


def test_a_shrunk_scope_forgets_its_backfill(world: World) -> None:
    amina = world.client("amina")
    checkpoint = feed(amina)["last_seq"]
    with world.app.app_context():
        access.assign("amina", V2, "works_in", actor="admin")
    assert ids(feed(amina, since=checkpoint))
    with world.app.app_context():
        access.unassign("amina", V2, actor="admin")
    assert feed(amina, since=checkpoint)["results"] == []
    assert backfill_rows(world) == {}
    with world.app.app_context():
        stored = db.session.scalar(db.select(ScopeUser.keys).where(ScopeUser.user_name == "amina"))
        assert f"area:{V2}" not in stored and f"area:{V1}" in stored


def test_a_consenting_patient_reaches_the_clinic_with_their_history(world: World) -> None:
    clara, admin = world.client("clara"), world.admin
    checkpoint = feed(clara)["last_seq"]
    admin.put(f"/couch/{DB}/vs-2", json=visit("vs-2", V1, "pt-2", "amina"))
    assert ids(feed(clara, since=checkpoint)) == []  # pt-2 has not consented yet
    doc = admin.get(f"/couch/{DB}/pt-2").get_json()
    admin.put(f"/couch/{DB}/pt-2", json={**doc, "consent": {"share_with_partners": True}})
    assert sorted(ids(feed(clara, since=checkpoint))) == ["pt-2", "vs-2"]
