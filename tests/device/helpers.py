"""Helpers for the device round-trip and kill tests: snapshots of both sides, a gunicorn server."""
from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import crypto
from bench.groups import stop_group
from bench.replication import ROOT, VENV_BIN, wait_until_up
from sync.device import DeviceStore

from ..replication.helpers import ADMIN, Db

PIN = "204817"
# The floor crypto.new_params allows: each create/unlock stays fast in tests.
FAST = crypto.new_params(memory_kib=19 * 1024, iterations=2, lanes=1)
Json = dict[str, Any]


# ------------------------------------------------------------------------------------------------- snapshots
def _leaf(doc: Json) -> Json:
    """A replicated leaf with inline attachments reduced to comparable metadata (bytes checked against md5)."""
    doc = dict(doc)
    atts = doc.pop("_attachments", None)
    if atts:
        out = {}
        for name, att in atts.items():
            assert "data" in att, (doc["_id"], name, att)
            data = base64.b64decode(att["data"])
            md5 = "md5-" + base64.b64encode(hashlib.md5(data).digest()).decode()
            assert att["digest"] == md5, (doc["_id"], name, att["digest"], md5)
            if "length" in att:
                assert att["length"] == len(data), (doc["_id"], name)
            out[name] = {"content_type": att["content_type"], "digest": att["digest"], "revpos": att["revpos"],
                         "length": len(data)}
        doc["_attachments"] = out
    return doc


def _winner_doc(doc: Json) -> Json:
    """The winner as a plain GET returns it, with ``_conflicts`` sorted (the order is not specified)."""
    doc = dict(doc)
    if "_conflicts" in doc:
        doc["_conflicts"] = sorted(doc["_conflicts"])
    return doc


def server_state(db: Db) -> dict[str, Json]:
    """Every doc on the server: deleted flag, winner (GET ?conflicts=true), leaves (open_revs=all), bytes."""
    state: dict[str, Json] = {}
    for row in db.call("GET", "_changes", style="all_docs")["results"]:
        doc_id = row["id"]
        if doc_id.startswith("_design/"):
            continue
        leaves = db.get(doc_id, open_revs="all", revs="true", attachments="true")
        assert all("ok" in item for item in leaves), leaves
        entry: Json = {"deleted": bool(row.get("deleted")),
                       "leaves": {item["ok"]["_rev"]: _leaf(item["ok"]) for item in leaves},
                       "winner": None, "bytes": {}}
        if not entry["deleted"]:
            winner = db.get(doc_id, conflicts="true")
            entry["winner"] = _winner_doc(winner)
            entry["bytes"] = {name: db.attachment(doc_id, name) for name in winner.get("_attachments", {})}
        state[doc_id] = entry
    return state


def device_state(store: DeviceStore) -> dict[str, Json]:
    """The same view of the device store: changes (all leaves), bulk_get of each leaf, get, get_attachment."""
    state: dict[str, Json] = {}
    for row in store.changes(0, 0).results:
        doc_id = row["id"]
        revs = [change["rev"] for change in row["changes"]]
        docs = store.bulk_get([{"id": doc_id, "rev": rev} for rev in revs])
        entry: Json = {"deleted": bool(row.get("deleted")), "leaves": {doc["_rev"]: _leaf(doc) for doc in docs},
                       "winner": None, "bytes": {}}
        assert sorted(entry["leaves"]) == sorted(revs), (doc_id, revs)
        if not entry["deleted"]:
            winner = store.get(doc_id)
            entry["winner"] = _winner_doc(winner)
            entry["bytes"] = {name: store.get_attachment(doc_id, name) for name in winner.get("_attachments", {})}
        state[doc_id] = entry
    return state


def _drop_revpos(state: dict[str, Json]) -> None:
    """Forget attachment revpos (pouchdb-server's LevelDB adapter rewrites it to the rev's generation)."""
    for entry in state.values():
        for doc in [*entry["leaves"].values(), entry["winner"] or {}]:
            for att in doc.get("_attachments", {}).values():
                att.pop("revpos", None)


def assert_same(store: DeviceStore, db: Db, *, revpos: bool = True) -> dict[str, Json]:
    """Both sides hold the same ids, winners, conflicts, leaves, bodies and attachment bytes; return the state.

    ``revpos=False`` leaves attachment revpos out of the comparison.
    """
    ours, theirs = device_state(store), server_state(db)
    if not revpos:
        _drop_revpos(ours)
        _drop_revpos(theirs)
    assert sorted(ours) == sorted(theirs), (sorted(ours), sorted(theirs))
    for doc_id in ours:
        mine, other = ours[doc_id], theirs[doc_id]
        assert mine["deleted"] == other["deleted"], doc_id
        assert sorted(mine["leaves"]) == sorted(other["leaves"]), (doc_id, sorted(mine["leaves"]),
                                                                   sorted(other["leaves"]))
        for rev in mine["leaves"]:
            assert mine["leaves"][rev] == other["leaves"][rev], (doc_id, rev, mine["leaves"][rev],
                                                                 other["leaves"][rev])
        assert mine["winner"] == other["winner"], (doc_id, mine["winner"], other["winner"])
        assert mine["bytes"] == other["bytes"], doc_id
    return ours


# ------------------------------------------------------------------------------------------------- gunicorn
def wasl_env(workdir: Path, password: str) -> dict[str, str]:
    """The environment of a Wasl server on ``workdir``/wasl.sqlite (as bench/replication.py sets it)."""
    return {**os.environ, "WASL_DATABASE_URL": f"sqlite:///{workdir}/wasl.sqlite",
            "WASL_ADMIN_PASSWORD": password, "WASL_INSTANCE": str(workdir / "instance"),
            "WASL_SECRET_KEY": "test-only"}


def wasl_init(workdir: Path, db_name: str, password: str = ADMIN[1]) -> None:
    """``wasl init --db db_name``: tables, server uuid, admin account and the database."""
    subprocess.run([str(VENV_BIN / "wasl"), "init", "--db", db_name], cwd=ROOT, env=wasl_env(workdir, password),
                   check=True, stdout=subprocess.DEVNULL)


@contextmanager
def gunicorn(workdir: Path, port: int, password: str = ADMIN[1]) -> Iterator[subprocess.Popen[bytes]]:
    """Wasl under gunicorn (gthread, 1 worker) on ``port`` in its own process group, until the block ends."""
    log = workdir / "server.log"
    cmd = [str(VENV_BIN / "gunicorn"), "-k", "gthread", "--threads", "8", "-w", "1",
           "-b", f"127.0.0.1:{port}", "--timeout", "300", "wsgi:app"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=wasl_env(workdir, password), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/couch/", proc, log)
        yield proc
    finally:
        stop_group(proc)
