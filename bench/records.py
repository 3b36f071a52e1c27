"""Central-records benchmark: how fast the worker merges visits, and how soon a pushed visit shows.

Generates N schema-valid visits (docs/records.md) over ~N/10 patients straight into the
store (``sync.writes.bulk_docs``, new_edits=false, in batches), then times ``run_once``
until caught up, on SQLite and on a throwaway PostgreSQL 15 cluster. Then serves the app,
runs ``wasl worker`` beside it, pushes one visit at a time over HTTP ``_bulk_docs`` and
measures the lag until its central row exists (median of 20, at rest).

Run from the repository root: ``.venv/bin/python bench/records.py [--visits 20000]``.
Prints a markdown table with the targets (≥2,000 visits/s on SQLite, lag < 1 s).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report  # noqa: E402
from bench.serve import serve_in_thread  # noqa: E402
from bench.replication import ADMIN, ROOT, VENV_BIN, request  # noqa: E402

Doc = dict[str, Any]
DB_NAME = "bench"
AREAS = ("north/kasungu/chulu", "north/kasungu/santhe", "central/dowa/madisi", "south/zomba/likangala")
SYLLABLES = ("ba", "chi", "da", "fa", "gi", "ka", "ku", "la", "ma", "mwa", "na", "ndi", "nga", "pi", "sa", "si",
             "ta", "thu", "wo", "ya", "zi", "lu", "mo", "ne", "ro", "ji", "we", "yo", "be", "tsi")
KINDS = ("routine", "antenatal", "chronic_follow_up", "screening")
TARGET_RATE = 2000
TARGET_LAG_S = 1.0
START = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)


# ------------------------------------------------------------------------------------------------ documents
def stamp(when: datetime) -> str:
    """RFC 3339 text as tablets send it."""
    return when.isoformat().replace("+00:00", "Z")


def new_rev(rng: random.Random, doc: Doc, parent: Doc | None = None) -> Doc:
    """``doc`` with a replicated revision: the first, or the child of ``parent``'s."""
    new_hash = f"{rng.getrandbits(128):032x}"
    if parent is None:
        return {**doc, "_rev": f"1-{new_hash}", "_revisions": {"start": 1, "ids": [new_hash]}}
    old = parent["_revisions"]
    return {**doc, "_rev": f"{old['start'] + 1}-{new_hash}",
            "_revisions": {"start": old["start"] + 1, "ids": [new_hash] + old["ids"]}}


def uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def household(rng: random.Random, area: str) -> Doc:
    """A household document."""
    return new_rev(rng, {"_id": f"hh-{uid(rng)}", "type": "household", "area": area,
                         "updated_at": stamp(START), "updated_by": "chw-001", "name": f"House {rng.randrange(999)}",
                         "gps": {"lat": round(rng.uniform(-14, -13), 5), "lon": round(rng.uniform(33, 34), 5)}})


def name(rng: random.Random) -> str:
    """A made-up name of two or three syllables (varied, as a real catchment's names are)."""
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randrange(2, 4))).capitalize()


def patient(rng: random.Random, hh: Doc) -> Doc:
    """A patient document of household ``hh``."""
    doc: Doc = {"_id": f"pt-{uid(rng)}", "type": "patient", "area": hh["area"], "updated_at": stamp(START),
                "updated_by": "chw-001", "household_id": hh["_id"], "given_name": name(rng),
                "family_name": name(rng), "sex": rng.choice(["female", "male"]),
                "consent": {"share_with_partners": rng.random() < 0.5},
                "chronic_conditions": rng.sample(["hypertension", "diabetes", "hiv"], rng.randrange(0, 2))}
    if rng.random() < 0.7:
        doc["birth_date"] = f"{rng.randrange(1950, 2024)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
    else:
        doc["estimated_age_years"] = rng.randrange(1, 90)
    return new_rev(rng, doc)


def observations(rng: random.Random) -> Doc:
    """Observations around the risk thresholds, so some visits carry flags."""
    obs: Doc = {"temperature_c": round(rng.uniform(35.5, 40), 1), "malaria_rdt": rng.choice(
        ["positive", "negative", "negative", "not_done"]), "symptoms": rng.sample(["fever", "cough", "rash"], 1)}
    if rng.random() < 0.6:
        obs["bp_systolic"], obs["bp_diastolic"] = rng.randrange(100, 170), rng.randrange(60, 105)
    if rng.random() < 0.4:
        obs["glucose_mmol_l"] = round(rng.uniform(4, 15), 1)
    if rng.random() < 0.3:
        obs["muac_mm"] = rng.randrange(100, 160)
    return obs


def visit(rng: random.Random, pt: Doc, campaign_id: str | None = None) -> Doc:
    """A visit to ``pt`` at a random time in the first 90 days of the year."""
    when = START + timedelta(seconds=rng.randrange(90 * 86400))
    doc: Doc = {"_id": f"vi-{uid(rng)}", "type": "visit", "area": pt["area"], "updated_at": stamp(when),
                "updated_by": "chw-001", "patient_id": pt["_id"], "chw": f"chw-{rng.randrange(1, 40):03d}",
                "visited_at": stamp(when), "kind": rng.choice(KINDS), "household_id": pt["household_id"],
                "observations": observations(rng), "notes": "counselled; follow up in two weeks"}
    if campaign_id:
        doc["campaign_id"] = campaign_id
    return new_rev(rng, doc)


def campaign(rng: random.Random, systolic: int = 160) -> Doc:
    """A hypertension screening campaign that refers at ``systolic`` and above."""
    return new_rev(rng, {"_id": "cp-hypertension-2026", "type": "campaign", "name": "Hypertension 2026",
                         "condition": "hypertension", "areas": ["north", "central"], "start_date": "2026-01-01",
                         "end_date": "2026-06-30", "organiser": "organiser",
                         "fields": [{"field": "bp_systolic", "op": "gte", "value": systolic, "refer": True}]})


@dataclass
class Dataset:
    """Households, patients, a campaign and visits, identical for the same seed."""

    households: list[Doc]
    patients: list[Doc]
    campaign: Doc
    visits: list[Doc]

    @property
    def records(self) -> list[Doc]:
        return [self.campaign, *self.households, *self.patients]


def make_dataset(visits: int, patients: int, seed: int = 1) -> Dataset:
    """``visits`` visits over ``patients`` patients in ~patients/3 households."""
    rng = random.Random(seed)
    homes = [household(rng, rng.choice(AREAS) + f"/village-{rng.randrange(30):02d}")
             for _ in range(max(1, patients // 3))]
    people = [patient(rng, homes[i % len(homes)]) for i in range(patients)]
    camp = campaign(rng)
    return Dataset(homes, people, camp, [visit(rng, rng.choice(people), camp["_id"] if rng.random() < 0.3 else None)
                                         for _ in range(visits)])


def write(db_name: str, docs: list[Doc], batch: int = 1000) -> None:
    """Store ``docs`` as replicated revisions; raise if the store refused any."""
    from sync.writes import bulk_docs
    for start in range(0, len(docs), batch):
        refused = bulk_docs(db_name, docs[start:start + batch], new_edits=False)
        if refused:
            raise RuntimeError(f"the store refused documents: {refused[:3]}")


# ------------------------------------------------------------------------------------------------ engines
@contextmanager
def engine_url(engine: str, workdir: Path) -> Iterator[str]:
    """A database URL: a SQLite file, or a throwaway PostgreSQL 15 cluster (tests/pg.py)."""
    if engine == "sqlite":
        yield f"sqlite:///{workdir}/records.sqlite"
        return
    from tests.pg import pg_cluster
    with pg_cluster() as url:
        yield url


def make_app(url: str, workdir: Path) -> Any:
    """The app on ``url`` with its tables, admin account and the bench database."""
    from api import create_app
    from models import init_db
    from sync.store import create_database
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "WASL_ADMIN_PASSWORD": ADMIN[1],
                      "WASL_RECORDS_DB": DB_NAME, "SECRET_KEY": "bench-only"})
    with app.app_context():
        init_db()
        create_database(DB_NAME)
    return app


# ------------------------------------------------------------------------------------------------ measures
def merge_rate(app: Any, data: Dataset) -> tuple[float, int]:
    """Seconds for ``run_once`` to merge every visit, and the changes it processed.

    Households, patients and the campaign are written and projected first, untimed: the
    figure is the rate at which visits merge into patients that exist.
    """
    from sync.records.worker import run_once
    with app.app_context():
        write(DB_NAME, data.records)
        run_once(DB_NAME)
        write(DB_NAME, data.visits)
        started = time.perf_counter()
        processed = run_once(DB_NAME)
        return time.perf_counter() - started, processed


@contextmanager
def served(app: Any) -> Iterator[str]:
    """``app`` on a loopback port in a thread; yield its CouchDB root."""
    with serve_in_thread(app, quiet=True) as url:
        yield url + "/couch"


@contextmanager
def worker_process(url: str, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``wasl worker`` on ``url`` in its own process, as ``wasl serve`` runs it."""
    env = {**os.environ, "WASL_DATABASE_URL": url, "WASL_INSTANCE": str(workdir / "instance"),
           "WASL_RECORDS_DB": DB_NAME, "WASL_SECRET_KEY": "bench-only"}
    with open(workdir / "worker.log", "ab") as log:
        proc = subprocess.Popen([str(VENV_BIN / "wasl"), "worker"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def push_lag(app: Any, url: str, workdir: Path, data: Dataset, pushes: int = 20) -> list[float]:
    """Seconds from a one-visit HTTP push to its central row, for ``pushes`` visits sent one at a time."""
    from sqlalchemy import select

    from models import db
    from models.health import Visit
    rng = random.Random(99)
    lags = []
    with ExitStack() as stack:
        root = stack.enter_context(served(app))
        stack.enter_context(worker_process(url, workdir))
        stack.enter_context(app.app_context())
        wait_caught_up(DB_NAME)
        for _ in range(pushes):
            doc = visit(rng, rng.choice(data.patients))
            time.sleep(0.3)  # at rest: the worker is idle when the push arrives
            started = time.perf_counter()
            request("POST", f"{root}/{DB_NAME}/_bulk_docs", {"docs": [doc], "new_edits": False}, auth=ADMIN)
            query = select(Visit.rev).where(Visit.db_name == DB_NAME, Visit.doc_id == doc["_id"])
            while True:
                db.session.commit()
                if db.session.scalar(query) == doc["_rev"]:
                    break
                if time.perf_counter() - started > 30:
                    raise RuntimeError("the visit did not reach the central records in 30 s")
                time.sleep(0.002)
            lags.append(time.perf_counter() - started)
    return lags


def wait_caught_up(db_name: str, timeout: float = 60) -> None:
    """Block until the worker's checkpoint reaches the database's update_seq."""
    from sqlalchemy import select

    from models import Database, db
    from models.health import WorkerCheckpoint
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.commit()
        seq = db.session.scalar(select(Database.update_seq).where(Database.name == db_name))
        if db.session.scalar(select(WorkerCheckpoint.seq).where(WorkerCheckpoint.db_name == db_name)) == seq:
            return
        time.sleep(0.05)
    raise RuntimeError(f"the worker did not catch up in {timeout} s")


@dataclass(frozen=True)
class Result:
    """One engine's figures."""

    engine: str
    visits: int
    changes: int
    seconds: float
    lag_median_s: float
    lag_max_s: float

    @property
    def rate(self) -> float:
        return self.visits / self.seconds


def measure(engine: str, visits: int, patients: int, pushes: int) -> Result:
    """Both figures on one engine, on fresh data."""
    data = make_dataset(visits, patients)
    with tempfile.TemporaryDirectory(prefix=f"bench-records-{engine}-") as tmp, \
            engine_url(engine, Path(tmp)) as url:
        app = make_app(url, Path(tmp))
        seconds, changes = merge_rate(app, data)
        lags = push_lag(app, url, Path(tmp), data, pushes)
        with app.app_context():
            from models import db
            db.session.remove()
            db.engine.dispose()
    return Result(engine, visits, changes, seconds, statistics.median(lags), max(lags))


def table(results: list[Result]) -> str:
    """The markdown table docs/records.md quotes."""
    lines = ["| engine | visits | changes | catch-up s | visits/s (target ≥2,000 on SQLite) "
             "| push→row lag median ms (target <1,000) | lag max ms |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.engine} | {r.visits:,} | {r.changes:,} | {r.seconds:.2f} | {r.rate:,.0f} "
                     f"| {r.lag_median_s * 1000:.0f} | {r.lag_max_s * 1000:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, measure each engine, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=20000, help="visits to merge (default 20000)")
    parser.add_argument("--patients", type=int, default=2000, help="patients they are spread over (default 2000)")
    parser.add_argument("--pushes", type=int, default=20, help="single-visit pushes for the lag (default 20)")
    parser.add_argument("--engines", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--json", help="also write the figures for bench/all.py to this file")
    args = parser.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not engines or set(engines) - {"sqlite", "postgresql"}:
        parser.error("--engines takes sqlite and/or postgresql")
    results = []
    for engine in engines:
        print(f"… {engine}", file=sys.stderr, flush=True)
        results.append(measure(engine, args.visits, args.patients, args.pushes))
    print(f"{args.visits} visits over {args.patients} patients, worker batches of 500, "
          f"{os.cpu_count()} CPUs; lag: median of {args.pushes} single-visit pushes, worker in its own process\n")
    print(table(results))
    report.write(args.json, "records", [
        report.row(f"worker throughput, {r.engine}", f"{r.rate:,.0f} visits/s, lag {r.lag_median_s * 1000:.0f} ms",
                   f"≥ {TARGET_RATE:,}/s on SQLite, lag < {TARGET_LAG_S * 1000:.0f} ms",
                   (r.engine != "sqlite" or r.rate >= TARGET_RATE) and r.lag_median_s < TARGET_LAG_S)
        for r in results])
    failed = [r for r in results if (r.engine == "sqlite" and r.rate < TARGET_RATE) or r.lag_median_s >= TARGET_LAG_S]
    if failed:
        print("\nbelow target: " + ", ".join(r.engine for r in failed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
