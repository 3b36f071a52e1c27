"""The change feed never skips a committed change (DESIGN decision 3), on SQLite and on a
real PostgreSQL with concurrent writers and an incremental reader running beside them."""
from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask

from tests.conftest import AUTH, make_app

WRITERS = 6
BATCHES = 15
PER_BATCH = 8


def run_writers_and_reader(app: Flask) -> tuple[set[str], set[str], list[int]]:
    """Write from several threads while one reader follows ``_changes`` incrementally."""
    setup = app.test_client()
    assert setup.put("/couch/feed", headers=AUTH).status_code == 201
    written: set[str] = set()
    lock = threading.Lock()
    done = threading.Event()

    def writer(n: int) -> None:
        client = app.test_client()
        for b in range(BATCHES):
            docs = [{"_id": f"w{n}-b{b}-d{i}", "n": i} for i in range(PER_BATCH)]
            resp = client.post("/couch/feed/_bulk_docs", json={"docs": docs}, headers=AUTH)
            assert resp.status_code == 201 and all(r.get("ok") for r in resp.get_json())
            with lock:
                written.update(d["_id"] for d in docs)

    seen: set[str] = set()
    seqs: list[int] = []

    def reader() -> None:
        client = app.test_client()
        since: Any = 0
        while True:
            finished = done.is_set()  # read once more after the writers stop
            body = client.get(f"/couch/feed/_changes?since={since}&limit=7", headers=AUTH).get_json()
            for row in body["results"]:
                seen.add(row["id"])
                seqs.append(row["seq"])
            since = body["last_seq"]
            if finished and not body["results"]:
                return

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    follower = threading.Thread(target=reader)
    follower.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    follower.join(60)
    assert not follower.is_alive()
    return written, seen, seqs


def check(written: set[str], seen: set[str], seqs: list[int]) -> None:
    assert len(written) == WRITERS * BATCHES * PER_BATCH
    assert seen == written, f"reader missed {len(written - seen)} committed changes"
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)), "seqs must be unique and increasing"


def test_incremental_reader_sees_every_change_on_sqlite(app: Flask) -> None:
    check(*run_writers_and_reader(app))


@pytest.mark.postgres
def test_incremental_reader_sees_every_change_on_postgresql(pg_url: str) -> None:
    app = make_app(pg_url)
    try:
        check(*run_writers_and_reader(app))
    finally:
        with app.app_context():
            from models import db
            db.session.remove()
            db.drop_all()
            db.engine.dispose()
