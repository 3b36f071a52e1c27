"""What the simulated CHWs of the fleet write: households, patients, visits, edits of shared records.

Every body passes the records database's schema and a CHW's write rules (docs/records.md,
docs/access.md): the area is the CHW's village, ``updated_by`` is the CHW, a visit's ``chw``
is the CHW. Shared records (households, patients) are edited field by field, so two tablets
of a village that edit one record between syncs make a conflict for the server to resolve:
on different fields an automatic merge, on the same field a recorded conflict.
bench/fleet.mjs writes the same kinds of documents from PouchDB. Pure: standard library only.
"""
from __future__ import annotations

import random
import uuid
from datetime import datetime, timezone
from typing import Any

Doc = dict[str, Any]
GIVEN = ("Amina", "Halima", "Fatuma", "Zawadi", "Baraka", "Juma", "Omar", "Neema", "Said", "Mwajuma", "Ali", "Rehema")
FAMILY = ("Banda", "Phiri", "Mwale", "Otieno", "Hassan", "Njoroge", "Kamau", "Abdi", "Wanjiku", "Mohamed")
CONDITIONS = ("hypertension", "diabetes", "asthma", "hiv", "epilepsy", "tb")
SYMPTOMS = ("fever", "cough", "rash", "diarrhoea", "vomiting", "headache")
KINDS = ("routine", "antenatal", "chronic_follow_up", "screening")


def now() -> str:
    """The current time as RFC 3339 with a ``Z`` offset and milliseconds (``updated_at``)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id(rng: random.Random) -> str:
    """A random UUID drawn from ``rng`` (ids carry no personal data)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def household(rng: random.Random, village: str, user: str) -> Doc:
    """A new household of ``village``."""
    return {"_id": new_id(rng), "type": "household", "area": village, "name": f"House of {rng.choice(FAMILY)}",
            "landmark": rng.choice(("by the well", "near the school", "behind the mosque", "at the market")),
            "gps": {"lat": round(rng.uniform(-4.5, -1.0), 5), "lon": round(rng.uniform(36.0, 40.0), 5)},
            "updated_at": now(), "updated_by": user}


def patient(rng: random.Random, village: str, user: str, household_id: str) -> Doc:
    """A new patient of ``household_id``."""
    return {"_id": new_id(rng), "type": "patient", "area": village, "household_id": household_id,
            "given_name": rng.choice(GIVEN), "family_name": rng.choice(FAMILY),
            "sex": rng.choice(("female", "male")), "estimated_age_years": rng.randrange(1, 80),
            "consent": {"share_with_partners": rng.random() < 0.5},
            "chronic_conditions": rng.sample(CONDITIONS, rng.randrange(0, 2)),
            "updated_at": now(), "updated_by": user}


def visit(rng: random.Random, village: str, user: str, patient_id: str) -> Doc:
    """A new visit by ``user`` to ``patient_id``."""
    obs: Doc = {"temperature_c": round(rng.uniform(36.0, 40.0), 1), "weight_kg": round(rng.uniform(3, 90), 1),
                "symptoms": rng.sample(SYMPTOMS, rng.randrange(0, 3))}
    if rng.random() < 0.5:
        obs["bp_systolic"], obs["bp_diastolic"] = rng.randrange(95, 190), rng.randrange(60, 115)
    stamp = now()
    return {"_id": new_id(rng), "type": "visit", "area": village, "patient_id": patient_id, "chw": user,
            "visited_at": stamp, "kind": rng.choice(KINDS), "observations": obs,
            "notes": "counselled; follow up in two weeks", "updated_at": stamp, "updated_by": user}


def edit(rng: random.Random, doc: Doc, user: str) -> Doc:
    """A new body for the shared record ``doc`` (its winner, with ``_rev``): one or two fields changed."""
    body = {k: v for k, v in doc.items() if k not in ("_conflicts", "_attachments", "_revisions")}
    if doc.get("type") == "household":
        choices = ["landmark", "gps", "name"]
    else:
        choices = ["phone", "chronic_conditions", "family_name", "estimated_age_years", "consent"]
    for field in rng.sample(choices, rng.randrange(1, 3)):
        if field == "landmark":
            body["landmark"] = f"{rng.choice(('by', 'near', 'behind'))} the {rng.choice(('tree', 'church', 'pump'))}"
        elif field == "gps":
            body["gps"] = {"lat": round(rng.uniform(-4.5, -1.0), 5), "lon": round(rng.uniform(36.0, 40.0), 5)}
        elif field == "name":
            body["name"] = f"House of {rng.choice(FAMILY)}"
        elif field == "phone":
            body["phone"] = f"+254 7{rng.randrange(10**8):08d}"
        elif field == "chronic_conditions":
            body["chronic_conditions"] = sorted(set(body.get("chronic_conditions") or []) | {rng.choice(CONDITIONS)})
        elif field == "family_name":
            body["family_name"] = rng.choice(FAMILY)
        elif field == "estimated_age_years":
            body["estimated_age_years"] = rng.randrange(1, 80)
        else:
            body["consent"] = {"share_with_partners": rng.random() < 0.5}
    body["updated_at"], body["updated_by"] = now(), user
    return body


def seed_village(rng: random.Random, village: str, households: int, patients_each: int) -> list[Doc]:
    """The records a village starts with, registered by the admin before the tablets sync."""
    docs: list[Doc] = []
    for _ in range(households):
        home = household(rng, village, "admin")
        docs.append(home)
        docs += [patient(rng, village, "admin", home["_id"]) for _ in range(patients_each)]
    return docs
