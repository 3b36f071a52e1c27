"""A CHW working in one village of the records database, and valid documents of that village."""
from __future__ import annotations

from typing import Any

from sync.access import add_area, add_user, assign

VILLAGE = "north/d1/v1"
WHEN = "2026-11-20T09:00:00Z"


def chw_in_village(name: str = "amina", password: str = "pw-amina") -> None:
    """Areas north > north/d1 > north/d1/v1, and the CHW ``name`` working in the village (call in an app context)."""
    for path, kind in (("north", "region"), ("north/d1", "district"), (VILLAGE, "village")):
        add_area(path, kind, path.rsplit("/", 1)[-1], actor="test")
    add_user(name, password, ["chw"], actor="test")
    assign(name, VILLAGE, "works_in", actor="test")


def visit(doc_id: str, chw: str = "amina", area: str = VILLAGE, **extra: Any) -> dict[str, Any]:
    """A schema-valid visit by ``chw`` in ``area``."""
    return {"_id": doc_id, "type": "visit", "area": area, "patient_id": "patient-9", "chw": chw, "kind": "routine",
            "visited_at": WHEN, "updated_at": WHEN, "updated_by": chw, **extra}


def patient(doc_id: str, area: str = VILLAGE) -> dict[str, Any]:
    """A schema-valid patient in ``area``, registered by the admin."""
    return {"_id": doc_id, "type": "patient", "area": area, "given_name": "Halima", "sex": "female",
            "estimated_age_years": 40, "updated_at": WHEN, "updated_by": "admin"}
