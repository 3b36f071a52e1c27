"""`wasl area`, `wasl assign`, `wasl unassign`, `wasl user list|disable`: rows, audit entries, plain errors."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask

import wasl_cli
from models import User, db
from models.access import Area, Assignment
from models.audit import AuditEntry
from sync import access

V12 = "north/district-3/village-12"


@pytest.fixture
def wasl(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Run ``wasl ARGS...`` against the test app."""
    monkeypatch.setattr(wasl_cli, "_app", lambda: app)
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(wasl_cli.main, list(args))
    yield run


@pytest.fixture
def users(app: Flask) -> None:
    with app.app_context():
        access.add_user("amina", "pw-amina-long", ["chw"], actor="admin")
        access.add_user("sam", "pw-sam-long", ["supervisor"], actor="admin")


def rows(app: Flask) -> dict[str, Any]:
    with app.app_context():
        names = {u.id: u.name for u in db.session.scalars(db.select(User))}
        return {"areas": sorted((a.path, a.kind, a.name, a.parent_path) for a in db.session.scalars(db.select(Area))),
                "assignments": sorted((names[a.user_id], a.area_path, a.kind)
                                      for a in db.session.scalars(db.select(Assignment))),
                "users": sorted((u.name, u.disabled) for u in db.session.scalars(db.select(User))),
                "audit": [(e.actor.split(":")[0], e.action, e.detail)
                          for e in db.session.scalars(db.select(AuditEntry).order_by(AuditEntry.id))]}


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def add_tree(wasl: Any) -> None:
    ok(wasl("area", "add", "north", "--kind", "region", "--name", "North"))
    ok(wasl("area", "add", "north/district-3", "--kind", "district", "--name", "District 3"))
    ok(wasl("area", "add", V12, "--kind", "village", "--name", "Village 12"))
    ok(wasl("area", "add", "north/district-3/clinic-a", "--kind", "facility", "--name", "Clinic A"))


def test_area_add_and_list_show_a_tree(app: Flask, wasl: Any) -> None:
    add_tree(wasl)
    assert ok(wasl("area", "list")).splitlines() == [
        "north  North (region)",
        "  north/district-3  District 3 (district)",
        "    north/district-3/clinic-a  Clinic A (facility)",
        f"    {V12}  Village 12 (village)"]
    state = rows(app)
    assert state["areas"] == [("north", "region", "North", None),
                              ("north/district-3", "district", "District 3", "north"),
                              ("north/district-3/clinic-a", "facility", "Clinic A", "north/district-3"),
                              (V12, "village", "Village 12", "north/district-3")]
    assert [(actor, action, detail["area"]) for actor, action, detail in state["audit"]] == [
        ("cli", "area.add", "north"), ("cli", "area.add", "north/district-3"), ("cli", "area.add", V12),
        ("cli", "area.add", "north/district-3/clinic-a")]


def test_area_list_when_empty_says_how_to_start(wasl: Any) -> None:
    assert "wasl area add" in ok(wasl("area", "list"))


def test_assign_unassign_and_user_list(app: Flask, wasl: Any, users: None) -> None:
    add_tree(wasl)
    assert ok(wasl("assign", "amina", V12, "--as", "works_in")).strip() == f"amina works_in {V12}"
    ok(wasl("assign", "sam", "north/district-3", "--as", "supervises"))
    assert rows(app)["assignments"] == [("amina", V12, "works_in"), ("sam", "north/district-3", "supervises")]
    listing = ok(wasl("user", "list")).splitlines()
    assert [line.split()[:3] for line in listing] == [
        ["admin", "_admin", "enabled"], ["amina", "chw", "enabled"], ["sam", "supervisor", "enabled"]]
    assert listing[1].endswith(f"works_in {V12}") and listing[0].endswith("-")
    assert "1 assignment" in ok(wasl("unassign", "amina", V12))
    assert rows(app)["assignments"] == [("sam", "north/district-3", "supervises")]
    actions = [(action, detail.get("user")) for _, action, detail in rows(app)["audit"] if action != "area.add"]
    assert actions == [("user.add", "amina"), ("user.add", "sam"), ("access.assign", "amina"),
                       ("access.assign", "sam"), ("access.unassign", "amina")]


def test_user_disable(app: Flask, wasl: Any, users: None) -> None:
    out = ok(wasl("user", "disable", "amina"))
    assert "user amina disabled; 0 devices refused" in out
    assert ("amina", True) in rows(app)["users"]
    assert rows(app)["audit"][-1] == ("cli", "user.disable", {"user": "amina", "devices": 0})
    assert "disabled" in ok(wasl("user", "list")).splitlines()[1]


BAD_INPUT = [
    (["area", "add", "north/district-9/village-1", "--kind", "village", "--name", "V1"],
     "No parent area 'north/district-9': add it first"),
    (["area", "add", "south", "--kind", "county", "--name", "S"], "Unknown area kind 'county': use one of region,"),
    (["area", "add", "South Coast", "--kind", "region", "--name", "S"], "'South Coast' is not an area path"),
    (["assign", "ghost", V12, "--as", "works_in"], "No user named 'ghost'"),
    (["assign", "sam", V12, "--as", "works_in"], "works_in is for a chw; sam has the roles supervisor"),
    (["assign", "amina", "north", "--as", "works_in"], "works_in needs a village; north is a region"),
    (["assign", "amina", "north", "--as", "boss"], "Unknown assignment 'boss'"),
    (["assign", "amina", "north/nowhere", "--as", "works_in"], "No area 'north/nowhere'"),
    (["unassign", "amina", V12], f"amina has no assignment to '{V12}'"),
    (["user", "disable", "ghost"], "No user named 'ghost'"),
    (["user", "disable", "admin"], "admin is the last enabled admin"),
]


def test_bad_input_is_one_plain_line_and_changes_nothing(app: Flask, wasl: Any, users: None,
                                                         subtests: pytest.Subtests) -> None:
    with app.app_context():
        access.add_area("north", "region", "North", actor="admin")
        access.add_area("north/district-3", "district", "District 3", actor="admin")
        access.add_area(V12, "village", "Village 12", actor="admin")
    before = rows(app)
    for args, message in BAD_INPUT:
        with subtests.test(args=" ".join(args)):
            result = wasl(*args)
            assert result.exit_code == 1, result.output
            lines = result.output.splitlines()
            assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines
            assert "Traceback" not in result.output
            assert rows(app) == before


def test_missing_options_are_usage_errors(wasl: Any) -> None:
    result = wasl("assign", "amina", V12)
    assert result.exit_code == 2 and "Missing option '--as'" in result.output
