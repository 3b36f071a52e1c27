"""The village of the crash scenario: CHWs, shared households and patients, two duplicate pairs, and edits."""
from __future__ import annotations

import random
from typing import Any

from sync.access import add_area, add_user, assign

Doc = dict[str, Any]
VILLAGE = "north/d1/v1"
CHWS = {"amina": "pw-amina", "baraka": "pw-baraka", "chausiku": "pw-chausiku"}
SUPERVISOR = "admin"
HOUSEHOLDS = 4
# (given, family, sex, birth date): the first two pairs are one person registered twice (score 0.80).
PEOPLE = [("Halima", "Juma", "female", "1984-03-02"), ("Halima", "Juma", "female", "1984-03-02"),
          ("Omari", "Said", "male", "1979-11-20"), ("Omari", "Said", "male", "1979-11-20"),
          ("Neema", "Kiprono", "female", "1992-06-14"), ("Wanjiru", "Mwangi", "female", "2001-01-09"),
          ("Tumaini", "Otieno", "male", "1968-08-30"), ("Zawadi", "Achieng", "female", "1995-12-01"),
          ("Baraka", "Njoroge", "male", "2010-04-22"), ("Amani", "Wekesa", "male", "1987-02-17")]
DUPLICATE_PAIRS = [("patient-00", "patient-01"), ("patient-02", "patient-03")]
CONDITIONS = ("hypertension", "diabetes", "asthma", "hiv", "tb", "epilepsy")


def setup_village() -> None:
    """Areas down to the village and the CHWs working in it (call in an app context)."""
    for path, kind in (("north", "region"), ("north/d1", "district"), (VILLAGE, "village")):
        add_area(path, kind, path.rsplit("/", 1)[-1], actor="test")
    for name, password in CHWS.items():
        add_user(name, password, ["chw"], actor="test")
        assign(name, VILLAGE, "works_in", actor="test")


def stamp(rng: random.Random) -> str:
    """An RFC 3339 time in November 2026 (random, so edits' ``updated_at`` order is mixed)."""
    return f"2026-11-{rng.randrange(10, 28):02d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z"


def initial_docs() -> list[Doc]:
    """Households and patients of the village, as the admin registers them."""
    when, docs = "2026-11-01T08:00:00Z", []
    for n in range(HOUSEHOLDS):
        docs.append({"_id": f"household-{n}", "type": "household", "area": VILLAGE, "name": f"House {n}",
                     "updated_at": when, "updated_by": SUPERVISOR})
    for n, (given, family, sex, born) in enumerate(PEOPLE):
        docs.append({"_id": f"patient-{n:02d}", "type": "patient", "area": VILLAGE,
                     "household_id": f"household-{n % HOUSEHOLDS}", "given_name": given, "family_name": family,
                     "sex": sex, "birth_date": born, "chronic_conditions": [], "updated_at": when,
                     "updated_by": SUPERVISOR})
    return docs


def patient_ids() -> list[str]:
    """The ids of every patient of the village."""
    return [f"patient-{n:02d}" for n in range(len(PEOPLE))]


def busy_patients() -> list[str]:
    """The patients every tablet keeps editing (the duplicates among them), so edits often meet as conflicts."""
    return patient_ids()[:4]


def new_visit(rng: random.Random, chw: str, number: int) -> Doc:
    """A new schema-valid visit by ``chw``; ids are unique per CHW."""
    when = stamp(rng)
    return {"_id": f"visit-{chw}-{number:03d}", "type": "visit", "area": VILLAGE,
            "patient_id": rng.choice(patient_ids()), "chw": chw, "kind": rng.choice(["routine", "screening"]),
            "visited_at": when, "observations": {"muac_mm": rng.randrange(90, 160)}, "updated_at": when,
            "updated_by": chw}


def edit_patient(rng: random.Random, body: Doc, chw: str) -> Doc:
    """An offline edit a CHW makes to a shared patient: phone, conditions or consent (never the name, so
    the duplicate pairs stay listed)."""
    out = {k: v for k, v in body.items() if k not in ("_conflicts", "_revisions")}
    roll = rng.random()
    if roll < 0.4:
        out["phone"] = f"+255 7{rng.randrange(10**8):08d}"
    elif roll < 0.8:
        out["chronic_conditions"] = sorted({*out.get("chronic_conditions", []), rng.choice(CONDITIONS)})
    else:
        out["consent"] = {"share_with_partners": rng.random() < 0.5}
    out["updated_at"], out["updated_by"] = stamp(rng), chw
    return out


def edit_visit(rng: random.Random, body: Doc) -> Doc:
    """The CHW who made a visit corrects its notes."""
    out = {k: v for k, v in body.items() if k not in ("_conflicts", "_revisions")}
    out["notes"] = f"checked again ({rng.randrange(1000)})"
    out["updated_at"] = stamp(rng)
    return out
