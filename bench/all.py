"""Run every benchmark in bench/ and print one table of their figures (``make bench``).

Each benchmark runs in its own process, as a person would run it, with ``--json`` naming a
file for its figures (bench/report.py); its own output goes to stderr so the progress shows.
The combined table goes to stdout: the README's table is this output.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# name, script, arguments: the order of the table.
BENCHES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("replication", "replication.py", ("--repeat", "5")),
    ("device", "device.py", ()),
    ("scope", "scope.py", ("--repeat", "7")),
    ("records", "records.py", ()),
    ("pages", "pages.py", ()),
    ("scale", "scale.py", ()),
    ("lossy", "lossy.py", ()),
    ("crash", "crash.py", ("--kills", "10")),
)


def run_one(name: str, script: str, args: tuple[str, ...], folder: Path) -> tuple[list[dict[str, Any]], float]:
    """Run one benchmark; its rows (one failure row when it did not finish) and its wall time."""
    out = folder / f"{name}.json"
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args, "--json", str(out)],
                          cwd=ROOT, stdout=sys.stderr, stderr=sys.stderr, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0 or not out.exists():
        return [{"figure": f"{name}: did not finish (exit {proc.returncode})", "value": "—", "target": None,
                 "met": False}], seconds
    return json.loads(out.read_text())["rows"], seconds


def verdict(met: bool | None) -> str:
    """How a row's target shows in the table."""
    return "" if met is None else ("met" if met else "**missed**")


def table(results: list[tuple[str, list[dict[str, Any]], float]]) -> str:
    """The combined markdown table."""
    lines = ["| benchmark | figure | measured | target | |", "|---|---|---|---|---|"]
    for name, rows, _ in results:
        for r in rows:
            lines.append(f"| {name} | {r['figure']} | {r['value']} | {r['target'] or ''} | {verdict(r['met'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks named (all by default) and print the table; exit 1 when one did not finish."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all): "
                        + ", ".join(name for name, _, _ in BENCHES))
    args = parser.parse_args(argv)
    unknown = set(args.names) - {name for name, _, _ in BENCHES}
    if unknown:
        parser.error("unknown benchmark: " + ", ".join(sorted(unknown)))
    chosen = [b for b in BENCHES if not args.names or b[0] in args.names]
    results = []
    with tempfile.TemporaryDirectory(prefix="wasl-bench-") as tmp:
        for name, script, extra in chosen:
            print(f"\n=== {name} ===", file=sys.stderr, flush=True)
            rows, seconds = run_one(name, script, extra, Path(tmp))
            results.append((name, rows, seconds))
    print(f"\n`make bench` on {platform.node() or 'this machine'}: {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}; run times "
          + ", ".join(f"{name} {seconds:.0f} s" for name, _, seconds in results) + "\n")
    print(table(results))
    return 0 if all("did not finish" not in r["figure"] for _, rows, _ in results for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
