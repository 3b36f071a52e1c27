"""Scope benchmark: a CHW's initial pull costs the same on a server ten or five hundred times larger.

A CHW whose scope holds 2,000 documents (her village's households, patients and visits)
pulls with the project's own tablet client (``sync.device.DeviceStore`` + ``Replicator``,
its device token) from a Wasl server holding 20,000 documents, then from one holding
1,000,000. The documents are generated straight into the store (``couch_document``,
``couch_revision`` and ``scope_key``, executemany in big batches), her village's spread
evenly through the sequence. Then a sync with nothing new: its requests and the server's
time on them (a WSGI wrapper adds up the time spent inside the app).

Run from the repository root: ``.venv/bin/python bench/scope.py [--sizes 20000,1000000]``.
Prints a markdown table with the targets: the second pull at most 1.2 times the first; a
sync with nothing new at most 3 requests and 50 ms of server time. Each pull starts from a
new, empty tablet store; the sizes take turns, and the table shows the median of ``--repeat``
pulls (and of as many syncs with nothing new), after one discarded round.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import crypto  # noqa: E402
from bench import report  # noqa: E402
from bench.serve import serve_in_thread  # noqa: E402
from api import create_app  # noqa: E402
from models import db, init_db  # noqa: E402
from sync import access, jsoncodec, scopeindex  # noqa: E402
from sync.device import DeviceStore  # noqa: E402
from sync.devices import create_code, enrol  # noqa: E402
from sync.remote import RemoteDatabase  # noqa: E402
from sync.replicator import Replicator  # noqa: E402
from sync.scope import doc_keys  # noqa: E402
from sync.store import create_database  # noqa: E402

DB_NAME = "records"
CHW, VILLAGE = "chw-bench", "r0/d0/v0"
PIN = "204817"
FAST = crypto.new_params(memory_kib=19 * 1024, iterations=2, lanes=1)
BATCH = 20_000  # documents per executemany
TARGET_RATIO, TARGET_REQUESTS, TARGET_NOOP_MS = 1.2, 3, 50.0
T = "2026-03-02T09:30:00Z"


# ------------------------------------------------------------------------------------------------- data
def village(i: int) -> str:
    """The i-th of the other villages: 10 regions x 10 districts x 50 villages."""
    return f"r{i % 10}/d{(i // 10) % 10}/v{1 + (i // 100) % 50}"


def record(n: int, area: str, rng: random.Random) -> dict[str, Any]:
    """Document number ``n`` in ``area``: a household, a patient or a visit (about 400 bytes)."""
    base = {"area": area, "updated_at": T, "updated_by": CHW if area == VILLAGE else f"chw-{n % 400}"}
    kind = n % 4
    if kind == 0:
        return {"_id": f"hh-{n:07d}", "type": "household", "name": f"House {n}", "landmark": "by the well",
                "gps": {"lat": round(rng.uniform(-15, -9), 5), "lon": round(rng.uniform(33, 36), 5)}, **base}
    if kind == 1:
        return {"_id": f"pt-{n:07d}", "type": "patient", "household_id": f"hh-{n - 1:07d}", "given_name": "Amina",
                "family_name": "Banda", "sex": "female", "birth_date": "1991-06-14",
                "consent": {"share_with_partners": rng.random() < 0.5}, **base}
    return {"_id": f"vs-{n:07d}", "type": "visit", "patient_id": f"pt-{n - n % 4 + 1:07d}", "chw": base["updated_by"],
            "visited_at": T, "kind": "routine", "notes": "fever two days, RDT done, counselled on ORS and zinc",
            "observations": {"temperature_c": round(rng.uniform(36, 40), 1), "malaria_rdt": "negative",
                             "weight_kg": round(rng.uniform(3, 80), 1)}, **base}


def generate(total: int, in_scope: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """``total`` documents, ``in_scope`` of them in the CHW's village, spread evenly through the sequence."""
    rng = random.Random(seed)
    step = total / in_scope
    mine = {int(i * step) for i in range(in_scope)}
    for n in range(total):
        yield record(n, VILLAGE if n in mine else village(n), rng)


_DOC = ("INSERT INTO couch_document (id, database_id, doc_id, rev_tree, winning_rev, deleted, seq)"
        " VALUES (:id, :db, :doc_id, :tree, :rev, :deleted, :seq)")
_REV = "INSERT INTO couch_revision (document_id, rev, body, deleted) VALUES (:id, :rev, :body, :deleted)"
_KEY = "INSERT INTO scope_key (database_id, document_id, key, seq) VALUES (:db, :id, :key, :seq)"


def load(docs: Iterable[dict[str, Any]], total: int, progress: Callable[[int], None]) -> int:
    """Write ``docs`` straight into the tables (one revision each, seq = row id); return the key rows."""
    from sqlalchemy import text
    database_id = db.session.execute(text("SELECT id FROM couch_database WHERE name = :n"), {"n": DB_NAME}).scalar()
    rows: tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]] = ([], [], [])
    keys = 0
    for n, doc in enumerate(docs, start=1):
        rev_hash = f"{random.getrandbits(128):032x}"
        rev = f"1-{rev_hash}"
        body = {k: v for k, v in doc.items() if k != "_id"}
        rows[0].append({"id": n, "db": database_id, "doc_id": doc["_id"], "rev": rev, "deleted": False, "seq": n,
                        "tree": f'[[1,"{rev_hash}",-1,{{"status":"available"}}]]'})
        rows[1].append({"id": n, "rev": rev, "body": jsoncodec.dumps(body), "deleted": False})
        rows[2].extend({"db": database_id, "id": n, "key": key, "seq": n} for key in doc_keys(doc))
        if n % BATCH == 0 or n == total:
            for sql, batch in zip((_DOC, _REV, _KEY), rows):
                db.session.execute(text(sql), batch)
            db.session.commit()
            keys += len(rows[2])
            rows = ([], [], [])
            progress(n)
    db.session.execute(text("UPDATE couch_database SET update_seq = :n, doc_count = :n WHERE id = :db"),
                       {"n": total, "db": database_id})
    db.session.commit()
    return keys


# ------------------------------------------------------------------------------------------------- server
@dataclass
class Meter:
    """Requests served and the time spent inside the app, since the last ``reset``."""

    requests: int = 0
    seconds: float = 0.0

    def reset(self) -> None:
        self.requests, self.seconds = 0, 0.0


def metered(app: Any, meter: Meter) -> Callable[..., Any]:
    """Wrap a WSGI app: count each request and add the time until its body is fully produced."""
    inner = app.wsgi_app

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        body = list(inner(environ, start_response))
        meter.requests += 1
        meter.seconds += time.perf_counter() - started
        return body
    return wsgi


@contextmanager
def serving(app: Any, meter: Meter) -> Iterator[str]:
    """Serve ``app`` on loopback in a thread, its server time metered; yield its base URL."""
    plain = app.wsgi_app
    app.wsgi_app = metered(app, meter)
    try:
        with serve_in_thread(app, quiet=True) as url:
            yield url
    finally:
        app.wsgi_app = plain


# ------------------------------------------------------------------------------------------------- run
@dataclass(frozen=True)
class Figures:
    """One server size's figures."""

    total: int
    in_scope: int
    key_rows: int
    load_s: float
    pull_s: float  # the median of runs
    runs: tuple[float, ...]
    pulled: int
    pull_requests: int
    noop_requests: int
    noop_server_ms: float


def pull(base: str, token: str, path: Path, in_scope: int, meter: Meter) -> tuple[float, int, int, DeviceStore]:
    """One initial pull into a new tablet store: (seconds, documents read, requests, the open store)."""
    store = DeviceStore.create(str(path), PIN, kdf_params=FAST, db_name=DB_NAME)
    meter.reset()
    with RemoteDatabase(f"{base}/couch/{DB_NAME}", auth=token) as remote:
        started = time.monotonic()
        result = Replicator(remote, store, batch_size=100, sleep=lambda s: None).run()
        seconds = time.monotonic() - started
    if not result.ok or len(store.held_ids()) != in_scope:
        raise RuntimeError(f"pull failed or incomplete: {result}, {len(store.held_ids())} held")
    return seconds, result.docs_read, meter.requests, store


def progress(total: int) -> Callable[[int], None]:
    """A one-line counter on stderr."""
    return lambda n: print(f"\r… {n:,}/{total:,} documents", end="", file=sys.stderr, flush=True)


@dataclass
class Server:
    """One generated server: its app, the CHW's device token, how it was built, and its pulls."""

    total: int
    in_scope: int
    app: Any
    token: str
    key_rows: int
    load_s: float
    meter: Meter
    runs: list[float]


def build(total: int, in_scope: int, workdir: Path, url: str | None) -> Server:
    """A server of ``total`` documents, ``in_scope`` of them the CHW's, and her enrolled tablet."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": url or f"sqlite:///{workdir}/bench.sqlite",
                      "WASL_RECORDS_DB": DB_NAME, "SECRET_KEY": "bench-only", "WASL_ADMIN_PASSWORD": "bench-secret"})
    with app.app_context():
        init_db()
        create_database(DB_NAME)
        scopeindex.enable(DB_NAME)
        for path, kind in (("r0", "region"), ("r0/d0", "district"), (VILLAGE, "village")):
            access.add_area(path, kind, path, actor="bench")
        access.add_user(CHW, "bench-password", ["chw"], actor="bench")
        access.assign(CHW, VILLAGE, "works_in", actor="bench")
        _, token = enrol(create_code(CHW), "bench tablet")
        started = time.monotonic()
        keys = load(generate(total, in_scope), total, progress(total))
        load_s = time.monotonic() - started
        print(file=sys.stderr)
        db.session.remove()
    return Server(total, in_scope, app, token, keys, load_s, Meter(), [])


def noop_sync(base: str, server: Server, store: DeviceStore, times: int) -> tuple[int, float]:
    """Syncs with nothing new, each as a new session (the tablet's next sync): (most requests, median server ms)."""
    requests, seconds = [], []
    for _ in range(times):
        server.meter.reset()
        with RemoteDatabase(f"{base}/couch/{DB_NAME}", auth=server.token) as fresh:
            again = Replicator(fresh, store, batch_size=100, sleep=lambda s: None).run()
        if not again.ok or again.docs_read:
            raise RuntimeError(f"the no-op sync moved documents: {again}")
        requests.append(server.meter.requests)
        seconds.append(server.meter.seconds)
    return max(requests), statistics.median(seconds) * 1000


def measure(servers: list[Server], workdir: Path, repeat: int) -> list[Figures]:
    """Pull each server's scope ``repeat`` times, the servers taking turns (so load drift hits all alike)."""
    with ExitStack() as stack:
        bases = [stack.enter_context(serving(s.app, s.meter)) for s in servers]
        stores: list[DeviceStore] = []
        counts: list[tuple[int, int]] = []
        for round_no in range(repeat):
            for i, (server, base) in enumerate(zip(servers, bases)):
                path = workdir / f"tablet-{server.total}-{uuid.uuid4().hex}.sqlite"
                seconds, read, requests, store = pull(base, server.token, path, server.in_scope, server.meter)
                server.runs.append(seconds)
                if round_no == repeat - 1:
                    stores.append(stack.enter_context(store))
                    counts.append((read, requests))
                else:
                    store.close()
        noops = [noop_sync(base, server, store, repeat) for server, base, store in zip(servers, bases, stores)]
    for server in servers:
        with server.app.app_context():
            db.session.remove()
            db.engine.dispose()
    return [Figures(s.total, s.in_scope, s.key_rows, s.load_s, statistics.median(s.runs), tuple(s.runs), *count,
                    *noop) for s, count, noop in zip(servers, counts, noops)]


def table(figures: list[Figures]) -> str:
    """The markdown table, with the targets checked."""
    lines = ["| documents on server | in scope | key rows | generated in s | initial pull s, median (each run) "
             "| pulled | requests | no-op sync requests | no-op server ms (median) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for f in figures:
        runs = " / ".join(f"{r:.2f}" for r in f.runs)
        lines.append(f"| {f.total:,} | {f.in_scope:,} | {f.key_rows:,} | {f.load_s:.0f} | {f.pull_s:.2f} ({runs}) "
                     f"| {f.pulled:,} | {f.pull_requests} | {f.noop_requests} | {f.noop_server_ms:.1f} |")
    first, last = figures[0], figures[-1]
    ratio = last.pull_s / first.pull_s
    lines += ["", f"pull at {last.total:,} / pull at {first.total:,}: {ratio:.2f} (target ≤ {TARGET_RATIO}: "
                  f"{'met' if ratio <= TARGET_RATIO else 'MISSED'})",
              f"no-op sync at {last.total:,}: {last.noop_requests} requests (target ≤ {TARGET_REQUESTS}: "
              f"{'met' if last.noop_requests <= TARGET_REQUESTS else 'MISSED'}), {last.noop_server_ms:.1f} ms "
              f"of server time (target ≤ {TARGET_NOOP_MS:.0f}: "
              f"{'met' if last.noop_server_ms <= TARGET_NOOP_MS else 'MISSED'})"]
    return "\n".join(lines)


def json_rows(figures: list[Figures]) -> list[dict[str, object]]:
    """The figures of the combined table: the pull at the largest size and the no-op sync there."""
    first, last = figures[0], figures[-1]
    ratio = last.pull_s / first.pull_s
    return [report.row(f"scoped initial pull, {last.in_scope:,} of {last.total:,} docs",
                       f"{last.pull_s:.2f} s ({ratio:.2f} × the pull at {first.total:,})",
                       f"≤ {TARGET_RATIO} ×", ratio <= TARGET_RATIO),
            report.row(f"sync with nothing new, {last.total:,} docs",
                       f"{last.noop_requests} requests, {last.noop_server_ms:.1f} ms server",
                       f"≤ {TARGET_REQUESTS} requests, ≤ {TARGET_NOOP_MS:.0f} ms",
                       last.noop_requests <= TARGET_REQUESTS and last.noop_server_ms <= TARGET_NOOP_MS)]


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, measure each size, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,1000000", help="documents on the server, comma-separated")
    parser.add_argument("--in-scope", type=int, default=2000, help="documents in the CHW's scope (default 2000)")
    parser.add_argument("--repeat", type=int, default=5, help="pulls per size, the sizes taking turns; the table "
                        "shows the median")
    parser.add_argument("--database-url", default=os.environ.get("WASL_BENCH_DATABASE_URL"),
                        help="an empty database to use instead of a SQLite file (one size per run)")
    parser.add_argument("--json", help="also write the figures for bench/all.py to this file")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if any(s < args.in_scope for s in sizes):
        parser.error("every size must hold at least --in-scope documents")
    if args.database_url and len(sizes) > 1:
        parser.error("--database-url takes one size per run")
    with tempfile.TemporaryDirectory(prefix="bench-scope-") as tmp:
        dirs = [Path(tmp) / str(size) for size in sizes]
        for folder in dirs:
            folder.mkdir()
        servers = [build(size, args.in_scope, folder, args.database_url) for size, folder in zip(sizes, dirs)]
        # One discarded round: the process's first requests (imports, connections) would count against the
        # first server only.
        measure(servers, Path(tmp), 1)
        for server in servers:
            server.runs.clear()
        figures = measure(servers, Path(tmp), max(1, args.repeat))
    print(f"A CHW's pull with the tablet client (batch_size 100, device token; median of {args.repeat}), "
          f"SQLite in-process server"
          f"{'' if not args.database_url else ' on ' + args.database_url.split('://')[0]}, Python "
          f"{sys.version.split()[0]}\n")
    print(table(figures))
    report.write(args.json, "scope", json_rows(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
