"""Pages benchmark: server time of the supervisor and organiser pages over 100,000 visits.

Generates the central records straight into their tables (``models.health``: 100,000
visits over ~10,000 patients in 3 districts of 10 villages, 60 CHWs, one running campaign
with targets, reviews for a fifth of the visits) plus the documents the measured pages read
(the campaign, and the visits opened), then measures, with the Flask test client (so
server time only, no network), the median of 20 requests each of: the visit log (first
page, and filtered pages) as a supervisor of one district and as an admin, a visit page,
its REST twins, and a campaign's progress page when that route exists.

Run from the repository root: ``.venv/bin/python bench/pages.py [--visits 100000]
[--engines sqlite,postgresql] [--index NAME ...]`` (PostgreSQL: a throwaway cluster).
``--index`` adds a proposed index (see ``EXTRA_INDEXES``) before measuring, to compare.
Prints a markdown table per engine with the target (each < 300 ms).
"""
from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import bindparam, insert, text  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from api import create_app  # noqa: E402
from models import db, init_db  # noqa: E402
from models.health import Campaign, Patient, Review, Visit  # noqa: E402
from sync import access  # noqa: E402
from sync.records.project import risk_flags, utc_time  # noqa: E402
from sync.store import create_database  # noqa: E402
from sync.writes import bulk_docs  # noqa: E402

DB_NAME = "records"
TARGET_MS = 300.0
REPEAT = 20
DISTRICTS = ("north/d1", "north/d2", "north/d3")
VILLAGES = [f"{d}/v{n:02d}" for d in DISTRICTS for n in range(10)]
KINDS = ("routine", "antenatal", "chronic_follow_up", "screening")
CAMPAIGN = "cp-bench"
NOW = time.time()
# Indexes the pages would use that models/health.py does not declare (compare with --index NAME).
EXTRA_INDEXES = {
    "visit_area_time": "CREATE INDEX ix_bench_visit_area_time ON health_visit (db_name, deleted, area, visited_at)",
}


def when(rng: random.Random) -> str:
    """A visit time in the last year, as the central tables hold it."""
    return str(utc_time(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - rng.uniform(0, 365 * 86400)))))


def observations(rng: random.Random) -> dict[str, Any]:
    """Plausible observations: some blood pressures and glucose values are high."""
    obs: dict[str, Any] = {"weight_kg": round(rng.uniform(40, 90), 1)}
    if rng.random() < 0.6:
        obs |= {"bp_systolic": rng.randint(95, 175), "bp_diastolic": rng.randint(60, 105)}
    if rng.random() < 0.3:
        obs["glucose_mmol_l"] = round(rng.uniform(3.5, 16), 1)
    return obs


def generate(app: Any, visits: int) -> list[str]:
    """Users, areas, the central rows and the campaign document; return some visit ids to open."""
    rng = random.Random(7)
    with app.app_context():
        for path in ("north", *DISTRICTS, *VILLAGES):
            kind = {1: "region", 2: "district", 3: "village"}[path.count("/") + 1]
            access.add_area(path, kind, path, actor="bench")
        access.add_user("sara", "bench-password", ["supervisor"], actor="bench")
        access.assign("sara", DISTRICTS[0], "supervises", actor="bench")
        access.add_user("omar", "bench-password", ["organiser"], actor="bench")
        chws = []
        for n, village in enumerate(VILLAGES * 2):
            name = f"chw{n:02d}"
            access.add_user(name, "bench-password", ["chw"], actor="bench")
            access.assign(name, village, "works_in", actor="bench")
            chws.append((name, village))
        create_database(DB_NAME)
        fields = [{"field": "glucose_mmol_l", "op": "gte", "value": 11.1, "refer": True}]
        campaign = {"_id": CAMPAIGN, "type": "campaign", "name": "Diabetes screening", "condition": "diabetes",
                    "areas": [DISTRICTS[0]], "start_date": "2025-01-01", "end_date": "2027-12-31",
                    "eligibility": {"min_age": 18}, "fields": fields, "organiser": "omar",
                    "targets": {v: 300 for v in VILLAGES[:10]}}
        bulk_docs(DB_NAME, [campaign])
        db.session.execute(insert(Campaign), [{
            "db_name": DB_NAME, "doc_id": CAMPAIGN, "rev": "1-x", "deleted": False, "name": campaign["name"],
            "condition": "diabetes", "start_date": "2025-01-01", "end_date": "2027-12-31", "areas": [DISTRICTS[0]],
            "fields": fields, "eligibility": {"min_age": 18}, "targets": campaign["targets"]}])
        patients = [{"db_name": DB_NAME, "doc_id": f"pt-{n:05d}", "rev": "1-x", "deleted": False,
                     "area": VILLAGES[n % len(VILLAGES)], "given_name": f"Given{n}", "family_name": f"Family{n % 97}",
                     "sex": rng.choice(("female", "male")), "birth_date": f"{rng.randint(1940, 2020)}-06-15",
                     "share_with_partners": False, "chronic_conditions": [], "visit_count": 0,
                     "latest_observations": {}, "risk_flags": [], "referral_needed": False}
                    for n in range(max(10, visits // 10))]
        db.session.execute(insert(Patient), patients)
        rows, reviews = [], []
        for n in range(visits):
            patient = patients[rng.randrange(len(patients))]
            chw = next(c for c in chws[rng.randrange(2) * 30:] if c[1] == patient["area"])[0]
            kind = rng.choice(KINDS)
            in_campaign = kind == "screening" and patient["area"].startswith(DISTRICTS[0])
            obs = observations(rng)
            doc_id = f"vs-{n:06d}"
            rows.append({"db_name": DB_NAME, "doc_id": doc_id, "rev": "1-x", "deleted": False,
                         "patient_doc_id": patient["doc_id"], "patient_id": patient["doc_id"], "chw": chw,
                         "area": patient["area"], "campaign_id": CAMPAIGN if in_campaign else None,
                         "kind": kind, "visited_at": when(rng), "observations": obs,
                         "risk_flags": risk_flags(obs, campaign if in_campaign else None), "photo_count": 0})
            if n % 5 == 0:
                reviews.append({"db_name": DB_NAME, "doc_id": f"review-{doc_id}", "rev": "1-x", "deleted": False,
                                "visit_id": doc_id, "chw": chw, "state": rng.choice(("approved", "has_issues")),
                                "reviewer": "sara", "reviewed_at": rows[-1]["visited_at"]})
            if len(rows) == 5000:
                db.session.execute(insert(Visit), rows)
                rows = []
        if rows:
            db.session.execute(insert(Visit), rows)
        db.session.execute(insert(Review), reviews)
        db.session.commit()
        # The documents the visit page reads: the ones opened below.
        opened = [f"vs-{n:06d}" for n in range(0, min(visits, 200), 10)]
        found = db.session.execute(text("SELECT doc_id, patient_id, chw, area, kind, visited_at, observations "
                                        "FROM health_visit WHERE doc_id IN :ids").bindparams(
            bindparam("ids", expanding=True)), {"ids": opened}).all()
        bulk_docs(DB_NAME, [{"_id": r[0], "type": "visit", "patient_id": r[1], "chw": r[2], "area": r[3],
                             "kind": r[4], "visited_at": r[5], "observations": r[6], "updated_at": r[5],
                             "updated_by": r[2]} for r in found])
        db.session.execute(text("ANALYZE"))  # as the worker does after large batches
        db.session.commit()
        area_visit = db.session.scalar(text("SELECT doc_id FROM health_visit WHERE area LIKE :a ORDER BY doc_id "
                                            "LIMIT 1"), {"a": DISTRICTS[0] + "/%"})
    return [area_visit or opened[0]]


def median_ms(call: Callable[[], Any]) -> tuple[float, int]:
    """The median time of REPEAT calls (after one warm-up), and the status of the last."""
    status = call().status_code
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        status = call().status_code
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), status


def measure(url: str, visits: int, indexes: list[str]) -> None:
    """Generate on the database at ``url``, measure every page, print the table."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "WASL_RECORDS_DB": DB_NAME, "WASL_ADMIN_PASSWORD": "bench-pw",
                      "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False,
                      "SQLALCHEMY_ENGINE_OPTIONS": {"poolclass": NullPool}})
    with app.app_context():
        init_db()
    start = time.perf_counter()
    [visit_id] = generate(app, visits)
    engine = url.split(":")[0].split("+")[0]
    print(f"\n{engine}: generated {visits:,} visits in {time.perf_counter() - start:.1f} s; "
          f"extra indexes: {', '.join(indexes) or 'none'}\n")
    with app.app_context():
        for name in indexes:
            db.session.execute(text(EXTRA_INDEXES[name]))
        db.session.execute(text("ANALYZE"))
        db.session.commit()
    sara, admin = app.test_client(), app.test_client()
    for client, name, password in ((sara, "sara", "bench-password"), (admin, "admin", "bench-pw")):
        assert client.post("/login", data={"name": name, "password": password}).status_code == 302
    month_ago = time.strftime("%Y-%m-%d", time.gmtime(NOW - 30 * 86400))
    cases: list[tuple[str, Any, str]] = [
        ("visit log, first page (supervisor, 1 district)", sara, "/visits"),
        ("visit log, first page (admin, everything)", admin, "/visits"),
        ("visit log, page 20", sara, "/visits?page=20"),
        ("visit log, one CHW", sara, "/visits?chw=chw03"),
        ("visit log, risk flag + kind", sara, "/visits?flag=bp_high&kind=routine"),
        ("visit log, 30 days + not reviewed", sara, f"/visits?from={month_ago}&review=none"),
        ("visit log, campaign", sara, f"/visits?campaign_id={CAMPAIGN}"),
        ("GET /api/v1/visits (first page)", sara, "/api/v1/visits"),
        ("visit page", sara, f"/visits/{visit_id}"),
        ("GET /api/v1/visits/<id>", sara, f"/api/v1/visits/{visit_id}"),
        ("activity page", sara, "/activity"),
    ]
    if "web.campaign_progress" in app.view_functions:
        cases.append(("campaign progress page", admin, f"/campaigns/{CAMPAIGN}/progress"))
    else:
        print("note: GET /campaigns/<id>/progress does not exist yet; skipped")
    print("| page | median ms | target ms | status |")
    print("|---|---:|---:|---|")
    for label, client, path in cases:
        ms, status = median_ms(lambda: client.get(path))
        verdict = "ok" if ms < TARGET_MS and status == 200 else f"MISSED (HTTP {status})"
        print(f"| {label} | {ms:.1f} | {TARGET_MS:.0f} | {verdict} |", flush=True)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def main() -> None:
    """Parse the arguments and measure on each engine asked for."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=100_000)
    parser.add_argument("--engines", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--index", action="append", default=[], choices=sorted(EXTRA_INDEXES),
                        help="add a proposed index before measuring (repeatable)")
    args = parser.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not engines or set(engines) - {"sqlite", "postgresql"}:
        parser.error("--engines takes sqlite and/or postgresql")
    if "sqlite" in engines:
        folder = tempfile.mkdtemp(prefix="wasl-pages-")
        try:
            measure(f"sqlite:///{folder}/pages.sqlite", args.visits, args.index)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    if "postgresql" in engines:
        from tests.pg import pg_cluster
        with pg_cluster() as url:
            measure(url, args.visits, args.index)


if __name__ == "__main__":
    main()
