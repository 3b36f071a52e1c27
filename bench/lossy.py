"""Lossy-link benchmark: bytes on the wire per document when tablets sync over 2G.

The scenario of bench/lossyscenario.py with more documents: the project's tablet client and a
stock PouchDB 9 peer, each in its own network namespace behind 64 kbit/s (tbf), 800 ms each
way, 20% packet loss and a 3 s cut every 30 s (bench.linkproxy), sync with one Wasl server
(SQLite, the records worker running) at the same time. Needs root (namespaces, TUN, tc); where
they are not allowed it says so and uses the loopback stream proxy (no packet loss).

Run from the repository root: ``sudo .venv/bin/python bench/lossy.py [--up 200 --down 200]``.
Prints a markdown table; ``--json FILE`` writes the figures for bench/all.py.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report  # noqa: E402
from bench.lossyscenario import DeviceRun, Plan  # noqa: E402

NAMES = {"t": "tablet client (wasl device)", "p": "PouchDB 9 peer"}


def figures(plan: Plan, run: DeviceRun) -> dict[str, Any]:
    """One device's figures: bytes each way, per document, wall time, retransmitted share."""
    up, down = run.counts["up"], run.counts["down"]
    payload = up["payload_bytes"] + down["payload_bytes"]
    again = up["retransmitted_payload"] + down["retransmitted_payload"]
    return {"device": NAMES[run.tag], "docs": plan.docs, "bytes_up": up["bytes"], "bytes_down": down["bytes"],
            "bytes_per_doc": (up["bytes"] + down["bytes"]) / plan.docs, "seconds": run.seconds,
            "retransmitted_share": again / payload if payload else None,
            "lost_packets": up["lost_packets"] + down["lost_packets"], "cut_packets": up["cut_packets"]
            + down["cut_packets"], "failed_runs": run.failed_runs, "failures": run.failures,
            "converged": run.converged, "note": run.note}


def failed(f: dict[str, Any]) -> str:
    """The failed syncs and how each ended: "1 (exit -9 after 180 s)"."""
    return f"{f['failed_runs']} ({'; '.join(f['failures'])})" if f["failures"] else str(f["failed_runs"])


def table(plan: Plan, runs: tuple[DeviceRun, ...]) -> str:
    """The markdown table of every device's figures."""
    lines = ["| device | docs | bytes up | bytes down | bytes/doc | wall s | retransmitted | lost/cut packets"
             " | failed syncs | converged |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for run in runs:
        f = figures(plan, run)
        share = "n/a" if f["retransmitted_share"] is None else f"{f['retransmitted_share']:.0%}"
        lines.append(f"| {f['device']} | {f['docs']} | {f['bytes_up']:,} | {f['bytes_down']:,} | "
                     f"{f['bytes_per_doc']:,.0f} | {f['seconds']:.0f} | {share} | "
                     f"{f['lost_packets']}/{f['cut_packets']} | {failed(f)} | "
                     f"{'yes' if f['converged'] else '**no**'}{' (' + f['note'] + ')' if f['note'] else ''} |")
    return "\n".join(lines)


def make_app(folder: Path) -> Any:
    """A Wasl app on a fresh SQLite file with the records database named as the scenario wants."""
    from sqlalchemy.pool import NullPool

    from api import create_app
    from bench.lossyscenario import ADMIN, DB_NAME
    from models import init_db
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/wasl.sqlite", "WASL_RECORDS_DB": DB_NAME,
                      "WASL_ADMIN_PASSWORD": ADMIN[1], "SECRET_KEY": "bench-only",
                      "SQLALCHEMY_ENGINE_OPTIONS": {"poolclass": NullPool}})
    with app.app_context():
        init_db()
    return app


def run(plan: Plan, folder: Path, force_loopback: bool) -> tuple[str, tuple[DeviceRun, ...]]:
    """Set up the links and the server, run both devices; return the links' description and the runs."""
    from bench.lossyclients import wasl_env, wasl_serve
    from bench.lossylink import LinkParams, lossy_links
    from bench.lossyscenario import ADMIN, DB_NAME, Admin, run_both, settled, setup_server
    from sync.devices import create_code
    app = make_app(folder)
    setup_server(app)
    with app.app_context():
        code = create_code("amina")
    with lossy_links(2, LinkParams(seed=plan.seed), force_loopback=force_loopback) as links:
        print(links.describe(), file=sys.stderr, flush=True)
        env = wasl_env(app.config["SQLALCHEMY_DATABASE_URI"], folder, ADMIN[1], DB_NAME)
        with wasl_serve(links.server_host, env, folder) as port:
            links.attach(port)
            admin = Admin(f"http://{links.server_host}:{port}")
            runs = run_both(links, plan, admin, code, folder, settled(app))
        return links.describe(), runs


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--up", type=int, default=200, help="new visits each device writes")
    parser.add_argument("--down", type=int, default=200, help="visits the server makes for each device")
    parser.add_argument("--shared", type=int, default=10, help="visits both sides edit (merged by the worker)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--loopback", action="store_true", help="use the loopback stream proxy even where "
                        "namespaces work")
    parser.add_argument("--json", help="also write the figures for bench/all.py to this file")
    args = parser.parse_args(argv)
    plan = Plan(up=args.up, down=args.down, shared=args.shared, seed=args.seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wasl-lossy-") as tmp:
        described, runs = run(plan, Path(tmp), args.loopback)
    print(f"\nLossy link: {described}. {plan.up} visits up, {plan.down} down, {plan.shared} edited on both "
          f"sides, per device; {time.monotonic() - started:.0f} s in all.\n")
    print(table(plan, runs))
    rows = []
    for device in runs:
        f = figures(plan, device)
        share = "" if f["retransmitted_share"] is None else f", {f['retransmitted_share']:.0%} retransmitted"
        done = "" if f["converged"] else ", DID NOT CONVERGE"
        rows.append(report.row(f"lossy 2G link, {f['device']}: bytes per document",
                               f"{f['bytes_per_doc']:,.0f} B ({f['docs']} docs, {f['seconds']:.0f} s{share}{done})"))
    report.write(args.json, "lossy", rows)
    return 0 if all(device.converged for device in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
