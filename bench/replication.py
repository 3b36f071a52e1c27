"""Replication benchmark: stock PouchDB 9 pushes, pulls and no-op syncs against Wasl and pouchdb-server.

Run from the repository root: ``.venv/bin/python bench/replication.py [--docs 10000]``.
Needs ``npm ci --prefix bench/peer`` (PouchDB 9 client + pouchdb-server 4.2.0). Prints a markdown table;
``--json FILE`` also writes the figures (times, docs/s, time ratios) as one JSON object.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import statistics
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report  # noqa: E402
from wasl_cli.serve import gunicorn_command  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.6  # Wasl's push and pull time over pouchdb-server's, measured in the same run
PEER = ROOT / "bench" / "peer"
VENV_BIN = Path(sys.executable).parent
ADMIN = ("admin", "bench-secret")
DB_NAME = "bench"
START_TIMEOUT_S = 60

WORDS = ("fever cough rash diarrhoea vomiting headache malnutrition referral follow-up vaccine ORS zinc "
         "amoxicillin paracetamol mosquito net pregnancy antenatal newborn breastfeeding danger sign "
         "home visit household water sanitation counselled improved unchanged worse").split()
AREAS = ("north/kasungu/chulu", "north/kasungu/santhe", "central/dowa/madisi", "south/zomba/likangala")


# ------------------------------------------------------------------------------------------------- data
def make_visit(rng: random.Random, start: datetime) -> dict[str, Any]:
    """One visit-like doc of about 1 KB, drawn from ``rng`` only (so a seed fixes the whole set)."""
    when = start + timedelta(seconds=rng.randrange(0, 90 * 86400))
    doc: dict[str, Any] = {
        "_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "type": "visit",
        "patient_id": f"pt-{rng.randrange(100000):05d}",
        "chw": f"chw-{rng.randrange(400):03d}",
        "area": rng.choice(AREAS) + f"/village-{rng.randrange(60):02d}",
        "timestamp": when.isoformat().replace("+00:00", "Z"),
        "observations": {
            "temperature_c": round(rng.uniform(35.5, 40.5), 1),
            "muac_mm": rng.randrange(95, 160),
            "weight_kg": round(rng.uniform(2.5, 80), 1),
            "respiratory_rate": rng.randrange(16, 70),
            "danger_signs": rng.sample(WORDS[:10], rng.randrange(0, 3)),
            "rdt_malaria": rng.choice(["positive", "negative", "not_done"]),
        },
    }
    # Pad with notes to about 1 KB of JSON, the size of a real visit form.
    size = len(json.dumps(doc))
    notes: list[str] = []
    while size < 1000:
        word = rng.choice(WORDS)
        notes.append(word)
        size += len(word) + 1
    doc["notes"] = " ".join(notes)
    return doc


def make_docs(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` visits, identical for the same seed."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    return [make_visit(rng, start) for _ in range(count)]


# ------------------------------------------------------------------------------------------------- servers
def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``url`` until it answers 200.

    :raise RuntimeError: the process died or did not answer within START_TIMEOUT_S.
    """
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def request(method: str, url: str, body: Any = None, auth: tuple[str, str] | None = None) -> Any:
    """A small JSON request with urllib (the bench needs nothing outside the standard library)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def cpu_seconds(pid: int) -> float:
    """User+system CPU of ``pid`` and its live descendants (gunicorn's worker is a child), from /proc."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
            for task in Path(f"/proc/{current}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except OSError:  # the process ended meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "(comm)": the name may hold spaces
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Ask a server to stop; kill it if it has not within 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@contextmanager
def running(cmd: list[str], env: dict[str, str], cwd: Path, workdir: Path, probe: str) -> Iterator[int]:
    """Run ``cmd`` until the block ends, logging to ``workdir``/server.log; yield its pid."""
    log = workdir / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_until_up(probe, proc, log)
        yield proc.pid
    finally:
        stop_process(proc)


@contextmanager
def wasl_server(workdir: Path) -> Iterator[tuple[str, int]]:
    """Wasl under gunicorn (``wasl serve``'s options; 1 worker, 8 threads) on a fresh SQLite file; yield (root, pid)."""
    port = free_port()
    env = {**os.environ, "WASL_DATABASE_URL": f"sqlite:///{workdir}/bench.sqlite",
           "WASL_ADMIN_PASSWORD": ADMIN[1], "WASL_INSTANCE": str(workdir / "instance"),
           "WASL_SECRET_KEY": "bench-only"}
    # `wasl init` creates the tables, the server uuid and the admin account.
    subprocess.run([str(VENV_BIN / "wasl"), "init", "--db", DB_NAME], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    cmd = gunicorn_command(str(VENV_BIN / "gunicorn"), "127.0.0.1", port, workers=1, threads=8, timeout=300)
    with running(cmd, env, ROOT, workdir, f"http://127.0.0.1:{port}/couch/") as pid:
        yield f"http://{ADMIN[0]}:{ADMIN[1]}@127.0.0.1:{port}/couch", pid


@contextmanager
def pouchdb_server(workdir: Path) -> Iterator[tuple[str, int]]:
    """pouchdb-server 4.2.0 (LevelDB) on a temp data dir, with the same admin account; yield (root, pid)."""
    port = free_port()
    binary = PEER / "node_modules" / "pouchdb-server" / "bin" / "pouchdb-server"
    cmd = ["node", str(binary), "--port", str(port), "--dir", str(workdir), "--config",
           str(workdir / "config.json"), "--no-stdout-logs"]
    with running(cmd, dict(os.environ), workdir, workdir, f"http://127.0.0.1:{port}/") as pid:
        # Leave "admin party": authenticate every request, as Wasl does.
        request("PUT", f"http://127.0.0.1:{port}/_config/admins/{ADMIN[0]}", ADMIN[1])
        yield f"http://{ADMIN[0]}:{ADMIN[1]}@127.0.0.1:{port}", pid


SERVERS: dict[str, Callable[[Path], Any]] = {"Wasl": wasl_server, "pouchdb-server": pouchdb_server}


# ------------------------------------------------------------------------------------------------- run
@dataclass(frozen=True)
class Result:
    """One server's figures."""

    server: str
    docs: int
    push_s: float
    pull_s: float
    noop_ms: float
    noop_requests: int
    server_cpu_s: float

    @property
    def push_rate(self) -> float:
        return self.docs / self.push_s

    @property
    def pull_rate(self) -> float:
        return self.docs / self.pull_s


def measure(name: str, docs_file: Path, count: int, batch_size: int) -> Result:
    """Start ``name``'s server, run the node timing script against it, and stop it."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp, SERVERS[name](Path(tmp)) as (root, pid):
        script = {"url": f"{root}/{DB_NAME}", "docs_file": str(docs_file), "batch_size": batch_size}
        cpu_before = cpu_seconds(pid)
        proc = subprocess.run(["node", str(PEER / "bench.mjs")], input=json.dumps(script),
                              capture_output=True, text=True, timeout=3600, check=False)
        server_cpu = cpu_seconds(pid) - cpu_before
        try:
            out = json.loads(proc.stdout)
        except ValueError:
            raise RuntimeError(f"bench.mjs printed no JSON (exit {proc.returncode}):\n"
                               f"{proc.stderr[-3000:]}") from None
        if not out.get("ok"):
            log = (Path(tmp) / "server.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name}: replication failed: {json.dumps(out)[:3000]}\nserver log:\n{log}")
    return Result(name, count, out["push"]["seconds"], out["pull"]["seconds"], out["noop"]["seconds"] * 1000,
                  out["noop"]["requests"], server_cpu)


def median(runs: list[Result]) -> Result:
    """Each figure's median over repeated runs of one server."""
    return Result(runs[0].server, runs[0].docs, statistics.median(r.push_s for r in runs),
                  statistics.median(r.pull_s for r in runs), statistics.median(r.noop_ms for r in runs),
                  round(statistics.median(r.noop_requests for r in runs)),
                  statistics.median(r.server_cpu_s for r in runs))


def table(results: list[Result]) -> str:
    """The markdown table the README quotes."""
    lines = ["| server | push s | push docs/s | pull s | pull docs/s | no-op sync ms | no-op sync requests "
             "| server CPU s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.server} | {r.push_s:.2f} | {r.push_rate:,.0f} | {r.pull_s:.2f} "
                     f"| {r.pull_rate:,.0f} | {r.noop_ms:.0f} | {r.noop_requests} | {r.server_cpu_s:.1f} |")
    by_name = {r.server: r for r in results}
    if {"Wasl", "pouchdb-server"} <= set(by_name):
        wasl, ref = by_name["Wasl"], by_name["pouchdb-server"]
        # Throughput ratios from this same run: above 1 means Wasl moved the docs faster.
        lines.append("")
        lines.append(f"Wasl/pouchdb-server docs/s: push {wasl.push_rate / ref.push_rate:.2f}x, "
                     f"pull {wasl.pull_rate / ref.pull_rate:.2f}x (above 1: Wasl faster); "
                     f"time ratio push {wasl.push_s / ref.push_s:.2f}, pull {wasl.pull_s / ref.pull_s:.2f}. "
                     "Server CPU s is the server's user+system time over the run (push, pull, two syncs); "
                     "the PouchDB client's cost is the same on both rows.")
    return "\n".join(lines)


def figures(results: list[Result], runs: int) -> dict[str, Any]:
    """The figures as one JSON object (``--json``): each server's times and rates, and the ratios."""
    out: dict[str, Any] = {"docs": results[0].docs if results else 0, "runs": runs, "servers": {}}
    for r in results:
        out["servers"][r.server] = {"push_s": round(r.push_s, 3), "push_docs_per_s": round(r.push_rate, 1),
                                    "pull_s": round(r.pull_s, 3), "pull_docs_per_s": round(r.pull_rate, 1),
                                    "noop_sync_ms": round(r.noop_ms, 1), "noop_sync_requests": r.noop_requests,
                                    "server_cpu_s": round(r.server_cpu_s, 2)}
    by_name = {r.server: r for r in results}
    if {"Wasl", "pouchdb-server"} <= set(by_name):
        wasl, ref = by_name["Wasl"], by_name["pouchdb-server"]
        # Wasl's time over pouchdb-server's (below 1: Wasl faster), measured in the same run.
        out["ratios"] = {"push_time": round(wasl.push_s / ref.push_s, 3),
                         "pull_time": round(wasl.pull_s / ref.pull_s, 3)}
        out["rows"] = [report.row(f"{direction} of {wasl.docs:,} docs, PouchDB 9 peer",
                                  f"{mine:.2f} s (pouchdb-server {theirs:.2f} s: {mine / theirs:.2f} ×)",
                                  f"≤ {TARGET_RATIO} × pouchdb-server", mine / theirs <= TARGET_RATIO)
                       for direction, mine, theirs in (("push", wasl.push_s, ref.push_s),
                                                       ("pull", wasl.pull_s, ref.pull_s))]
    return out


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run every server in turn, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=10000, help="number of ~1 KB visit docs (default 10000)")
    parser.add_argument("--seed", type=int, default=1, help="seed for the generated docs")
    parser.add_argument("--batch-size", type=int, default=100, help="PouchDB batch_size (its default: 100)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per server; the table shows medians")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset of: "
                        + ", ".join(SERVERS))
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERVERS]
    if unknown:
        parser.error(f"unknown server(s): {', '.join(unknown)}")
    if shutil.which("node") is None or not (PEER / "node_modules" / "pouchdb-server").is_dir():
        parser.error("needs node and bench/peer/node_modules: run  npm ci --prefix bench/peer")

    docs = make_docs(args.docs, args.seed)
    avg = sum(len(json.dumps(d)) for d in docs) / len(docs)
    with tempfile.TemporaryDirectory(prefix="bench-docs-") as tmp:
        docs_file = Path(tmp) / "docs.json"
        docs_file.write_text(json.dumps(docs))
        runs: dict[str, list[Result]] = {name: [] for name in names}
        # Interleave the servers round by round, so drift on a shared machine hits them alike.
        for round_no in range(args.repeat):
            for name in names:
                print(f"… {name} (run {round_no + 1}/{args.repeat})", file=sys.stderr, flush=True)
                runs[name].append(measure(name, docs_file, args.docs, args.batch_size))
        results = [median(rs) for rs in runs.values()]
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    runs_note = f", median of {args.repeat} runs" if args.repeat > 1 else ""
    print(f"{args.docs} visit docs (~{avg:.0f} bytes of JSON each, seed {args.seed}), "
          f"PouchDB 9.0.0 in-memory client, batch_size {args.batch_size}, node {node}{runs_note}\n")
    print(table(results))
    if args.json is not None:
        args.json.write_text(json.dumps(figures(results, args.repeat), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
