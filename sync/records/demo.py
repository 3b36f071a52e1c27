"""``wasl demo``: a demo data set in the records database, so every page has real content.

It adds the areas of ``sync.records.demodata`` (a region, three districts of eight villages,
a health centre each), the demo accounts (an organiser, a clinician at two health
centres, a supervisor per district, one or two CHWs per village), then writes the
generated documents with ``_bulk_docs`` and ``new_edits=false``, as tablets replicate
them: households, patients, visits, referrals, the running campaign, reviews; patients
edited on two branches (conflicts, some on one field); patients registered twice under a
transliterated name (duplicates); and a few invalid documents sent through the records
gate, which holds them in the quarantine. Then the worker projects everything (it also
resolves the conflicts and finds the duplicates).

Loading is idempotent: a ``_local`` marker records the seed, size and base date first and
``loaded`` at the end. A second run finds ``loaded`` and changes nothing; a run that
stopped halfway starts again from the marker's values, and writing the same revisions
again is a no-op. Demo passwords are fixed and printed: this is a data set to look at,
never one to load on a server with real patients.
"""
from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from .. import access
from ..errors import Conflict, FileExists, NotFound
from ..local import get_local, put_local
from ..store import create_database
from ..writes import bulk_docs
from . import demodata, worker
from .demodata import CAMPAIGN_DISTRICTS, CAMPAIGN_ID, DISTRICTS, REGION, VARIANTS, VILLAGES, DemoDocs, Layout
from .quarantine import RecordsGate
from .reviews import review_id

Json = dict[str, Any]
Progress = Callable[[str, int, int], None]  # (stage, done, total)
MARKER = "_local/wasl-demo"
ACTOR = "demo"
BATCH = 500
PASSWORDS = {"organiser": "demo-organiser", "clinician": "demo-clinician", "supervisor": "demo-supervisor",
             "chw": "demo-chw"}


@dataclass
class DemoResult:
    """What ``load_demo`` did: ``loaded`` False when the demo was already there."""

    loaded: bool
    accounts: list[tuple[str, str, str]]  # (role, name, password)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def accounts() -> list[tuple[str, str, str, list[tuple[str, str]]]]:
    """(role, name, password, assignments) of every demo account."""
    layout = Layout.make()
    out = [("organiser", "organiser", PASSWORDS["organiser"], []),
           ("clinician", "clinician", PASSWORDS["clinician"],
            [(layout.facilities[f"{REGION}/{d}"], "clinic") for d in CAMPAIGN_DISTRICTS])]
    out += [("supervisor", f"supervisor-{d}", PASSWORDS["supervisor"], [(f"{REGION}/{d}", "supervises")])
            for d in DISTRICTS]
    out += [("chw", name, PASSWORDS["chw"], [(village, "works_in")])
            for village, names in layout.chws.items() for name in names]
    return out


def _ignoring_existing(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Conflict:  # made by an earlier run
        pass


def _setup_access() -> None:
    """The demo's areas and accounts; those an earlier run made are left as they are."""
    _ignoring_existing(lambda: access.add_area(REGION, "region", REGION.title(), actor=ACTOR))
    for district in DISTRICTS:
        path = f"{REGION}/{district}"
        _ignoring_existing(lambda: access.add_area(path, "district", district.title(), actor=ACTOR))
        _ignoring_existing(lambda: access.add_area(f"{path}/health-centre", "facility",
                                                   f"{district.title()} health centre", actor=ACTOR))
        for village in VILLAGES:
            _ignoring_existing(lambda: access.add_area(f"{path}/{village}", "village",
                                                       village.replace("-", " ").title(), actor=ACTOR))
    for role, name, password, where in accounts():
        _ignoring_existing(lambda: access.add_user(name, password, [role], actor=ACTOR))
        for area, kind in where:
            _ignoring_existing(lambda: access.assign(name, area, kind, actor=ACTOR))


def _campaign(out: DemoDocs, base: date, layout: Layout) -> None:
    """The running campaign, its targets 60% of each district's eligible population."""
    start = base - timedelta(days=30)
    eligible: Counter[str] = Counter()
    for p in out.patients:
        district = p["area"].rsplit("/", 1)[0]
        born, estimate = p.get("birth_date"), p.get("estimated_age_years")
        age = demodata.age_on(born, estimate, start)
        if district.split("/")[1] in CAMPAIGN_DISTRICTS and age >= 30:
            eligible[district] += 1
    areas = [f"{REGION}/{d}" for d in CAMPAIGN_DISTRICTS]
    body = {"_id": CAMPAIGN_ID, "type": "campaign", "name": "Hypertension and diabetes screening",
            "condition": "hypertension and diabetes", "areas": areas, "start_date": start.isoformat(),
            "end_date": (base + timedelta(days=60)).isoformat(), "eligibility": {"min_age": 30},
            "fields": [{"field": "bp_systolic", "op": "gte", "value": 140, "refer": True},
                       {"field": "bp_diastolic", "op": "gte", "value": 90, "refer": True},
                       {"field": "glucose_mmol_l", "op": "gte", "value": 11.1, "refer": True}],
            "targets": {a: max(10, int(round(0.6 * eligible[a], -1))) for a in areas},
            "organiser": "organiser", "chws": sorted(n for v, names in layout.chws.items() for n in names
                                                     if v.split("/")[1] in CAMPAIGN_DISTRICTS),
            "updated_at": f"{start.isoformat()}T08:00:00Z", "updated_by": "organiser"}
    out.docs.insert(0, demodata.revision(body))
    out.counts["campaigns"] += 1


def _extras(out: DemoDocs, seed: int, base: date) -> list[tuple[str, Json]]:
    """Reviews, conflicts and duplicates (appended to ``out``); the invalid documents, with their senders."""
    rng = random.Random(seed + 1)
    for visit in out.reviewable:
        state = rng.choices(("approved", "has_issues", "rejected"), (80, 15, 5))[0]
        district = visit["area"].split("/")[1]
        comment = {"approved": None, "has_issues": "Please take the blood pressure again: the reading looks off.",
                   "rejected": "This visit was entered twice; keep the other one."}[state]
        day = date.fromisoformat(visit["visited_at"][:10]) + timedelta(days=3)
        out.docs.append(demodata.revision({
            "_id": review_id(visit["_id"]), "type": "review", "visit_id": visit["_id"], "chw": visit["chw"],
            "state": state, **({"comment": comment} if comment else {}), "reviewer": f"supervisor-{district}",
            "reviewed_at": f"{day.isoformat()}T10:00:00Z", "area": visit["area"]}))
        out.counts["reviews"] += 1
    adults = [p for p in out.patients if "phone" in p]
    for number, first in enumerate(rng.sample(adults, min(len(adults), max(2, len(out.patients) // 150)))):
        base_body = {k: v for k, v in first.items() if not k.startswith("_rev")}
        phone = f"+227 96 {rng.randint(100, 999)} {rng.randint(100, 999)}"
        one = {**base_body, "phone": phone, "updated_at": f"{base.isoformat()}T09:00:00+01:00"}
        # A third change the same field on both tablets: the supervisor chooses.
        other = {**base_body, "updated_at": f"{base.isoformat()}T11:30:00+01:00",
                 **({"phone": f"+227 97 {rng.randint(100, 999)} {rng.randint(100, 999)}"} if number % 3 == 0 else
                    {"chronic_conditions": sorted({*base_body.get("chronic_conditions", []), "asthma"})})}
        out.docs += [demodata.revision(one, first), demodata.revision(other, first)]
        out.counts["conflicted patients"] += 1
    named = [p for p in out.patients if p["given_name"] in VARIANTS]
    for patient in rng.sample(named, min(len(named), max(2, len(out.patients) // 120))):
        again = {**{k: v for k, v in patient.items() if not k.startswith("_rev")},
                 "_id": f"{patient['_id'][:24]}{rng.getrandbits(32):08x}",
                 "given_name": VARIANTS[patient["given_name"]], "updated_at": f"{base.isoformat()}T08:15:00+01:00"}
        out.docs.append(demodata.revision(again))
        out.counts["duplicate patients"] += 1
    village, chw = f"{REGION}/{DISTRICTS[0]}/{VILLAGES[0]}", f"chw-{DISTRICTS[0]}-{VILLAGES[0]}"
    stamp = f"{base.isoformat()}T10:00:00+01:00"
    visit = {"type": "visit", "area": village, "patient_id": adults[0]["_id"], "chw": chw, "visited_at": stamp,
             "kind": "routine", "updated_at": stamp, "updated_by": chw}
    invalid = [{**visit, "observations": {"bp_systolic": 400, "bp_diastolic": 95}},
               {**visit, "observations": {"glucose_mmol_l": "7.2"}},
               {"type": "patient", "area": village, "given_name": "Adamu", "estimated_age_years": 40,
                "updated_at": stamp, "updated_by": chw},
               {"type": "household", "area": village, "updated_at": stamp, "updated_by": chw},
               {"type": "referral", "area": village, "patient_id": adults[0]["_id"], "from_chw": chw,
                "to_facility": f"{REGION}/{DISTRICTS[0]}/health-centre", "reason": "Chest pain", "status": "lost",
                "created_at": stamp, "updated_at": stamp, "updated_by": chw}]
    return [(chw, demodata.revision({"_id": f"demo-invalid-{n}", **doc})) for n, doc in enumerate(invalid)]


def _write(db_name: str, docs: list[Json], progress: Progress | None) -> None:
    for start in range(0, len(docs), BATCH):
        bulk_docs(db_name, docs[start:start + BATCH], new_edits=False)
        if progress is not None:
            progress("documents", min(start + BATCH, len(docs)), len(docs))


def _project(db_name: str, progress: Progress | None) -> None:
    """Run the worker until nothing waits (resolutions it writes are projected too)."""
    total = worker.status(db_name)["pending"]
    while worker.status(db_name)["pending"]:
        worker.run_once(db_name, progress=None if progress is None else lambda n: progress(
            "central records", min(n, total), total))


def load_demo(db_name: str, *, households: int = 1500, seed: int = 2026, progress: Progress | None = None,
              today: date | None = None) -> DemoResult:
    """Load the demo into ``db_name`` (created if missing), or report it is already there."""
    started = time.monotonic()
    listed = [(role, name, password) for role, name, password, _ in accounts()]
    try:
        create_database(db_name)
    except FileExists:
        pass
    try:
        marker = get_local(db_name, MARKER)
    except NotFound:
        marker = {}
    if marker.get("state") == "loaded":
        return DemoResult(False, listed, dict(marker.get("counts") or {}), time.monotonic() - started)
    base = date.fromisoformat(marker["base_date"]) if "base_date" in marker else (
        today or datetime.now(timezone.utc).date())
    households, seed = int(marker.get("households", households)), int(marker.get("seed", seed))
    settings = {"base_date": base.isoformat(), "households": households, "seed": seed}
    put_local(db_name, MARKER, {**marker, **settings, "state": "loading"})
    _setup_access()
    out = demodata.generate(households, seed, base)
    _campaign(out, base, Layout.make())
    invalid = _extras(out, seed, base)
    _write(db_name, out.docs, progress)
    for sender, doc in invalid:
        bulk_docs(db_name, [doc], new_edits=False, gate=RecordsGate(sender))
    out.counts["quarantined"] = len(invalid)
    _project(db_name, progress)
    counts = dict(sorted(out.counts.items()))
    current = get_local(db_name, MARKER)
    put_local(db_name, MARKER, {**current, "state": "loaded", "counts": counts})
    return DemoResult(True, listed, counts, time.monotonic() - started)
