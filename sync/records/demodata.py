"""The demo data set's documents, generated from a seed (pure: standard library and ``sync.revs``).

One region, three districts of eight villages, a health centre per district. Households
of 1 to 8 people, each with a birth date or an estimated age; routine, antenatal and
chronic follow-up visits over the last 120 days; a running hypertension and diabetes
screening campaign in two districts whose coverage differs by village and is lower for
men, so the progress page shows gaps; referrals for flagged visits, many marked received
or completed by the clinician; reviews of older visits. Every document is valid
(docs/records.md) and carries a replicated revision (``_rev`` with ``_revisions``).
``generate`` gives the same documents for the same seed and base date.
"""
from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sync.revs import new_rev_hash

Json = dict[str, Any]
REGION = "sahel"
DISTRICTS = ("amara", "birni", "dunya")
VILLAGES = ("tessa", "kolo", "garin-ali", "sabon-gari", "dan-kali", "rafi", "gidan-bako", "tudun-wada")
CAMPAIGN_ID = "campaign-demo-htn-dm"
CAMPAIGN_DISTRICTS = ("amara", "birni")
FEMALE = ("Fatima", "Aisha", "Khadija", "Mariam", "Amina", "Zainab", "Hawa", "Halima", "Safiya", "Hadiza", "Binta",
          "Jamila", "Salamatu", "Rahma", "Asma")
MALE = ("Mohammed", "Ibrahim", "Abdullahi", "Musa", "Yusuf", "Usman", "Aliyu", "Haruna", "Sani", "Bello", "Idris",
        "Suleiman", "Abubakar", "Hassan", "Umar")
FAMILY = ("Abdullahi", "Bello", "Garba", "Ibrahim", "Musa", "Sani", "Yakubu", "Aliyu", "Danjuma", "Lawal", "Tanko",
          "Adamu", "Issoufou", "Maiga", "Toure", "Diallo")
# The same name as another CHW may write it: found again by the duplicate search.
VARIANTS = {"Mohammed": "Muhammad", "Fatima": "Fatimah", "Aisha": "Aicha", "Ibrahim": "Ebrahim", "Yusuf": "Yousef",
            "Umar": "Omar", "Khadija": "Khadijah", "Zainab": "Zeinab", "Mariam": "Maryam", "Hassan": "Hasan",
            "Abubakar": "Abu Bakr", "Amina": "Aminah", "Halima": "Halimah", "Musa": "Moussa", "Idris": "Idriss"}
LANDMARKS = ("the well", "the mosque", "the market", "the school", "the mill", "the water tower")


@dataclass(frozen=True)
class Layout:
    """Where everyone works: villages, their CHWs, facilities and supervisors."""

    villages: tuple[str, ...]
    chws: dict[str, tuple[str, ...]]  # village path -> CHW names
    facilities: dict[str, str]  # district path -> facility path

    @staticmethod
    def make() -> Layout:
        """The fixed demo layout (two CHWs in every other village)."""
        villages, chws, facilities = [], {}, {}
        for district in DISTRICTS:
            facilities[f"{REGION}/{district}"] = f"{REGION}/{district}/health-centre"
            for i, name in enumerate(VILLAGES):
                path = f"{REGION}/{district}/{name}"
                villages.append(path)
                chws[path] = (f"chw-{district}-{name}",) + ((f"chw-{district}-{name}-2",) if i % 2 else ())
        return Layout(tuple(villages), chws, facilities)


@dataclass
class DemoDocs:
    """The generated documents (replicated revisions, in write order) and what they hold."""

    docs: list[Json] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    patients: list[Json] = field(default_factory=list)  # first revisions, for conflicts and duplicates
    reviewable: list[Json] = field(default_factory=list)  # visits a supervisor reviews


def revision(body: Json, parent: Json | None = None) -> Json:
    """``body`` as a replicated revision: the first, or a child of ``parent`` (a revision from here)."""
    if parent is None:
        pos, ids, parent_rev = 1, [], None
    else:
        pos, ids = parent["_revisions"]["start"] + 1, parent["_revisions"]["ids"]
        parent_rev = (pos - 1, ids[0])
    rev_hash = new_rev_hash(False, parent_rev, body, [])
    return {**body, "_rev": f"{pos}-{rev_hash}", "_revisions": {"start": pos, "ids": [rev_hash, *ids]}}


def age_on(born: str | None, estimate: float | None, day: date) -> float:
    """Whole years on ``day`` from a birth date, else the estimated age."""
    if born is None:
        return float(estimate or 0)
    b = date.fromisoformat(born)
    return day.year - b.year - ((day.month, day.day) < (b.month, b.day))


class Maker:
    """Generates the households, patients, visits and referrals of the demo."""

    def __init__(self, households: int, seed: int, base: date, layout: Layout) -> None:
        self.rng, self.base, self.layout, self.households = random.Random(seed), base, layout, households
        self.out = DemoDocs()
        self.start = base - timedelta(days=30)
        self.coverage = {v: self.rng.uniform(0.15, 0.85) for v in layout.villages}

    def uid(self) -> str:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4).hex

    def stamp(self, day: date, minute: int | None = None) -> str:
        minute = self.rng.randint(7 * 60, 18 * 60) if minute is None else minute
        return f"{day.isoformat()}T{minute // 60:02d}:{minute % 60:02d}:00+01:00"

    def add(self, kind: str, body: Json, parent: Json | None = None) -> Json:
        doc = revision(body, parent)
        self.out.docs.append(doc)
        self.out.counts[kind] += 1
        return doc

    def person(self, village: str, chw: str, household: str, family: str, sex: str, age: int, day: date) -> Json:
        given = self.rng.choice(FEMALE if sex == "female" else MALE)
        doc: Json = {"_id": self.uid(), "type": "patient", "area": village, "household_id": household,
                     "given_name": given, "family_name": family, "sex": sex, "updated_at": self.stamp(day),
                     "updated_by": chw, "consent": {"share_with_partners": self.rng.random() < 0.65}}
        if self.rng.random() < 0.8:
            born = self.base - timedelta(days=int(age * 365.25) + self.rng.randint(0, 364))
            doc["birth_date"] = born.isoformat()
        else:
            doc["estimated_age_years"] = age
        if age >= 18 and self.rng.random() < 0.6:
            doc["phone"] = f"+227 9{self.rng.randint(0, 9)} {self.rng.randint(100, 999)} {self.rng.randint(100, 999)}"
        conditions = [c for c, p, low in (("hypertension", 0.25, 40), ("diabetes", 0.1, 40)) if age >= low
                      and self.rng.random() < p]
        if conditions:
            doc["chronic_conditions"] = conditions
        return doc

    def household(self, number: int) -> None:
        village = self.layout.villages[number % len(self.layout.villages)]
        chws = self.layout.chws[village]
        chw, family, hh_id = chws[number % len(chws)], self.rng.choice(FAMILY), self.uid()
        day = self.base - timedelta(days=self.rng.randint(150, 700))
        head_sex = "male" if self.rng.random() < 0.75 else "female"
        ages = [(head_sex, self.rng.randint(25, 70))]
        if self.rng.random() < 0.8:
            ages.append(("female" if head_sex == "male" else "male", max(18, ages[0][1] + self.rng.randint(-12, 4))))
        ages += [(self.rng.choice(("female", "male")), self.rng.randint(0, 17)) for _ in range(self.rng.randint(0, 5))]
        if self.rng.random() < 0.15:
            ages.append((self.rng.choice(("female", "male")), self.rng.randint(60, 85)))
        people = [self.person(village, chw, hh_id, family, sex, age, day) for sex, age in ages]
        hh = {"_id": hh_id, "type": "household", "area": village, "name": f"{family} household",
              "landmark": f"near {self.rng.choice(LANDMARKS)}", "head_patient_id": people[0]["_id"],
              "gps": {"lat": round(13.5 + self.rng.uniform(-0.8, 0.8), 5),
                      "lon": round(2.1 + self.rng.uniform(-0.8, 0.8), 5), "accuracy_m": self.rng.randint(3, 40)},
              "updated_at": self.stamp(day), "updated_by": chw}
        self.add("households", hh)
        for person in people:
            self.out.patients.append(self.add("patients", person))
            self.visits(person, chw)

    def observations(self, age: float, kind: str) -> Json:
        rng, obs = self.rng, {}
        if age < 5:
            obs = {"muac_mm": rng.randint(100, 165), "weight_kg": round(rng.uniform(4, 18), 1),
                   "temperature_c": round(rng.uniform(36.2, 39.6), 1),
                   "malaria_rdt": "positive" if rng.random() < 0.15 else "negative"}
        elif age >= 15:
            systolic = int(rng.gauss(128 if kind != "screening" else 132, 19))
            obs = {"bp_systolic": min(max(systolic, 85), 220),
                   "bp_diastolic": min(max(int(systolic * 0.62 + rng.gauss(0, 8)), 50), 130),
                   "weight_kg": round(rng.uniform(45, 95), 1)}
            if kind in ("screening", "chronic_follow_up"):
                obs["glucose_mmol_l"] = round(min(max(rng.lognormvariate(1.75, 0.35), 3.0), 28.0), 1)
        if rng.random() < 0.2:
            obs["symptoms"] = sorted(set(rng.sample(("cough", "fever", "headache", "fatigue", "dizziness"), 2)))
        return obs

    def visits(self, patient: Json, chw: str) -> None:
        age = age_on(patient.get("birth_date"), patient.get("estimated_age_years"), self.base)
        kinds = ["routine"] * self.rng.choice((0, 1, 1, 1, 2))
        if patient["sex"] == "female" and 18 <= age <= 42 and self.rng.random() < 0.25:
            kinds.append("antenatal")
        if patient.get("chronic_conditions"):
            kinds.append("chronic_follow_up")
        for kind in kinds:
            self.visit(patient, chw, kind, self.base - timedelta(days=self.rng.randint(1, 120)))
        district = patient["area"].split("/")[1]
        start_age = age_on(patient.get("birth_date"), patient.get("estimated_age_years"), self.start)
        chance = self.coverage[patient["area"]] * (0.65 if patient["sex"] == "male" else 1.0)
        if district in CAMPAIGN_DISTRICTS and start_age >= 30 and self.rng.random() < chance:
            self.visit(patient, chw, "screening", self.start + timedelta(days=self.rng.randint(0, 29)))

    def visit(self, patient: Json, chw: str, kind: str, day: date) -> None:
        age = age_on(patient.get("birth_date"), patient.get("estimated_age_years"), day)
        obs = self.observations(age, kind)
        visit = {"_id": self.uid(), "type": "visit", "area": patient["area"], "patient_id": patient["_id"],
                 "household_id": patient["household_id"], "chw": chw, "visited_at": self.stamp(day), "kind": kind,
                 "observations": obs, "updated_at": self.stamp(day, 19 * 60), "updated_by": chw}
        if kind == "screening":
            visit["campaign_id"] = CAMPAIGN_ID
        self.add("visits", visit)
        high = (obs.get("bp_systolic", 0) >= 140 or obs.get("bp_diastolic", 0) >= 90
                or obs.get("glucose_mmol_l", 0) >= 11.1 or obs.get("malaria_rdt") == "positive"
                or obs.get("muac_mm", 999) < 115)
        if high and self.rng.random() < (0.85 if kind == "screening" else 0.5):
            self.referral(visit, obs, day)
        if (self.base - day).days > 10 and self.rng.random() < 0.12:
            self.out.reviewable.append(visit)

    def referral(self, visit: Json, obs: Json, day: date) -> None:
        district = "/".join(visit["area"].split("/")[:2])
        reason = (f"Blood pressure {obs['bp_systolic']}/{obs['bp_diastolic']}" if "bp_systolic" in obs else
                  "Malaria RDT positive" if obs.get("malaria_rdt") == "positive" else "Low MUAC")
        if obs.get("glucose_mmol_l", 0) >= 11.1:
            reason += f", glucose {obs['glucose_mmol_l']} mmol/L"
        urgent = obs.get("bp_systolic", 0) >= 180 or obs.get("glucose_mmol_l", 0) >= 20
        made = self.stamp(day, 19 * 60 + 5)
        first = self.add("referrals", {
            "_id": self.uid(), "type": "referral", "area": visit["area"], "patient_id": visit["patient_id"],
            "visit_id": visit["_id"], "from_chw": visit["chw"], "to_facility": self.layout.facilities[district],
            "reason": reason, "urgency": "urgent" if urgent else "routine", "status": "open", "created_at": made,
            "updated_at": made, "updated_by": visit["chw"]})
        if district.split("/")[1] not in CAMPAIGN_DISTRICTS:
            return  # the demo clinician serves the campaign districts' health centres
        age, roll = (self.base - day).days, self.rng.random()
        status = "completed" if age > 10 and roll < 0.55 else "received" if age > 2 and roll < 0.8 else None
        if status is not None:
            seen = min(day + timedelta(days=self.rng.randint(1, 6)), self.base)
            note = "Seen at the health centre; treatment started." if status == "completed" else "Arrived."
            self.add("referral updates", {**{k: v for k, v in first.items() if not k.startswith("_rev")},
                                          "status": status, "status_note": note, "updated_at": self.stamp(seen),
                                          "updated_by": "clinician"}, first)


def generate(households: int, seed: int, base: date) -> DemoDocs:
    """The demo's households and everything in them, for ``households`` households."""
    maker = Maker(households, seed, base, Layout.make())
    for number in range(households):
        maker.household(number)
    return maker.out
