"""Many tablets against several Wasl servers on one PostgreSQL: the set-up shared by tests/scale and bench/scale.py.

``cluster`` runs ``plan.servers`` gunicorn servers (``plan.workers`` gthread workers each) on
loopback ports and one ``wasl worker``, all on one database. ``enrol_fleet`` gives every tablet
a CHW account in a village and a device token; the villages start with a few households and
patients. ``bench.fleetrun.run_fleet`` then drives the tablets and checks the outcome.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench import fleetdocs
from bench.groups import stop_group
from bench.replication import ROOT, VENV_BIN, free_port, wait_until_up
from wasl_cli.serve import gunicorn_command

DB_NAME = "records"
ADMIN = ("admin", "fleet-secret")
REGION = "coast"


@dataclass(frozen=True)
class Plan:
    """The size of a fleet run."""

    devices: int = 100
    pouch: int = 20  # of the devices, stock PouchDB tablets (in one node process); the rest the Python client
    villages: int = 25
    servers: int = 2
    workers: int = 3  # gunicorn gthread workers per server
    threads: int = 4  # threads per worker (PostgreSQL's 100 connections bound servers x workers x threads)
    seconds: float = 30.0
    seed: int = 7
    households: int = 2  # per village at the start, each with two patients


@dataclass(frozen=True)
class Tablet:
    """One tablet of the fleet: its CHW, village, device token, home server, and kind."""

    name: str
    user: str
    village: str
    token: str
    home: int
    pouch: bool
    seed: int


@dataclass
class Cluster:
    """The running servers and worker."""

    database_url: str
    workdir: Path
    roots: list[str]  # CouchDB roots, e.g. http://127.0.0.1:PORT/couch
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    worker: subprocess.Popen[bytes] | None = None

    def db_url(self, server: int = 0) -> str:
        """The records database on one server."""
        return f"{self.roots[server]}/{DB_NAME}"

    def wait_up(self) -> None:
        """Block until every server answers (RuntimeError with its log if one died or did not)."""
        for i, (proc, root) in enumerate(zip(self.servers, self.roots)):
            wait_until_up(root + "/", proc, self.workdir / f"server-{i}.log")

    def stop_worker(self) -> int:
        """Stop the records worker (SIGTERM) and return its exit status."""
        assert self.worker is not None
        self.worker.send_signal(signal.SIGTERM)
        return self.worker.wait(30)

    def log_errors(self) -> list[str]:
        """Lines of the server and worker logs that report an error or a traceback."""
        found = []
        for log in sorted(self.workdir.glob("*.log")):
            for line in log.read_text(errors="replace").splitlines():
                if any(mark in line for mark in ("Traceback", " ERROR ", "[ERROR]", "CRITICAL")):
                    found.append(f"{log.name}: {line.strip()[:300]}")
        return found


def server_env(workdir: Path, database_url: str) -> dict[str, str]:
    """The environment every server and the worker share (one database, one secret key)."""
    return {**os.environ, "WASL_DATABASE_URL": database_url, "WASL_ADMIN_PASSWORD": ADMIN[1],
            "WASL_INSTANCE": str(workdir / "instance"), "WASL_SECRET_KEY": "fleet-only", "WASL_RECORDS_DB": DB_NAME}


def init(workdir: Path, database_url: str) -> None:
    """``wasl init``: tables, server uuid, admin account and the records database."""
    subprocess.run([str(VENV_BIN / "wasl"), "init", "--db", DB_NAME], cwd=ROOT,
                   env=server_env(workdir, database_url), check=True, stdout=subprocess.DEVNULL)


@contextmanager
def _process(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` in its own process group until the block ends; then SIGTERM the group (SIGKILL after 15 s)."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        stop_group(proc, timeout=15)


@contextmanager
def cluster(workdir: Path, database_url: str, plan: Plan) -> Iterator[Cluster]:
    """Start the servers and the worker on an initialised database; stop them all when the block ends.

    The servers are still starting when the block begins: call ``wait_up`` before using them.
    """
    env = server_env(workdir, database_url)
    ports = [free_port() for _ in range(plan.servers)]
    running = Cluster(database_url, workdir, [f"http://127.0.0.1:{port}/couch" for port in ports])
    with ExitStack() as stack:
        for i, port in enumerate(ports):
            cmd = gunicorn_command(str(VENV_BIN / "gunicorn"), "127.0.0.1", port, workers=plan.workers,
                                   threads=plan.threads)
            running.servers.append(stack.enter_context(_process(cmd, env, workdir / f"server-{i}.log")))
        running.worker = stack.enter_context(_process([str(VENV_BIN / "wasl"), "worker", "--poll", "0.1"], env,
                                                      workdir / "worker.log"))
        yield running


def make_app(database_url: str) -> Any:
    """The app in this process on the fleet's database (to enrol tablets and check the central records).

    Its pool holds at most two connections; the caller disposes of the engine at the end.
    """
    from api import create_app
    return create_app({"SQLALCHEMY_DATABASE_URI": database_url, "WASL_RECORDS_DB": DB_NAME,
                       "SECRET_KEY": "fleet-only", "WASL_ADMIN_PASSWORD": ADMIN[1],
                       "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 2, "max_overflow": 0}})


def village_of(i: int, plan: Plan) -> str:
    """The village of tablet ``i``: neighbours share villages, so each village has several tablets."""
    v = i * plan.villages // plan.devices
    return f"{REGION}/d{v // 10}/v{v}"


def enrol_fleet(app: Any, plan: Plan) -> list[Tablet]:
    """Areas, one CHW account per tablet working in its village, and each tablet's device token.

    The accounts share one password hash, made once: they sign in with device tokens only, and
    a hundred Argon2id hashes would add eight seconds to every run.
    """
    from crypto.passwords import hash_password
    from models import db
    from models.server import User
    from sync import access, scopeindex
    from sync.devices import create_code, enrol
    shared_hash = hash_password("fleet-password")
    every = max(1, plan.devices // plan.pouch) if plan.pouch else 0
    tablets = []
    with app.app_context():
        scopeindex.enable(DB_NAME)
        villages = sorted({village_of(i, plan) for i in range(plan.devices)})
        areas = [(REGION, "region")] + sorted({(v.rsplit("/", 1)[0], "district") for v in villages})
        for path, kind in areas + [(v, "village") for v in villages]:
            access.add_area(path, kind, path.rsplit("/", 1)[-1], actor="fleet")
        for i in range(plan.devices):
            user, village = f"chw-{i:03d}", village_of(i, plan)
            db.session.add(User(name=user, password_hash=shared_hash, roles=["chw"], disabled=False))
            db.session.commit()
            access.assign(user, village, "works_in", actor="fleet")
            _, token = enrol(create_code(user), f"tablet {i}")
            pouch = bool(every) and i % every == every - 1 and sum(t.pouch for t in tablets) < plan.pouch
            tablets.append(Tablet(f"t{i:03d}", user, village, token, i % plan.servers, pouch, plan.seed * 1000 + i))
        db.session.remove()
    return tablets


def seed(cluster: Cluster, plan: Plan, tablets: list[Tablet]) -> dict[str, str]:
    """The villages' first households and patients, written by the admin; return {doc id: village}."""
    rng = random.Random(plan.seed)
    docs = [doc for village in sorted({t.village for t in tablets})
            for doc in fleetdocs.seed_village(rng, village, plan.households, 2)]
    resp = requests.post(f"{cluster.db_url()}/_bulk_docs", json={"docs": docs}, auth=ADMIN, timeout=60)
    resp.raise_for_status()
    refused = [item for item in resp.json() if "error" in item]
    if refused:
        raise RuntimeError(f"the server refused seed documents: {refused[:3]}")
    return {doc["_id"]: doc["area"] for doc in docs}
