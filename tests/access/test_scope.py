"""The pure scope rules: document keys, user keys, who sees what and who may write what."""
from __future__ import annotations

import ast
import pathlib
import sys
from typing import Any

import pytest

from sync.scope import NO_SCOPE, Scope, area_prefixes, doc_keys, is_area_path, may_write, user_keys

ROOT = pathlib.Path(__file__).resolve().parents[2]
V12, V13, FAR = "north/district-3/village-12", "north/district-3/village-13", "north/district-5/village-1"
CLINIC, OTHER_CLINIC = "north/district-3/clinic-a", "north/district-5/clinic-b"
IN_V12 = {"area:north", "area:north/district-3", f"area:{V12}"}

DOCS: dict[str, dict[str, Any]] = {
    "h1": {"_id": "h1", "type": "household", "area": V12, "name": "Odhiambo", "updated_by": "amina"},
    "h2": {"_id": "h2", "type": "household", "area": V13, "name": "Wanjiru", "updated_by": "bob"},
    "h3": {"_id": "h3", "type": "household", "area": FAR, "name": "Kamau", "updated_by": "bob"},
    "p1": {"_id": "p1", "type": "patient", "area": V12, "given_name": "Achieng", "updated_by": "amina"},
    "p2": {"_id": "p2", "type": "patient", "area": V13, "given_name": "Njeri", "updated_by": "bob"},
    "v1": {"_id": "v1", "type": "visit", "area": V12, "patient_id": "p1", "chw": "amina", "campaign_id": "c1",
           "updated_by": "amina"},
    "v3": {"_id": "v3", "type": "visit", "area": FAR, "patient_id": "p9", "chw": "bob", "updated_by": "bob"},
    "r1": {"_id": "r1", "type": "referral", "area": V12, "patient_id": "p1", "from_chw": "amina",
           "to_facility": CLINIC, "reason": "BP 180/110", "status": "open", "updated_by": "amina"},
    "r2": {"_id": "r2", "type": "referral", "area": FAR, "patient_id": "p9", "from_chw": "bob",
           "to_facility": OTHER_CLINIC, "reason": "fever", "status": "open", "updated_by": "bob"},
    "r4": {"_id": "r4", "type": "referral", "area": V13, "patient_id": "p2", "from_chw": "bob",
           "to_facility": CLINIC, "reason": "cough", "status": "open", "updated_by": "bob"},
    "c1": {"_id": "c1", "type": "campaign", "areas": ["north/district-3"], "chws": ["amina"], "organiser": "olu"},
    "c2": {"_id": "c2", "type": "campaign", "areas": [FAR], "chws": ["bob"], "organiser": "zed"},
    "c3": {"_id": "c3", "type": "campaign", "areas": ["north"], "chws": [], "organiser": "zed"},
    "c4": {"_id": "c4", "type": "campaign", "areas": ["north/district-5"], "organiser": "zed"},
    "rv1": {"_id": "rv1", "type": "review", "visit_id": "v1", "chw": "amina", "area": V12, "state": "approved"},
    "rv2": {"_id": "rv2", "type": "review", "visit_id": "v3", "chw": "bob", "state": "rejected"},
    "_design/app": {"_id": "_design/app", "views": {}},
    "thing": {"_id": "thing", "type": "thing", "area": V12},
}


@pytest.mark.parametrize(("doc_id", "keys"), [
    ("h1", IN_V12),
    ("p1", IN_V12 | {"patient:p1"}),
    ("v1", IN_V12 | {"patient:p1", "campaign:c1"}),
    ("v3", {"area:north", "area:north/district-5", f"area:{FAR}", "patient:p9"}),
    ("r1", IN_V12 | {"patient:p1", f"facility:{CLINIC}"}),
    ("c1", {"campaign:c1", "organiser:olu", "user:amina", "reach:north/district-3", "area:north",
            "area:north/district-3"}),
    ("c3", {"campaign:c3", "organiser:zed", "reach:north", "area:north"}),
    ("rv1", IN_V12 | {"user:amina"}),
    ("rv2", {"user:bob"}),
    ("_design/app", {"all"}),
    ("thing", set()),
])
def test_doc_keys_follow_the_grammar(doc_id: str, keys: set[str]) -> None:
    assert doc_keys(DOCS[doc_id]) == frozenset(keys)


@pytest.mark.parametrize("doc", [
    {"_id": "x", "area": V12},  # no type
    {"_id": "x", "type": "household"},  # no area
    {"_id": "x", "type": "household", "area": "North/District 3"},
    {"_id": "x", "type": "household", "area": "a/b/c/d/e"},
    {"_id": "x", "type": "household", "area": ["north"]},
    {"_id": "x", "type": ["household"], "area": V12},
    {"_id": "_local/x", "type": "thing"},
])
def test_doc_keys_of_a_document_without_recognisable_scope_are_empty(doc: dict[str, Any]) -> None:
    assert doc_keys(doc) == frozenset()


def test_doc_keys_ignore_values_of_the_wrong_type() -> None:
    doc = {"_id": "v", "type": "visit", "area": V12, "patient_id": 7, "campaign_id": None}
    assert doc_keys(doc) == frozenset(IN_V12)
    campaign = {"_id": "c", "type": "campaign", "areas": ["north", "Bad Area", 3], "chws": ["a", 5, ""],
                "organiser": {"name": "x"}}
    assert doc_keys(campaign) == frozenset({"campaign:c", "reach:north", "area:north", "user:a"})


USERS: dict[str, tuple[list[str], list[tuple[str, str]], dict[str, Any]]] = {
    "amina": (["chw"], [(V12, "works_in")], {}),
    "sam": (["supervisor"], [("north/district-3", "supervises")], {}),
    "carla": (["clinician"], [(CLINIC, "clinic")], {"consented_patient_ids": ["p1"]}),
    "olu": (["organiser"], [], {"organised_campaigns": ["c1"]}),
    "admin": (["_admin"], [], {}),
    "root": (["admin"], [], {}),
    "nobody": ([], [(V12, "works_in")], {}),
}


def scope(name: str) -> Scope:
    roles, assignments, extra = USERS[name]
    return user_keys(roles, assignments, name, **extra)


@pytest.mark.parametrize(("name", "keys"), [
    ("amina", {f"area:{V12}", "reach:north", "reach:north/district-3", f"reach:{V12}", "user:amina", "all"}),
    ("sam", {"area:north/district-3", "reach:north", "reach:north/district-3", "user:sam", "all"}),
    ("carla", {f"facility:{CLINIC}", "patient:p1", "all"}),
    ("olu", {"organiser:olu", "campaign:c1", "all"}),
    ("nobody", set()),
])
def test_user_keys_by_role(name: str, keys: set[str]) -> None:
    got = scope(name)
    assert got.all is False and got.keys == frozenset(keys)


def test_user_keys_of_admins_are_everything() -> None:
    assert scope("admin") == scope("root") == Scope(True, frozenset())


def test_user_keys_keep_the_places_a_user_writes_in() -> None:
    assert scope("amina").works_in == frozenset({V12}) and scope("amina").clinics == frozenset()
    assert scope("carla").clinics == frozenset({CLINIC}) and scope("sam").works_in == frozenset()


def test_user_keys_ignore_assignments_that_do_not_fit_the_roles() -> None:
    got = user_keys(["supervisor"], [(V12, "works_in"), (CLINIC, "clinic"), ("north", "supervises"),
                                     ("Not A Path", "supervises")], "sam")
    assert got.keys == frozenset({"area:north", "reach:north", "user:sam", "all"}) and got.works_in == frozenset()


def test_user_keys_of_several_roles_are_the_union() -> None:
    both = user_keys(["chw", "organiser"], [(V12, "works_in")], "amina", organised_campaigns=["c1"])
    assert both.keys == scope("amina").keys | {"organiser:amina", "campaign:c1"}


SEES = {  # what each user sees among DOCS
    "amina": {"h1", "p1", "v1", "r1", "c1", "c3", "rv1", "_design/app"},
    "sam": {"h1", "h2", "p1", "p2", "v1", "r1", "r4", "c1", "c3", "rv1", "_design/app"},
    "carla": {"p1", "v1", "r1", "r4", "_design/app"},
    "olu": {"v1", "c1", "_design/app"},
    "admin": set(DOCS),
    "nobody": set(),
}


@pytest.mark.parametrize("name", sorted(SEES))
def test_each_user_sees_exactly_their_scope(name: str) -> None:
    seen = {doc_id for doc_id, doc in DOCS.items() if scope(name).sees(doc_keys(doc))}
    assert seen == SEES[name]


def test_a_chw_does_not_see_the_rest_of_their_district_or_region() -> None:
    # Campaigns reach a CHW through reach:<ancestor>; records are matched by area: only.
    amina = scope("amina")
    assert "area:north" not in amina.keys and "area:north/district-3" not in amina.keys
    assert not amina.sees(doc_keys(DOCS["h2"])) and not amina.sees(doc_keys(DOCS["h3"]))
    assert not amina.sees(doc_keys(DOCS["c4"]))


def test_no_scope_sees_nothing() -> None:
    assert not NO_SCOPE.sees({"all", f"area:{V12}"})


@pytest.mark.parametrize(("path", "ok"), [
    ("north", True), ("north/district-3/village-12/post-1", True), ("a-1/b", True), ("", False),
    ("North", False), ("north/", False), ("/north", False), ("a/b/c/d/e", False), ("-a", False),
    ("a b", False), (None, False), ("x" * 201, False),
])
def test_is_area_path(path: Any, ok: bool) -> None:
    assert is_area_path(path) is ok


def test_area_prefixes() -> None:
    assert area_prefixes(V12) == ["north", "north/district-3", V12] and area_prefixes("north") == ["north"]


def edited(doc_id: str, **changes: Any) -> dict[str, Any]:
    return {**DOCS[doc_id], **changes}


def tomb(doc_id: str) -> dict[str, Any]:
    return {"_id": doc_id, "_rev": "2-a", "_deleted": True}


NEW_H = {"_id": "h9", "type": "household", "area": V12, "name": "New", "updated_by": "amina"}
OK = None
WRITES: list[tuple[str, dict[str, Any], dict[str, Any] | None, bool, str | None]] = [
    # CHW on a device
    ("amina", NEW_H, None, True, OK),
    ("amina", {**NEW_H, "area": V13}, None, True, "not one of your villages"),
    ("amina", {**NEW_H, "area": "north/district-3"}, None, True, "not one of your villages"),
    ("amina", {**NEW_H, "area": f"{V12}/hamlet-2"}, None, True, OK),
    ("amina", {**NEW_H, "updated_by": "bob"}, None, True, "`updated_by` must be your user name"),
    ("amina", {k: v for k, v in NEW_H.items() if k != "updated_by"}, None, True, "`updated_by`"),
    ("amina", edited("h1", name="Renamed"), DOCS["h1"], True, OK),
    ("amina", edited("h2", name="Renamed", updated_by="amina"), DOCS["h2"], True, "not one of your villages"),
    ("amina", edited("h2", area=V12, updated_by="amina"), DOCS["h2"], True, "not one of your villages"),
    ("amina", edited("h1", area=V13), DOCS["h1"], True, "not one of your villages"),
    ("amina", edited("p1", given_name="A."), DOCS["p1"], True, OK),
    ("amina", edited("p2", updated_by="amina"), DOCS["p2"], True, "not one of your villages"),
    ("amina", DOCS["v1"], None, True, OK),
    ("amina", edited("v1", chw="bob"), None, True, "`chw` must be your user name"),
    ("amina", edited("v1", updated_by="bob"), None, True, "`updated_by`"),
    ("amina", edited("v1", notes="x"), edited("v1", chw="bob"), True, "This visit belongs to another CHW"),
    ("amina", DOCS["r1"], None, True, OK),
    ("amina", edited("r1", from_chw="bob"), None, True, "`from_chw` must be your user name"),
    ("amina", edited("r1", to_facility=OTHER_CLINIC), DOCS["r1"], True, OK),
    ("amina", DOCS["c1"], None, True, "read-only on devices"),
    ("amina", DOCS["c1"], None, False, "A CHW writes only household"),
    ("amina", DOCS["rv1"], None, True, "read-only on devices"),
    ("amina", DOCS["_design/app"], None, True, "Only admins write design documents"),
    ("amina", DOCS["thing"], None, True, "A CHW writes only household"),
    ("amina", edited("p1", type="household"), DOCS["p1"], True, "type cannot change"),
    ("amina", {**NEW_H, "_id": "c1"}, DOCS["c1"], True, "read-only on devices"),
    ("amina", tomb("h1"), DOCS["h1"], True, OK),
    ("amina", tomb("h2"), DOCS["h2"], True, "not one of your villages"),
    ("amina", tomb("v1"), DOCS["v1"], True, OK),
    ("amina", tomb("v3"), DOCS["v3"], True, "not one of your villages"),
    ("amina", tomb("x1"), None, True, OK),
    ("amina", {**tomb("x2"), "type": "household", "area": V13}, None, True, "not one of your villages"),
    ("amina", tomb("c1"), DOCS["c1"], True, "read-only on devices"),
    # supervisor
    ("sam", edited("h1", updated_by="sam"), DOCS["h1"], False, "Supervisors write no documents"),
    ("sam", {**DOCS["rv1"], "reviewer": "sam"}, None, False, "Supervisors write no documents"),
    ("sam", DOCS["_design/app"], None, False, "Only admins write design documents"),
    # clinician, in a browser
    ("carla", edited("r1", status="received", updated_by="carla"), DOCS["r1"], False, OK),
    ("carla", edited("r4", status="completed", status_note="seen", updated_by="carla",
                     updated_at="2026-11-21T10:00:00Z"), DOCS["r4"], False, OK),
    ("carla", edited("r1", status="received", reason="other", updated_by="carla"), DOCS["r1"], False,
     "only status and status_note"),
    ("carla", {k: v for k, v in edited("r1", updated_by="carla").items() if k != "patient_id"}, DOCS["r1"], False,
     "only status and status_note"),
    ("carla", edited("r1", status="received"), DOCS["r1"], False, "`updated_by`"),
    ("carla", edited("r2", status="received", updated_by="carla"), DOCS["r2"], False, "not for your facility"),
    ("carla", edited("r2", to_facility=CLINIC, updated_by="carla"), DOCS["r2"], False, "not for your facility"),
    ("carla", edited("r1", to_facility=OTHER_CLINIC, updated_by="carla"), DOCS["r1"], False,
     "not for your facility"),
    ("carla", edited("r1", updated_by="carla"), None, False, "existing referral"),
    ("carla", tomb("r1"), DOCS["r1"], False, "existing referral"),
    ("carla", edited("h1", updated_by="carla"), DOCS["h1"], False, "A clinician writes only referrals"),
    ("carla", edited("v1", updated_by="carla"), DOCS["v1"], False, "A clinician writes only referrals"),
    # organiser, in a browser
    ("olu", edited("c1", name="Hypertension 2026"), DOCS["c1"], False, OK),
    ("olu", {"_id": "c9", "type": "campaign", "organiser": "olu", "areas": ["north"]}, None, False, OK),
    ("olu", tomb("c1"), DOCS["c1"], False, OK),
    ("olu", edited("c1"), DOCS["c1"], True, "read-only on devices"),
    ("olu", edited("c2", organiser="olu"), DOCS["c2"], False, "their own campaigns"),
    ("olu", edited("c1", organiser="zed"), DOCS["c1"], False, "their own campaigns"),
    ("olu", tomb("c2"), DOCS["c2"], False, "their own campaigns"),
    ("olu", DOCS["h1"], None, False, "An organiser writes only campaign documents"),
    ("olu", DOCS["rv1"], None, False, "An organiser writes only campaign documents"),
    # admins
    ("admin", edited("h3", name="Anything"), DOCS["h3"], False, OK),
    ("admin", DOCS["thing"], None, False, OK),
    ("admin", DOCS["c2"], None, False, OK),
    ("admin", DOCS["rv2"], None, False, OK),
    ("root", DOCS["_design/app"], None, False, OK),
    ("admin", DOCS["_design/app"], None, True, "Only admins write design documents, never from a device"),
    ("admin", DOCS["c2"], None, True, "read-only on devices"),
    ("root", edited("h3", name="Anything"), DOCS["h3"], True, OK),
    # no role
    ("nobody", NEW_H, None, True, "no role that writes documents"),
]


@pytest.mark.parametrize(("name", "doc", "old", "device", "expected"), WRITES)
def test_may_write(name: str, doc: dict[str, Any], old: dict[str, Any] | None, device: bool,
                   expected: str | None) -> None:
    roles = USERS[name][0]
    reason = may_write(roles, scope(name), name, doc, device=device, old=old)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason


def test_may_write_with_several_roles_allows_what_any_role_allows() -> None:
    both = user_keys(["chw", "organiser"], [(V12, "works_in")], "amina")
    own_campaign = {"_id": "c8", "type": "campaign", "organiser": "amina", "areas": [V12]}
    assert may_write(["chw", "organiser"], both, "amina", NEW_H, device=True) is None
    assert may_write(["chw", "organiser"], both, "amina", own_campaign, device=False) is None
    assert may_write(["chw", "organiser"], both, "amina", own_campaign, device=True) is not None
    assert "not one of your villages" in (may_write(["chw", "organiser"], both, "amina", {**NEW_H, "area": V13},
                                                    device=True) or "")


def test_may_write_does_not_change_its_inputs() -> None:
    doc, old = edited("r1", status="received", updated_by="carla"), DOCS["r1"]
    before = (repr(doc), repr(old))
    may_write(["clinician"], scope("carla"), "carla", doc, device=False, old=old)
    assert (repr(doc), repr(old)) == before


def test_scope_module_imports_only_the_standard_library() -> None:
    tree = ast.parse((ROOT / "sync" / "scope.py").read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names} == set()
