"""Pages benchmark: server time of the supervisor and organiser pages over 100,000 visits.

Generates the central records straight into their tables (``models.health``: 100,000
visits over ~10,000 patients in 3 districts of 10 villages, 60 CHWs, one running campaign
with targets, reviews for a fifth of the visits) plus the documents the measured pages read
(the campaign, and the visits opened), then measures, with the Flask test client (so
server time only, no network), the median of 20 requests each of: the visit log (first
page, and filtered pages) as a supervisor of one district and as an admin, a visit page,
its REST twins, and a campaign's progress page.

The ``worst`` scenario is the progress page's worst case: 90% of the visits are screenings
of one campaign over the whole region, with 50,000 patients and a referral for about a
quarter of the visits. The progress figures are kept in the process, so it measures the
first request (the cache emptied before each of the 20) as well as a repeated one.

Run from the repository root: ``.venv/bin/python bench/pages.py [--visits 100000]
[--engines sqlite,postgresql] [--scenarios pages,worst] [--index NAME ...] [--json FILE]``
(PostgreSQL: a throwaway cluster). ``--index`` adds a proposed index (see ``EXTRA_INDEXES``)
before measuring, to compare. Prints a markdown table per engine and scenario with the
target (each < 300 ms); ``--json`` also writes the figures to FILE as one JSON object,
``{"bench": "pages", "unit": "ms", "target_ms", "visits", "figures": {"<engine>/<scenario>":
{"<row>": median ms}}, "cpu": {the same, this process's CPU ms}, "missed": ["<engine>/<scenario>:
<row>", ...]}`` (a row is missed at or over the target, or not 200).
"""
from __future__ import annotations

import argparse
import json
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
from bench import report  # noqa: E402
from models import db, init_db  # noqa: E402
from models.health import Campaign, Patient, Referral, Review, Visit  # noqa: E402
from sync import access  # noqa: E402
from sync.records.progresscache import clear_cache  # noqa: E402
from sync.records.project import project, utc_time  # noqa: E402
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


def people() -> list[tuple[str, str]]:
    """The areas and accounts: a supervisor of one district, an organiser, two CHWs per village."""
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
    return chws


def the_campaign(worst: bool) -> dict[str, Any]:
    """The campaign document: one district (``pages``) or the whole region (``worst``)."""
    fields = [{"field": "glucose_mmol_l", "op": "gte", "value": 11.1, "refer": True}]
    if worst:
        fields.append({"field": "bp_systolic", "op": "gte", "value": 140, "refer": True})
    return {"_id": CAMPAIGN, "type": "campaign", "name": "Diabetes screening", "condition": "diabetes",
            "areas": ["north" if worst else DISTRICTS[0]], "start_date": "2025-01-01", "end_date": "2027-12-31",
            "eligibility": {"min_age": 18}, "fields": fields, "organiser": "omar", "chws": ["chw00", "chw01"],
            "targets": {v: 2000 if worst else 300 for v in (VILLAGES if worst else VILLAGES[:10])}}


def referral(rng: random.Random, n: int, visit: dict[str, Any]) -> dict[str, Any]:
    """A referral made at a visit, in any status."""
    status = rng.choice(("open", "received", "completed", "completed", "cancelled"))
    return {"db_name": DB_NAME, "doc_id": f"rf-{n:06d}", "rev": "1-x", "deleted": False,
            "patient_doc_id": visit["patient_id"], "patient_id": visit["patient_id"], "visit_id": visit["doc_id"],
            "from_chw": visit["chw"], "to_facility": "north/hc", "reason": "screening", "urgency": "routine",
            "status": status, "created_at": visit["visited_at"], "updated_at": visit["visited_at"],
            "area": visit["area"]}


def generate(app: Any, visits: int, worst: bool = False) -> list[str]:
    """Users, areas, the central rows and the campaign document; return some visit ids to open."""
    rng = random.Random(7)
    with app.app_context():
        chws = people()
        create_database(DB_NAME)
        campaign = the_campaign(worst)
        bulk_docs(DB_NAME, [campaign])
        db.session.execute(insert(Campaign), [{
            "db_name": DB_NAME, "doc_id": CAMPAIGN, "rev": "1-x", "deleted": False,
            **project(campaign)}])
        patients = [{"db_name": DB_NAME, "doc_id": f"pt-{n:05d}", "rev": "1-x", "deleted": False,
                     "area": VILLAGES[n % len(VILLAGES)], "given_name": f"Given{n}", "family_name": f"Family{n % 97}",
                     "sex": rng.choice(("female", "male")), "birth_date": f"{rng.randint(1940, 2020)}-06-15",
                     "estimated_age_years": None, "share_with_partners": False, "chronic_conditions": [],
                     "visit_count": 0, "latest_observations": {}, "risk_flags": [], "referral_needed": False}
                    for n in range(max(10, visits // (2 if worst else 10)))]
        for patient in patients[::7] if worst else ():  # some ages only estimated
            patient["birth_date"], patient["estimated_age_years"] = None, float(rng.randint(1, 90))
        db.session.execute(insert(Patient), patients)
        rows, reviews, referrals = [], [], []
        for n in range(visits):
            patient = patients[rng.randrange(len(patients))]
            chw = next(c for c in chws[rng.randrange(2) * 30:] if c[1] == patient["area"])[0]
            if worst:
                kind = "screening" if rng.random() < 0.9 else rng.choice(KINDS[:3])
                in_campaign = kind == "screening"
            else:
                kind = rng.choice(KINDS)
                in_campaign = kind == "screening" and patient["area"].startswith(DISTRICTS[0])
            obs = observations(rng)
            row = {"db_name": DB_NAME, "doc_id": f"vs-{n:06d}", "rev": "1-x", "deleted": False,
                   **project({"type": "visit", "patient_id": patient["doc_id"], "chw": chw, "area": patient["area"],
                              "campaign_id": CAMPAIGN if in_campaign else None, "kind": kind,
                              "visited_at": when(rng), "observations": obs}, campaign if in_campaign else None),
                   "patient_id": patient["doc_id"], "patient_sex": patient["sex"],  # as the worker copies them
                   "patient_birth_date": patient["birth_date"],
                   "patient_estimated_age_years": patient["estimated_age_years"]}
            rows.append(row)
            if worst and in_campaign and row["risk_flags"] and rng.random() < 0.75:
                referrals.append(referral(rng, len(referrals), row))
            if n % 5 == 0:
                reviews.append({"db_name": DB_NAME, "doc_id": f"review-{row['doc_id']}", "rev": "1-x",
                                "deleted": False, "visit_id": row["doc_id"], "chw": chw,
                                "state": rng.choice(("approved", "has_issues")), "reviewer": "sara",
                                "reviewed_at": row["visited_at"]})
            if len(rows) == 5000:
                db.session.execute(insert(Visit), rows)
                rows = []
        for table, batch in ((Visit, rows), (Review, reviews), (Referral, referrals)):
            if batch:
                db.session.execute(insert(table), batch)
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
        settle()
        area_visit = db.session.scalar(text("SELECT doc_id FROM health_visit WHERE area LIKE :a ORDER BY doc_id "
                                            "LIMIT 1"), {"a": DISTRICTS[0] + "/%"})
    return [area_visit or opened[0]]


def settle() -> None:
    """Leave the freshly loaded tables as a running server has them, so the first cases do not pay for the load:
    SQLite's write-ahead log copied back, PostgreSQL's tables vacuumed (autovacuum would do it within a minute)."""
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("VACUUM ANALYZE"))
        else:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))


def median_ms(call: Callable[[], Any], cold: bool = False) -> tuple[float, float, int]:
    """The median wall and CPU time of REPEAT calls (after one warm-up), and the status of the last.

    The CPU time is this process's: on SQLite the whole request, the database included; on
    PostgreSQL without the server's share. On a busy machine it moves far less than the wall
    time. ``cold``: the progress figures kept in the process are dropped before each call.
    """
    status = call().status_code
    times, cpu = [], []
    for _ in range(REPEAT):
        if cold:
            clear_cache()
        start, used = time.perf_counter(), time.process_time()
        status = call().status_code
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - used) * 1000)
    return statistics.median(times), statistics.median(cpu), status


Case = tuple[str, Any, str, bool]  # label, client, path, cold


def page_cases(sara: Any, admin: Any, visit_id: str) -> list[Case]:
    """The supervisor's pages and the campaign progress page."""
    month_ago = time.strftime("%Y-%m-%d", time.gmtime(NOW - 30 * 86400))
    return [
        ("visit log, first page (supervisor, 1 district)", sara, "/visits", False),
        ("visit log, first page (admin, everything)", admin, "/visits", False),
        ("visit log, page 20", sara, "/visits?page=20", False),
        ("visit log, one CHW", sara, "/visits?chw=chw03", False),
        ("visit log, risk flag + kind", sara, "/visits?flag=bp_high&kind=routine", False),
        ("visit log, 30 days + not reviewed", sara, f"/visits?from={month_ago}&review=none", False),
        ("visit log, campaign", sara, f"/visits?campaign_id={CAMPAIGN}", False),
        ("GET /api/v1/visits (first page)", sara, "/api/v1/visits", False),
        ("visit page", sara, f"/visits/{visit_id}", False),
        ("GET /api/v1/visits/<id>", sara, f"/api/v1/visits/{visit_id}", False),
        ("activity page", sara, "/activity", False),
        ("campaign progress page", admin, f"/campaigns/{CAMPAIGN}/progress", False),
    ]


def worst_cases(admin: Any) -> list[Case]:
    """The progress of a campaign holding 90% of the visits: first requests, then a repeated one."""
    base = f"/campaigns/{CAMPAIGN}/progress"
    return [
        ("progress, no filter, first request", admin, base, True),
        ("progress, one sex, first request", admin, base + "?sex=male", True),
        ("progress, one village, first request", admin, base + "?area=north/d1/v03", True),
        ("progress, one CHW, first request", admin, base + "?chw=chw03", True),
        ("GET /api/v1/campaigns/<id>/progress, first request", admin, f"/api/v1/campaigns/{CAMPAIGN}/progress", True),
        ("progress, no filter, repeated", admin, base, False),
        ("campaign list", admin, "/campaigns", False),
    ]


Figures = dict[str, tuple[float, float, int]]  # row: median ms, CPU ms, HTTP status


def measure(url: str, visits: int, indexes: list[str], scenario: str) -> Figures:
    """Generate ``scenario`` on the database at ``url``, measure every page, print the table."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "WASL_RECORDS_DB": DB_NAME, "WASL_ADMIN_PASSWORD": "bench-pw",
                      "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False,
                      "SQLALCHEMY_ENGINE_OPTIONS": {"poolclass": NullPool}})
    with app.app_context():
        init_db()
    start = time.perf_counter()
    [visit_id] = generate(app, visits, worst=scenario == "worst")
    engine = url.split(":")[0].split("+")[0]
    print(f"\n{engine}, {scenario}: generated {visits:,} visits in {time.perf_counter() - start:.1f} s; "
          f"extra indexes: {', '.join(indexes) or 'none'}\n")
    with app.app_context():
        for name in indexes:
            db.session.execute(text(EXTRA_INDEXES[name]))
        db.session.execute(text("ANALYZE"))
        db.session.commit()
    sara, admin = app.test_client(), app.test_client()
    for client, name, password in ((sara, "sara", "bench-password"), (admin, "admin", "bench-pw")):
        assert client.post("/login", data={"name": name, "password": password}).status_code == 302
    cases = worst_cases(admin) if scenario == "worst" else page_cases(sara, admin, visit_id)
    print("| page | median ms | CPU ms | target ms | status |")
    print("|---|---:|---:|---:|---|")
    figures = {}
    for label, client, path, cold in cases:
        ms, cpu, status = median_ms(lambda: client.get(path), cold)
        verdict = "ok" if ms < TARGET_MS and status == 200 else f"MISSED (HTTP {status})"
        print(f"| {label} | {ms:.1f} | {cpu:.1f} | {TARGET_MS:.0f} | {verdict} |", flush=True)
        figures[label] = (ms, cpu, status)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return figures


def write_json(path: str, visits: int, results: dict[str, Figures]) -> None:
    """The figures as one JSON object (see the module docstring)."""
    missed = [f"{key}: {label}" for key, rows in results.items() for label, (ms, _, status) in rows.items()
              if ms >= TARGET_MS or status != 200]

    def column(index: int) -> dict[str, dict[str, float]]:
        return {key: {label: round(row[index], 1) for label, row in rows.items()} for key, rows in results.items()}
    out = {"bench": "pages", "unit": "ms", "target_ms": TARGET_MS, "visits": visits, "figures": column(0),
           "cpu": column(1), "missed": missed,
           "rows": [report.row(f"{label}, {key}, {visits:,} visits", f"{row[0]:.0f} ms", f"< {TARGET_MS:.0f} ms",
                               row[0] < TARGET_MS and row[2] == 200)
                    for key, figures in results.items() for label, row in figures.items()]}
    Path(path).write_text(json.dumps(out, indent=2) + "\n")


def main() -> None:
    """Parse the arguments and measure each scenario on each engine asked for."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=100_000)
    parser.add_argument("--engines", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--scenarios", default="pages,worst", help="comma-separated: pages, worst")
    parser.add_argument("--index", action="append", default=[], choices=sorted(EXTRA_INDEXES),
                        help="add a proposed index before measuring (repeatable)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE as a JSON object")
    args = parser.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    scenarios = [e.strip() for e in args.scenarios.split(",") if e.strip()]
    if not engines or set(engines) - {"sqlite", "postgresql"}:
        parser.error("--engines takes sqlite and/or postgresql")
    if not scenarios or set(scenarios) - {"pages", "worst"}:
        parser.error("--scenarios takes pages and/or worst")
    results: dict[str, Figures] = {}
    for engine in engines:
        for scenario in scenarios:
            if engine == "sqlite":
                folder = tempfile.mkdtemp(prefix="wasl-pages-")
                try:
                    results[f"sqlite/{scenario}"] = measure(f"sqlite:///{folder}/pages.sqlite", args.visits,
                                                            args.index, scenario)
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
            else:
                from tests.pg import pg_cluster
                with pg_cluster() as url:
                    results[f"postgresql/{scenario}"] = measure(url, args.visits, args.index, scenario)
    if args.json:
        write_json(args.json, args.visits, results)


if __name__ == "__main__":
    main()
