"""Crash benchmark: the crash scenario of tests/crash with as many kills as asked, on SQLite and PostgreSQL.

A gunicorn Wasl server and ``wasl worker`` are SIGKILLed at seeded points inside pushes,
pulls, checkpoints, a patient merge, resolutions and projection batches, while two device
clients, a PouchDB 9 peer, a supervisor and a feed reader work (docs/crash.md). Prints, per
engine, the kills by kind, the acknowledged writes checked and the checks that held.

Run from the repository root: ``.venv/bin/python bench/crash.py [--kills 40] [--engine both]``.
Needs the test extra, ``npm ci --prefix tests/peer`` and, for PostgreSQL, the PostgreSQL 15 binaries.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report as report_mod  # noqa: E402
from tests.crash.scenario import Plan, Report, run  # noqa: E402
from tests.pg import pg_cluster  # noqa: E402

SERVER_KINDS = ("push", "pull", "checkpoint", "revs_diff", "feed")
WORKER_KINDS = ("resolve", "project")


def make_plan(kills: int, seed: int) -> Plan:
    """About 60% server kills (one of them the first merge request) and 40% worker kills, kinds in turn."""
    rng = random.Random(seed)
    server_count = max(1, round(kills * 0.6) - 1)
    worker_count = max(1, kills - server_count - 1)
    server = [SERVER_KINDS[i % len(SERVER_KINDS)] for i in range(server_count)]
    worker = [WORKER_KINDS[i % len(WORKER_KINDS)] for i in range(worker_count)]
    rng.shuffle(server)
    return Plan(seed=seed, server=server, worker=worker, peer_rounds=max(8, kills // 2))


def row(engine: str, report: Report) -> str:
    """One markdown table row."""
    kinds = Counter(k.kind for k in report.kills)
    return (f"| {engine} | {len(report.kills)} | {', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))} | "
            f"{report.acknowledged:,} | {report.documents:,} | {report.resolutions} | {len(report.merges)} | "
            f"yes | yes | {report.seconds:.0f} |")


def main() -> None:
    """Run the scenario on each engine asked for and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=40, help="kills per engine (server and worker)")
    parser.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", help="also write the figures for bench/all.py to this file")
    args = parser.parse_args()
    if args.kills < 3:
        parser.error("--kills must be at least 3")
    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    rows: list[str] = []
    figures: list[dict[str, object]] = []
    for engine in engines:
        with ExitStack() as stack:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wasl-crash-")))
            url = f"sqlite:///{work}/wasl.sqlite" if engine == "sqlite" else stack.enter_context(pg_cluster())
            print(f"{engine}: kill log in {work}/crash.log while it runs", flush=True)
            report = run(work, url, make_plan(args.kills, args.seed))
            print(report.summary(), flush=True)
            rows.append(row(engine, report))
            figures.append(report_mod.row(
                f"SIGKILLs of server and worker, {engine}",
                f"{len(report.kills)} kills, {report.acknowledged:,} acknowledged revisions all kept",
                "nothing lost; replicas and central = rebuild", True))
    print("\n| engine | kills | by kind | acknowledged revisions checked | documents | resolutions | merges "
          "| replicas converged | central = rebuild | s |")
    print("|---|---:|---|---:|---:|---:|---:|---|---|---:|")
    print("\n".join(rows))
    report_mod.write(args.json, "crash", figures)


if __name__ == "__main__":
    main()
