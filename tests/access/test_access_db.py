"""Areas, assignments, accounts and scopes over the database, on SQLite and PostgreSQL."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from models import User, db
from models.access import Area, Assignment
from models.audit import AuditEntry
from sync import access
from sync.devices import create_code, enrol
from sync.errors import CouchError
from sync.scope import NO_SCOPE

V12 = "north/district-3/village-12"
AREAS = [("north", "region", "North"), ("north/district-3", "district", "District 3"),
         (V12, "village", "Village 12"), ("north/district-3/village-13", "village", "Village 13"),
         ("north/district-3/clinic-a", "facility", "Clinic A"), (f"{V12}/post-1", "facility", "Health post 1"),
         ("north-east", "region", "North-East")]


@pytest.fixture
def ctx(app: Flask) -> Iterator[Flask]:
    with app.app_context():
        yield app


@pytest.fixture
def world(ctx: Flask) -> Flask:
    """A small tree of areas and one user of each role."""
    for path, kind, name in AREAS:
        access.add_area(path, kind, name, actor="admin")
    for name, role in (("amina", "chw"), ("sam", "supervisor"), ("carla", "clinician"), ("olu", "organiser")):
        access.add_user(name, f"pw-{name}-long", [role], actor="admin")
    return ctx


def snapshot() -> tuple[Any, ...]:
    """Every row the access functions write."""
    db.session.rollback()
    return (sorted((a.path, a.kind, a.name, a.parent_path) for a in db.session.scalars(db.select(Area))),
            sorted((a.user_id, a.area_path, a.kind) for a in db.session.scalars(db.select(Assignment))),
            sorted((u.name, tuple(u.roles), u.disabled) for u in db.session.scalars(db.select(User))),
            db.session.scalar(db.select(db.func.count()).select_from(AuditEntry)))


def audits(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(db.select(AuditEntry).where(AuditEntry.action == action)
                                   .order_by(AuditEntry.id)))


def test_areas_form_a_tree_listed_parents_first(world: Flask) -> None:
    listed = [(a.path, a.kind, a.name, a.parent_path) for a in access.list_areas()]
    assert listed == [("north", "region", "North", None),
                      ("north/district-3", "district", "District 3", "north"),
                      ("north/district-3/clinic-a", "facility", "Clinic A", "north/district-3"),
                      (V12, "village", "Village 12", "north/district-3"),
                      (f"{V12}/post-1", "facility", "Health post 1", V12),
                      ("north/district-3/village-13", "village", "Village 13", "north/district-3"),
                      ("north-east", "region", "North-East", None)]
    entries = audits("area.add")
    assert [(e.actor, e.detail["area"], e.detail["kind"]) for e in entries] == [("admin", p, k) for p, k, _ in AREAS]


BAD_AREAS = [
    ("north/district-9/village-1", "village", "V", "No parent area 'north/district-9': add it first"),
    ("north/district-4", "county", "C", "Unknown area kind 'county'"),
    ("North/District 4", "district", "D", "is not an area path"),
    ("north/district-3/village-12/post-1/x", "facility", "F", "is not an area path"),
    ("north/district-4", "region", "R", "A region is a root"),
    ("south", "district", "D", "A district sits under a region: its path needs a parent"),
    ("north/village-1", "village", "V", "A village sits under a district; north is a region"),
    ("north/district-3/clinic-a/room-1", "facility", "F",
     "A facility sits under a district or a village; north/district-3/clinic-a is a facility"),
    ("north/district-3", "district", "Again", "Area 'north/district-3' already exists"),
    ("north/district-4", "district", "  ", "display name"),
]


def test_bad_areas_are_refused_and_change_nothing(world: Flask, subtests: pytest.Subtests) -> None:
    before = snapshot()
    for path, kind, name, error in BAD_AREAS:
        with subtests.test(path=path, kind=kind):
            with pytest.raises(CouchError) as refused:
                access.add_area(path, kind, name, actor="admin")
            assert error in refused.value.reason
            assert snapshot() == before


def test_assign_and_unassign(world: Flask) -> None:
    access.assign("amina", V12, "works_in", actor="admin")
    access.assign("amina", "north/district-3/village-13", "works_in", actor="admin")
    access.assign("sam", "north/district-3", "supervises", actor="admin")
    access.assign("carla", "north/district-3/clinic-a", "clinic", actor="admin")
    assert access.assignments_of("amina") == [(V12, "works_in"), ("north/district-3/village-13", "works_in")]
    assert access.unassign("amina", "north/district-3/village-13", actor="admin") == 1
    assert access.assignments_of("amina") == [(V12, "works_in")]
    assert [(e.detail["user"], e.detail["area"], e.detail["kind"]) for e in audits("access.assign")] == [
        ("amina", V12, "works_in"), ("amina", "north/district-3/village-13", "works_in"),
        ("sam", "north/district-3", "supervises"), ("carla", "north/district-3/clinic-a", "clinic")]
    assert [(e.detail["user"], e.detail["area"], e.detail["removed"]) for e in audits("access.unassign")] == [
        ("amina", "north/district-3/village-13", 1)]


BAD_ASSIGNMENTS = [
    ("amina", "north/district-3", "works_in", "works_in needs a village; north/district-3 is a district"),
    ("carla", V12, "clinic", "clinic needs a facility"),
    ("sam", V12, "works_in", "works_in is for a chw; sam has the roles supervisor"),
    ("amina", "north", "supervises", "supervises is for a supervisor"),
    ("olu", V12, "works_in", "works_in is for a chw"),
    ("ghost", V12, "works_in", "No user named 'ghost'"),
    ("amina", "north/district-3/village-99", "works_in", "No area 'north/district-3/village-99'"),
    ("amina", V12, "lives_in", "Unknown assignment 'lives_in'"),
    ("amina", V12, "works_in", "already assigned"),
]


def test_bad_assignments_are_refused_and_change_nothing(world: Flask, subtests: pytest.Subtests) -> None:
    access.assign("amina", V12, "works_in", actor="admin")
    before = snapshot()
    for user, area, kind, error in BAD_ASSIGNMENTS:
        with subtests.test(user=user, area=area, kind=kind):
            with pytest.raises(CouchError) as refused:
                access.assign(user, area, kind, actor="admin")
            assert error in refused.value.reason
            assert snapshot() == before


def test_unassigning_nothing_is_an_error(world: Flask) -> None:
    before = snapshot()
    for user, area, kind in (("amina", V12, None), ("ghost", V12, None), ("amina", V12, "nope")):
        with pytest.raises(CouchError):
            access.unassign(user, area, kind, actor="admin")
    assert snapshot() == before


def test_scope_of_reads_roles_and_assignments(world: Flask) -> None:
    access.assign("amina", V12, "works_in", actor="admin")
    access.assign("sam", "north/district-3", "supervises", actor="admin")
    access.assign("carla", "north/district-3/clinic-a", "clinic", actor="admin")
    assert access.scope_of("amina").keys == frozenset({f"area:{V12}", "reach:north", "reach:north/district-3",
                                                       f"reach:{V12}", "user:amina", "all"})
    assert access.scope_of("amina").works_in == frozenset({V12})
    assert "area:north/district-3" in access.scope_of("sam").keys
    assert access.scope_of("carla", consented_patient_ids=["p1"]).keys == frozenset(
        {"facility:north/district-3/clinic-a", "patient:p1", "all"})
    assert access.scope_of("olu", organised_campaigns=["c1"]).keys == frozenset(
        {"organiser:olu", "campaign:c1", "all"})
    assert access.scope_of("admin").all is True
    access.disable_user("amina", actor="admin")
    assert access.scope_of("amina") == NO_SCOPE
    with pytest.raises(CouchError):
        access.scope_of("ghost")


def test_users_are_added_listed_and_disabled(world: Flask) -> None:
    access.assign("amina", V12, "works_in", actor="admin")
    listed = {u.name: u for u in access.list_users()}
    assert sorted(listed) == ["admin", "amina", "carla", "olu", "sam"]
    assert listed["amina"].roles == ("chw",) and listed["amina"].assignments == ((V12, "works_in"),)
    assert listed["admin"].roles == ("_admin",) and not listed["admin"].disabled
    assert access.disable_user("amina", actor="admin") == 0
    assert {u.name: u.disabled for u in access.list_users()}["amina"] is True
    assert [(e.actor, e.detail) for e in audits("user.disable")] == [("admin", {"user": "amina", "devices": 0})]
    assert [e.detail for e in audits("user.add")][0] == {"user": "amina", "roles": ["chw"]}
    assert all("pw-" not in repr(e.detail) for e in db.session.scalars(db.select(AuditEntry)))


BAD_USERS = [
    ("amina", "long-enough", ["chw"], "already exists"),
    ("bad name", "long-enough", ["chw"], "A user name is"),
    ("a:b", "long-enough", ["chw"], "A user name is"),
    ("newbie", "long-enough", ["doctor"], "Unknown role 'doctor'"),
    ("newbie", "long-enough", [], "A user needs a role"),
    ("newbie", "short", ["chw"], "at least 8 characters"),
]


def test_bad_users_are_refused_and_change_nothing(world: Flask, subtests: pytest.Subtests) -> None:
    before = snapshot()
    for name, password, roles, error in BAD_USERS:
        with subtests.test(name=name, roles=roles):
            with pytest.raises(CouchError) as refused:
                access.add_user(name, password, roles, actor="admin")
            assert error in refused.value.reason
            assert snapshot() == before


def test_the_last_admin_cannot_be_disabled(world: Flask) -> None:
    before = snapshot()
    with pytest.raises(CouchError) as refused:
        access.disable_user("admin", actor="admin")
    assert "last enabled admin" in refused.value.reason and snapshot() == before
    access.add_user("root", "another-admin", ["admin"], actor="admin")
    access.disable_user("admin", actor="root")
    with pytest.raises(CouchError, match="already disabled"):
        access.disable_user("admin", actor="root")


def test_a_disabled_users_devices_and_sessions_are_refused(world: Flask) -> None:
    info, token = enrol(create_code("amina"), "tablet 3")
    anon: FlaskClient = world.test_client()
    bearer = {"Authorization": f"Bearer {token}"}
    assert anon.get("/couch/_all_dbs", headers=bearer).status_code == 200
    assert anon.post("/couch/_session", data={"name": "amina", "password": "pw-amina-long"}).status_code == 200
    assert anon.get("/couch/_session").get_json()["userCtx"]["name"] == "amina"
    assert access.disable_user("amina", actor="admin") == 1
    refused = anon.get("/couch/_all_dbs", headers=bearer)
    assert refused.status_code == 401 and refused.get_json()["error"] == "unauthorized"
    assert anon.get("/couch/_session").get_json()["userCtx"]["name"] is None  # the cookie no longer signs in
    assert anon.get("/couch/_all_dbs").status_code == 401
    status = anon.get("/api/v1/devices/me", headers=bearer).get_json()
    assert status["device_id"] == info.device_id and status["status"] == "active"  # not wiped: retire to wipe
