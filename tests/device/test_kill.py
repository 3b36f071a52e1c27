"""SIGKILL of a real Wasl server (gunicorn, SQLite file) in the middle of a device's push.

The push resumes from the device's checkpoint after the restart, and the server ends with
exactly the device's documents and revisions: nothing lost, nothing duplicated.
"""
from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

from bench.groups import stop_group
from bench.replication import free_port, make_docs
from sync import checkpoint
from sync.device import DeviceStore
from sync.remote import RemoteDatabase
from sync.replicator import ReplicationResult, Replicator

from ..replication.helpers import ADMIN, Db, Wrapped
from .helpers import FAST, PIN, gunicorn, wasl_init

TOTAL = 3000
BATCH = 100
KILL_AFTER_BATCHES = 4
DB_NAME = "killed"


def push(store: DeviceStore, url: str, **options: Any) -> ReplicationResult:
    """One push run from the device to the server."""
    with RemoteDatabase(url, auth=ADMIN) as remote:
        return Replicator(store, remote, batch_size=BATCH, sleep=lambda s: None, **options).run()


def test_push_resumes_after_server_sigkill(tmp_path: Path) -> None:
    started = time.monotonic()
    port = free_port()
    url = f"http://127.0.0.1:{port}/couch/{DB_NAME}"
    wasl_init(tmp_path, DB_NAME)
    store = DeviceStore.create(str(tmp_path / "device.sqlite"), PIN, kdf_params=FAST)
    try:
        for doc in make_docs(TOTAL, seed=7):
            store.put(doc)
        store.put({**store.get(make_docs(1, seed=7)[0]["_id"]), "edited": True})  # one doc at 2-
        assert store.update_seq() == TOTAL + 1

        # Run 1: once a few batches are checkpointed, kill -9 the whole gunicorn process group
        # while the next batch's _bulk_docs is in flight.
        calls: list[int] = []
        posting = threading.Event()

        def progress(docs_read: int, pending: int) -> None:
            calls.append(docs_read)

        def bulk_docs(original: Any, docs: list[dict[str, Any]]) -> Any:
            if len(calls) >= KILL_AFTER_BATCHES and not posting.is_set():
                posting.set()
            return original(docs)

        first: list[ReplicationResult] = []
        with gunicorn(tmp_path, port) as proc:
            with RemoteDatabase(url, auth=ADMIN) as remote:
                rep_id = checkpoint.replication_id(store.identifier(), remote.identifier())

            def run() -> None:
                with RemoteDatabase(url, auth=ADMIN) as remote:
                    target = Wrapped(remote, bulk_docs_replicated=bulk_docs)
                    first.append(Replicator(store, target, batch_size=BATCH, progress=progress, retries=2,
                                            backoff=(0.01, 0.05), sleep=lambda s: None).run())

            thread = threading.Thread(target=run)
            thread.start()
            assert posting.wait(30), f"no {KILL_AFTER_BATCHES} batches in 30 s: {calls}"
            stop_group(proc, signal.SIGKILL)
            thread.join(30)
            assert not thread.is_alive()
        assert proc.returncode == -signal.SIGKILL
        result1 = first[0]
        assert not result1.ok and result1.batches >= KILL_AFTER_BATCHES, result1
        assert result1.batches < TOTAL // BATCH, "the push finished before the kill: nothing was interrupted"
        saved = store.get_local(rep_id)
        assert saved is not None
        since = saved["last_seq"]
        assert KILL_AFTER_BATCHES * BATCH <= since < TOTAL, saved

        # Run 2: same port, same SQLite file; the push resumes at the device's checkpoint.
        with gunicorn(tmp_path, port):
            server = Db(url)
            # Every checkpointed batch survived the kill (seqs 2..since; doc 0 moved to the last seq).
            before = server.call("GET")["doc_count"]
            assert since - 1 <= before <= since - 1 + BATCH, (since, before)
            result2 = push(store, url)
            assert result2.ok and not result2.errors, result2
            assert result2.batches == (TOTAL + 1 - since + BATCH - 1) // BATCH, (since, result2)
            # It did not start over, and re-sent nothing the killed server had already committed.
            assert result2.docs_read == result2.docs_written == TOTAL - before < TOTAL, (since, before, result2)
            assert result2.last_seq == TOTAL + 1
            assert store.get_local(rep_id)["last_seq"] == TOTAL + 1

            # The server holds exactly the device's docs and revisions.
            rows = server.call("GET", "_all_docs", include_docs="true", conflicts="true")["rows"]
            ours = {doc["_id"]: doc for doc in store.all_docs()}
            assert len(rows) == len(ours) == TOTAL
            assert sorted(row["id"] for row in rows) == sorted(ours)
            for row in rows:
                assert row["value"]["rev"] == ours[row["id"]]["_rev"], row["id"]
                assert row["doc"] == ours[row["id"]], row["id"]  # same body; no _conflicts on either side
            info = server.call("GET")
            assert info["doc_count"] == TOTAL and info["doc_del_count"] == 0, info
            changes = server.call("GET", "_changes", style="all_docs")["results"]
            assert len(changes) == TOTAL == len({row["id"] for row in changes})
            assert all(len(row["changes"]) == 1 for row in changes)
            server.close()

            # Run 3: nothing left to do.
            result3 = push(store, url)
            assert result3.ok and result3.docs_read == 0 and result3.docs_written == 0, result3
    finally:
        store.close()
    assert time.monotonic() - started < 60
