"""A small campaign data set with known figures, shared by the campaign, progress and export tests.

Reference date 2026-01-01 (the campaign's start). Campaign areas ``north/d1`` and
``north/d2/v3``; eligibility: female or male, 30 and over. Screening visits s1..s6 (s7 is
deleted); referrals r1 (completed), r2 (open), r3 (cancelled), r4 (received).
"""
from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from sync.access import add_area, add_user, assign
from sync.records.campaigns import create_campaign
from sync.records.worker import run_once
from sync.store import create_database
from sync.writes import bulk_docs

DB = "records"
CAMPAIGN = {"name": "HTN screening", "condition": "hypertension", "areas": ["north/d1", "north/d2/v3"],
            "start_date": "2026-01-01", "end_date": "2026-12-31",
            "eligibility": {"min_age": 30, "sex": ["female", "male"]},
            "fields": [{"field": "bp_systolic", "op": "gte", "value": 140, "refer": True},
                       {"field": "glucose_mmol_l", "op": "gte", "value": 11.1, "refer": True}],
            "targets": {"north/d1": 10, "north/d1/v1": 4, "north/d2/v3": 5}, "chws": ["c1", "c2"]}
# id: (village, sex, birth_date or None, estimated age or None, extra)
PATIENTS = {
    "p1": ("north/d1/v1", "female", "1980-06-01", None, {"consent": {"share_with_partners": True}}),
    "p2": ("north/d1/v1", "male", "1990-01-01", None, {}),
    "p3": ("north/d1/v1", "female", None, 62, {}),
    "p4": ("north/d1/v1", "male", "2000-01-02", None, {}),
    "p5": ("north/d1/v2", "female", "1996-01-01", None, {}),
    "p6": ("north/d1/v2", "male", "1996-01-02", None, {}),
    "p7": ("north/d1/v2", "other", None, 40, {}),
    "p8": ("north/d2/v3", "female", None, 33, {"consent": {"share_with_partners": True}, "phone": "+227 90 11 22"}),
    "p9": ("north/d2/v3", "male", "1970-01-01", None, {}),  # deleted below
    "p10": ("north/d2/v3", "male", "1975-01-01", None, {"merged_into": "p8"}),
    "p11": ("north/d2/v4", "female", "1970-01-01", None, {}),  # outside the campaign's areas
}
# id: (patient, chw, visited_at, observations)
SCREENINGS = {
    "s1": ("p1", "c1", "2026-02-01T09:00:00Z", {"bp_systolic": 150, "bp_diastolic": 95}),
    "s2": ("p2", "c1", "2026-02-02T09:00:00Z", {"bp_systolic": 120, "bp_diastolic": 80, "glucose_mmol_l": 5}),
    "s3": ("p4", "c1", "2026-02-03T09:00:00Z", {"glucose_mmol_l": 12, "symptoms": ["=cmd", "thirst"]}),
    "s4": ("p5", "c2", "2026-03-01T23:30:00Z", {"bp_systolic": 130, "bp_diastolic": 85}),
    "s5": ("p8", "c3", "2026-03-05T09:00:00Z", {"bp_systolic": 145, "bp_diastolic": 90}),
    "s6": ("p1", "c1", "2026-04-01T09:00:00Z", {"bp_systolic": 138, "bp_diastolic": 88}),
    "s7": ("p2", "c1", "2026-04-02T09:00:00Z", {"bp_systolic": 170, "bp_diastolic": 99}),  # deleted below
}
REFERRALS = {"r1": ("s1", "completed"), "r2": ("s3", "open"), "r3": ("s3", "cancelled"), "r4": ("s5", "received")}
STAMP = "2026-01-01T08:00:00Z"


def area_of(patient_id: str) -> str:
    return PATIENTS[patient_id][0]


def patient_doc(doc_id: str) -> dict[str, Any]:
    area, sex, born, estimate, extra = PATIENTS[doc_id]
    doc = {"_id": doc_id, "type": "patient", "area": area, "given_name": f"Given {doc_id}", "sex": sex,
           "updated_at": STAMP, "updated_by": "c1", **extra}
    doc.update({"birth_date": born} if born else {"estimated_age_years": estimate})
    return doc


def setup_people() -> None:
    """Areas, a facility, three CHWs, an organiser and a clinician."""
    create_database(DB)
    for path, kind in (("north", "region"), ("north/d1", "district"), ("north/d2", "district"),
                       ("north/d1/v1", "village"), ("north/d1/v2", "village"), ("north/d2/v3", "village"),
                       ("north/d2/v4", "village"), ("north/d1/clinic", "facility"), ("north/d2/clinic", "facility")):
        add_area(path, kind, path, actor="admin")
    for name, village in (("c1", "north/d1/v1"), ("c2", "north/d1/v2"), ("c3", "north/d2/v3")):
        add_user(name, "password1", ["chw"], actor="admin")
        assign(name, village, "works_in", actor="admin")
    add_user("olga", "password1", ["organiser"], actor="admin")
    add_user("omar", "password1", ["organiser"], actor="admin")
    add_user("nadia", "password1", ["clinician"], actor="admin")
    assign("nadia", "north/d1/clinic", "clinic", actor="admin")


def load(app: Flask) -> str:
    """Write the data set, project it, and return the campaign's id."""
    with app.app_context():
        setup_people()
        campaign = create_campaign(DB, CAMPAIGN, "olga", organiser="olga")
        docs: list[dict[str, Any]] = [patient_doc(p) for p in PATIENTS]
        for sid, (patient, chw, at, obs) in SCREENINGS.items():
            docs.append({"_id": sid, "type": "visit", "area": area_of(patient), "patient_id": patient, "chw": chw,
                         "visited_at": at, "kind": "screening", "campaign_id": campaign.id, "observations": obs,
                         "updated_at": at, "updated_by": chw})
        high = {"bp_systolic": 190, "bp_diastolic": 100}
        docs.append({"_id": "routine", "type": "visit", "area": "north/d1/v1", "patient_id": "p1", "chw": "c1",
                     "visited_at": "2026-02-01T10:00:00Z", "kind": "routine", "observations": high,
                     "updated_at": STAMP, "updated_by": "c1"})
        for rid, (visit, status) in REFERRALS.items():
            patient, chw, at, _ = SCREENINGS[visit]
            facility = "north/d2/clinic" if area_of(patient).startswith("north/d2") else "north/d1/clinic"
            docs.append({"_id": rid, "type": "referral", "area": area_of(patient), "patient_id": patient,
                         "visit_id": visit, "from_chw": chw, "to_facility": facility, "reason": f"from {visit}",
                         "urgency": "routine", "status": status, "created_at": at, "updated_at": at,
                         "updated_by": chw})
        written = bulk_docs(DB, docs)
        assert all(r.get("ok") for r in written), written
        revs = {r["id"]: r["rev"] for r in written}
        bulk_docs(DB, [{"_id": d, "_rev": revs[d], "_deleted": True} for d in ("p9", "s7")])
        run_once(DB)
        return campaign.id


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token of the form on ``path``."""
    match = CSRF.search(client.get(path).get_data(as_text=True))
    assert match, f"{path} carries a CSRF token"
    return match.group(1)


def sign_in(client: FlaskClient, name: str, password: str = "password1") -> None:
    """Sign ``client`` in on the page, as a browser would."""
    reply = client.post("/login", data={"name": name, "password": password, "csrf_token": csrf_token(client)})
    assert reply.status_code == 302, reply.get_data(as_text=True)
