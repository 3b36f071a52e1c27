"""Scale benchmark: many tablets syncing at once with two Wasl servers that share one PostgreSQL.

Run from the repository root: ``.venv/bin/python bench/scale.py [--seconds 180] [--devices 100]``.
Starts a throwaway PostgreSQL 15 cluster (tests/pg.py), two gunicorn servers with three
gthread workers each and one ``wasl worker``; the tablets (the project's device client, and
stock PouchDB 9 tablets in one node process, needing ``npm ci --prefix tests/peer``) sync
with either server for ``--seconds``, then settle, and everything is checked (bench/fleetrun.py).
Prints a markdown table and a convergence line; ``--json FILE`` writes the figures as a JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report  # noqa: E402
from bench.fleet import Plan  # noqa: E402
from bench.fleetdevice import Behaviour  # noqa: E402
from bench.fleetrun import Outcome, run_fleet  # noqa: E402


def figures(outcome: Outcome) -> dict[str, Any]:
    """The figures of a run as one JSON object."""
    plan = outcome.plan
    requests = sum(s.requests for s in outcome.syncs)
    return {"benchmark": "scale", "devices": plan.devices, "pouchdb_devices": plan.pouch, "villages": plan.villages,
            "pause_s": list(outcome.pause),
            "servers": plan.servers, "workers_per_server": plan.workers, "threads_per_worker": plan.threads,
            "seconds": round(outcome.seconds, 1), "syncs": len(outcome.syncs),
            "docs_accepted": outcome.accepted, "docs_per_s": round(outcome.accepted / outcome.seconds, 1),
            "sync_p50_s": round(outcome.percentile(50), 3), "sync_p95_s": round(outcome.percentile(95), 3),
            "requests_per_sync": round(requests / max(1, len(outcome.syncs)), 1),
            "server_cpu_ms_per_request": round(1000 * outcome.cpu.get("servers", 0.0) / max(1, requests), 2),
            "conflicts_resolved": outcome.resolutions, "field_conflicts_recorded": outcome.field_conflicts,
            "documents": outcome.documents, "central_rows": outcome.central_rows, "feed_reads": outcome.feed_reads,
            "phases_s": {k: round(v, 1) for k, v in outcome.phases.items()}, "cpu_s": outcome.cpu,
            "pg_connections": outcome.waits,
            "converged": outcome.ok, "problems": {k: v for k, v in outcome.problems.items() if v}}


def rows(f: dict[str, Any]) -> list[dict[str, Any]]:
    """The figures of the combined table (bench/all.py)."""
    setup = (f"{f['devices']} devices ({f['pouchdb_devices']} PouchDB) at once, {f['servers']} servers × "
             f"{f['workers_per_server']} workers, PostgreSQL, {f['seconds']:.0f} s")
    return [report.row(setup, f"{f['docs_per_s']:,.1f} docs/s accepted; sync p50 {f['sync_p50_s']:.1f} s, "
                              f"p95 {f['sync_p95_s']:.1f} s"),
            report.row("the same: convergence (replicas, feed readers, central = rebuild)",
                       "ok" if f["converged"] else "FAILED: " + ", ".join(f["problems"]), "all equal",
                       bool(f["converged"]))]


def table(f: dict[str, Any]) -> str:
    """The markdown table and the convergence line."""
    lines = ["| devices (PouchDB) | servers × workers | pause s | duration s | syncs | documents accepted | docs/s "
             "| sync p50 s | sync p95 s | conflicts resolved |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| {f['devices']} ({f['pouchdb_devices']}) | {f['servers']} × {f['workers_per_server']} "
             f"| {f['pause_s'][0]:g}–{f['pause_s'][1]:g} | {f['seconds']:.0f} | {f['syncs']:,} "
             f"| {f['docs_accepted']:,} | {f['docs_per_s']:,.1f} "
             f"| {f['sync_p50_s']:.2f} | {f['sync_p95_s']:.2f} | {f['conflicts_resolved']:,} |", ""]
    if f["converged"]:
        lines.append(f"convergence: ok — {f['devices']} tablets equal the server's {f['documents']:,} documents "
                     f"(their villages'), no live conflict left, {f['feed_reads']:,} incremental feed reads missed "
                     f"nothing, {f['central_rows']:,} central rows equal a rebuild, no refused write, "
                     "no failed or retried sync, no server error")
    else:
        lines.append("convergence: FAILED — " + "; ".join(f"{k}: {v[0]} ({len(v)} shown)"
                                                          for k, v in f["problems"].items()))
    lines.append(f"{f['requests_per_sync']} requests per sync, {f['server_cpu_ms_per_request']} ms of server CPU "
                 "per request")
    lines.append("wall s: " + ", ".join(f"{k} {v:.0f}" for k, v in f["phases_s"].items()))
    lines.append(f"CPU s during the {f['seconds']:.0f} s of syncing: "
                 + ", ".join(f"{k} {v:.0f}" for k, v in f["cpu_s"].items()))
    if f["pg_connections"]:
        lines.append("PostgreSQL connections on average: " + ", ".join(f"{k} {v:.2f}"
                                                                       for k, v in f["pg_connections"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the fleet, print the table (exit 1 when a check failed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180, help="seconds of syncing (default 180)")
    parser.add_argument("--devices", type=int, default=100, help="tablets (default 100)")
    parser.add_argument("--pouchdb", type=int, default=20, help="of them, stock PouchDB tablets (default 20)")
    parser.add_argument("--villages", type=int, default=25, help="villages the tablets share (default 25)")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers per server (default 3)")
    parser.add_argument("--pause", default="0.5,2", help="seconds a tablet waits between syncs, drawn between "
                        "LO,HI (default 0.5,2: the servers run saturated)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the figures to this file as a JSON object")
    args = parser.parse_args(argv)
    try:
        low, high = (float(v) for v in args.pause.split(","))
    except ValueError:
        parser.error("--pause takes LO,HI in seconds, e.g. 0.5,2")
    if not 0 <= low <= high:
        parser.error("--pause needs 0 <= LO <= HI")
    if not 0 <= args.pouchdb <= args.devices or args.villages < 1 or args.villages > args.devices:
        parser.error("need 0 <= --pouchdb <= --devices and 1 <= --villages <= --devices")
    plan = Plan(devices=args.devices, pouch=args.pouchdb, villages=args.villages, workers=args.workers,
                seconds=args.seconds, seed=args.seed)
    from tests.pg import pg_cluster
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp, pg_cluster() as url:
        outcome = run_fleet(plan, Path(tmp), url, Behaviour(pause=(low, high)))
    result = figures(outcome)
    print(f"{plan.devices} tablets on {plan.servers} Wasl servers (gunicorn, {plan.workers} gthread workers × "
          f"{plan.threads} threads each) and one `wasl worker`, sharing one PostgreSQL 15; Python "
          f"{sys.version.split()[0]}\n")
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps({**result, "plan": asdict(plan), "rows": rows(result)}, indent=1) + "\n")
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
