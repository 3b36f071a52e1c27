"""The scope index and the world the scoped tests share: areas, one user per role, records written as admin.

The other ``test_scoped_*`` modules import ``world`` and the helpers from here.
"""
from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from models import Document, db
from models.access import ScopedDatabase, ScopeKey
from sync import access, scopeindex
from sync.scope import doc_keys
from sync.writes import bulk_docs

DB = "records"  # tests/conftest.make_app: WASL_RECORDS_DB
V1, V2, V9 = "north/d1/v1", "north/d1/v2", "south/d9/v9"
CLINIC = "north/d1/clinic-a"
AREAS = [("north", "region"), ("north/d1", "district"), (V1, "village"), (V2, "village"), (CLINIC, "facility"),
         ("south", "region"), ("south/d9", "district"), (V9, "village")]
USERS = {"amina": ("chw", V1, "works_in"), "bashir": ("chw", V2, "works_in"),
         "sara": ("supervisor", "north/d1", "supervises"), "clara": ("clinician", CLINIC, "clinic"),
         "omar": ("organiser", None, None)}
T = "2026-01-05T08:00:00Z"
PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


def password(name: str) -> str:
    return f"pw-{name}-long"


def basic(name: str, secret: str | None = None) -> dict[str, str]:
    """Basic-auth header for a test user."""
    pair = f"{name}:{secret if secret is not None else password(name)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def household(doc_id: str, area: str, by: str = "amina", **extra: Any) -> dict[str, Any]:
    return {"_id": doc_id, "type": "household", "area": area, "updated_at": T, "updated_by": by,
            "name": f"House {doc_id}", **extra}


def patient(doc_id: str, area: str, consent: bool, by: str = "amina", **extra: Any) -> dict[str, Any]:
    return {"_id": doc_id, "type": "patient", "area": area, "updated_at": T, "updated_by": by,
            "given_name": f"Name {doc_id}", "sex": "female", "birth_date": "1990-04-01",
            "consent": {"share_with_partners": consent}, **extra}


def visit(doc_id: str, area: str, patient_id: str, chw: str, **extra: Any) -> dict[str, Any]:
    return {"_id": doc_id, "type": "visit", "area": area, "updated_at": T, "updated_by": chw,
            "patient_id": patient_id, "chw": chw, "visited_at": T, "kind": "routine", **extra}


def referral(doc_id: str, area: str, patient_id: str, chw: str, **extra: Any) -> dict[str, Any]:
    return {"_id": doc_id, "type": "referral", "area": area, "updated_at": T, "updated_by": chw,
            "patient_id": patient_id, "from_chw": chw, "to_facility": CLINIC, "reason": "fever",
            "status": "open", "created_at": T, **extra}


def campaign(doc_id: str, organiser: str, areas: list[str], chws: list[str]) -> dict[str, Any]:
    return {"_id": doc_id, "type": "campaign", "name": doc_id, "condition": "hypertension", "areas": areas,
            "organiser": organiser, "chws": chws}


def review(doc_id: str, visit_id: str, chw: str, area: str) -> dict[str, Any]:
    return {"_id": doc_id, "type": "review", "visit_id": visit_id, "chw": chw, "state": "approved",
            "reviewer": "sara", "reviewed_at": T, "area": area}


DOCS = [
    household("hh-1", V1), patient("pt-1", V1, True), patient("pt-2", V1, False),
    visit("vs-1", V1, "pt-1", "amina", campaign_id="cp-1"), referral("rf-1", V1, "pt-1", "amina"),
    referral("rf-2", V1, "pt-2", "amina"),
    household("hh-2", V2, "bashir"), patient("pt-3", V2, True, "bashir"), visit("vs-3", V2, "pt-3", "bashir"),
    household("hh-9", V9, "zed"),
    campaign("cp-1", "omar", ["north/d1"], ["amina"]), campaign("cp-2", "zed", ["south"], []),
    review("rv-1", "vs-1", "amina", V1), review("rv-3", "vs-3", "bashir", V2),
    {"_id": "_design/app", "language": "javascript", "views": {}},
]
# Written by server code (no schema check): a document with no type has no key.
MISC = {"_id": "misc-1", "note": "no type: only admins see it"}
ALL_IDS = sorted(d["_id"] for d in [*DOCS, MISC])
# What each user sees (docs/access.md "Keys of a user" applied to DOCS).
SEES = {
    "amina": {"hh-1", "pt-1", "pt-2", "vs-1", "rf-1", "rf-2", "cp-1", "rv-1", "_design/app"},
    "bashir": {"hh-2", "pt-3", "vs-3", "cp-1", "rv-3", "_design/app"},
    "sara": {"hh-1", "pt-1", "pt-2", "vs-1", "rf-1", "rf-2", "hh-2", "pt-3", "vs-3", "cp-1", "rv-1", "rv-3",
             "_design/app"},
    "clara": {"rf-1", "rf-2", "pt-1", "vs-1", "_design/app"},  # pt-2 did not consent
    "omar": {"cp-1", "vs-1", "_design/app"},
    "admin": set(ALL_IDS),
}


@dataclass
class World:
    """The app, an admin client, and the revs of the documents written."""

    app: Flask
    admin: FlaskClient
    revs: dict[str, str]

    def client(self, name: str) -> FlaskClient:
        """A client signed in as ``name`` (Basic auth on every request)."""
        c = self.app.test_client()
        if name != "admin":
            c.environ_base["HTTP_AUTHORIZATION"] = basic(name)["Authorization"]
        else:
            c.environ_base["HTTP_AUTHORIZATION"] = basic("admin", "secret")["Authorization"]
        return c


def make_world(app: Flask, admin: FlaskClient) -> World:
    """Areas, users, assignments, the records database and DOCS (two with photos)."""
    with app.app_context():
        for path, kind in AREAS:
            access.add_area(path, kind, path.rsplit("/", 1)[-1], actor="admin")
        for name, (role, area, kind) in USERS.items():
            access.add_user(name, password(name), [role], actor="admin")
            if area is not None:
                access.assign(name, area, kind, actor="admin")
    assert admin.put(f"/couch/{DB}").status_code == 201
    written = admin.post(f"/couch/{DB}/_bulk_docs", json={"docs": DOCS}).get_json()
    assert all("rev" in item for item in written), written
    revs = {item["id"]: item["rev"] for item in written}
    with app.app_context():
        [misc] = bulk_docs(DB, [MISC])
        revs["misc-1"] = misc["rev"]
    photo = {"p.png": {"content_type": "image/png", "data": base64.b64encode(PHOTO).decode()}}
    for doc_id in ("vs-1", "vs-3"):
        doc = admin.get(f"/couch/{DB}/{doc_id}").get_json()
        done = admin.put(f"/couch/{DB}/{doc_id}", json={**doc, "_attachments": photo})
        assert done.status_code == 201, done.get_json()
        revs[doc_id] = done.get_json()["rev"]
    return World(app, admin, revs)


@pytest.fixture
def world(app: Flask, client: FlaskClient) -> World:
    """The shared world on SQLite and PostgreSQL."""
    return make_world(app, client)


@pytest.fixture
def ctx(world: World) -> Iterator[World]:
    with world.app.app_context():
        yield world


def index_rows() -> dict[str, tuple[set[str], set[int]]]:
    """doc id -> (its keys, the seqs of its rows)."""
    rows = db.session.execute(db.select(Document.doc_id, ScopeKey.key, ScopeKey.seq)
                              .join(ScopeKey, ScopeKey.document_id == Document.id))
    found: dict[str, tuple[set[str], set[int]]] = {}
    for doc_id, key, seq in rows:
        found.setdefault(doc_id, (set(), set()))
        found[doc_id][0].add(key)
        found[doc_id][1].add(seq)
    return found


def doc_seqs() -> dict[str, int]:
    return dict(db.session.execute(db.select(Document.doc_id, Document.seq)).all())


# ------------------------------------------------------------------------------------------------- tests
def test_every_document_has_its_keys_at_its_seq(ctx: World) -> None:
    rows, seqs = index_rows(), doc_seqs()
    expected = {d["_id"]: set(doc_keys(d)) for d in DOCS if doc_keys(d)}
    assert {doc_id: keys for doc_id, (keys, _) in rows.items()} == expected
    assert all(found == {seqs[doc_id]} for doc_id, (_, found) in rows.items())
    assert "misc-1" not in rows  # no type, no key: only admins see it
    assert rows["vs-1"][0] == {"area:north", "area:north/d1", f"area:{V1}", "patient:pt-1", "campaign:cp-1"}


def test_an_edit_moves_the_keys_and_a_deletion_keeps_them(ctx: World) -> None:
    admin = ctx.admin
    doc = admin.get(f"/couch/{DB}/hh-1").get_json()
    moved = admin.put(f"/couch/{DB}/hh-1", json={**doc, "area": V2}).get_json()
    rows, seqs = index_rows(), doc_seqs()
    assert rows["hh-1"] == ({"area:north", "area:north/d1", f"area:{V2}"}, {seqs["hh-1"]})
    gone = admin.delete(f"/couch/{DB}/hh-1?rev={moved['rev']}")
    assert gone.status_code == 200
    rows, seqs = index_rows(), doc_seqs()
    # The tombstone keeps the keys of the last live body, at the deletion's seq.
    assert rows["hh-1"] == ({"area:north", "area:north/d1", f"area:{V2}"}, {seqs["hh-1"]})


def test_a_losing_conflict_branch_leaves_the_winners_keys(ctx: World) -> None:
    admin = ctx.admin
    rev = ctx.revs["hh-2"]
    branch = {**household("hh-2", V1), "_rev": "2-" + "0" * 32, "_revisions": {"start": 2,
                                                                               "ids": ["0" * 32, rev[2:]]}}
    winner = {**household("hh-2", V2, "bashir"), "_rev": "2-" + "f" * 32,
              "_revisions": {"start": 2, "ids": ["f" * 32, rev[2:]]}}
    assert admin.post(f"/couch/{DB}/_bulk_docs", json={"docs": [winner, branch], "new_edits": False}
                      ).get_json() == []
    assert index_rows()["hh-2"][0] == {"area:north", "area:north/d1", f"area:{V2}"}


def test_only_the_records_database_is_indexed(ctx: World) -> None:
    ctx.admin.put("/couch/other")
    assert ctx.admin.post("/couch/other/_bulk_docs", json={"docs": [household("x-1", V1)]}).status_code == 201
    indexed = db.session.scalars(db.select(ScopedDatabase.database_id)).all()
    assert len(indexed) == 1
    assert "x-1" not in index_rows()


def test_enable_builds_the_index_of_what_the_database_holds(ctx: World) -> None:
    db.session.execute(db.delete(ScopedDatabase))
    db.session.execute(db.delete(ScopeKey))
    db.session.commit()
    assert scopeindex.enable(DB) is True and scopeindex.enable(DB) is False
    expected = {d["_id"]: set(doc_keys(d)) for d in DOCS if doc_keys(d)}
    assert {doc_id: keys for doc_id, (keys, _) in index_rows().items()} == expected
    assert scopeindex.rebuild(DB) == sum(len(keys) for keys in expected.values())


def test_rebuild_reports_its_progress_chunk_by_chunk(ctx: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `wasl scope rebuild` draws its bar from: every stored document read, once."""
    monkeypatch.setattr(scopeindex, "REBUILD_CHUNK", 2)
    steps: list[int] = []
    rows = scopeindex.rebuild(DB, progress=steps.append)
    stored = db.session.scalar(db.select(db.func.count()).select_from(Document))
    assert sum(steps) == stored and len(steps) == -(-stored // 2) and set(steps) <= {1, 2}
    assert rows == sum(len(keys) for keys, _ in index_rows().values())
