"""CouchDB's replication algorithm between any two ``Endpoint``s, built for 2G links.

One batch is: ``changes(since, n)`` on the source -> ``revs_diff`` on the target ->
``bulk_get`` from the source -> ``bulk_docs_replicated`` on the target -> the checkpoint,
written to the target and then the source (pouchdb-replication's order). A checkpoint is
written only after its batch is stored on the target, so an interrupted run resumes at
the last checkpoint and re-sends at most one batch, which the target then no-ops.

Failures: ``TransientError`` (a broken connection, a timeout, a 5xx) retries the whole
batch after an exponential back-off with full jitter; a timeout or ``TooLarge`` also halves
the batch (down to one change). Per-document ``forbidden``/``unauthorized`` items are
recorded in ``errors`` while the rest replicates (PouchDB's ``denied``); any other failure
ends the run with ``ok=False``. See docs/replication.md.
"""
from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sync import checkpoint
from sync.endpoint import ChangesBatch, Endpoint, Json
from sync.errors import CouchError, TimedOut, TooLarge, TransientError

Progress = Callable[[int, int], None]
# Per-document errors that mean "this user may not write that": recorded, not fatal (PouchDB).
DENIED = ("forbidden", "unauthorized")


@dataclass(frozen=True)
class ReplicationResult:
    """What one run did (pouchdb-replication's result fields, plus batches and retries)."""

    ok: bool
    docs_read: int = 0
    docs_written: int = 0
    doc_write_failures: int = 0
    errors: list[Json] = field(default_factory=list)
    last_seq: Any = 0
    start_time: datetime | None = None
    end_time: datetime | None = None
    batches: int = 0
    retries: int = 0
    failure: CouchError | None = None  # why ok is False


class BatchFailed(CouchError):
    """The target refused a document for a reason other than permission: the run stops."""

    status, error, reason = 500, "replication_failed", "A document could not be written"


@dataclass
class _Tally:
    """Mutable counters of a run, frozen into the result at the end."""

    docs_read: int = 0
    docs_written: int = 0
    doc_write_failures: int = 0
    errors: list[Json] = field(default_factory=list)
    batches: int = 0
    retries: int = 0
    denied: set[tuple[Any, Any]] = field(default_factory=set)


class Replicator:
    """One-shot replication from ``source`` to ``target``."""

    def __init__(self, source: Endpoint, target: Endpoint, *, batch_size: int = 100, retries: int = 8,
                 backoff: tuple[float, float] = (0.5, 30.0), sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None, progress: Progress | None = None) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.source, self.target = source, target
        self.batch_size = batch_size
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.progress = progress
        self.session_id = uuid.uuid4().hex
        self.write_source_checkpoint = True
        self._tally = _Tally()
        self._rep_id = ""
        self._logs: dict[str, Json | None] = {"source": None, "target": None}

    def run(self) -> ReplicationResult:
        """Replicate every change the target lacks, then return what happened."""
        start = datetime.now(timezone.utc)
        since: Any = checkpoint.LOWEST_SEQ
        failure: CouchError | None = None
        try:
            since = self._retrying(self._start)
            while True:
                since, more = self._retrying(lambda: self._batch(since))
                if not more:
                    break
        except CouchError as exc:
            failure = exc
        t = self._tally
        return ReplicationResult(ok=failure is None, docs_read=t.docs_read, docs_written=t.docs_written,
                                 doc_write_failures=t.doc_write_failures, errors=list(t.errors), last_seq=since,
                                 start_time=start, end_time=datetime.now(timezone.utc), batches=t.batches,
                                 retries=t.retries, failure=failure)

    # ------------------------------------------------------------------ retry policy
    def _retrying(self, step: Callable[[], Any]) -> Any:
        """Run ``step``; on transient failures back off and retry, halving the batch on timeouts."""
        failures = 0
        while True:
            try:
                return step()
            except TooLarge:
                if self.batch_size == 1:
                    raise  # one document is too large: halving cannot help
                self.batch_size = max(1, self.batch_size // 2)
                self._tally.retries += 1
            except TransientError as exc:
                failures += 1
                if failures > self.retries:
                    raise
                if isinstance(exc, TimedOut):
                    # On a slow link a smaller batch may fit in the read timeout.
                    self.batch_size = max(1, self.batch_size // 2)
                self._tally.retries += 1
                self.sleep(self._delay(failures))

    def _delay(self, failures: int) -> float:
        """Exponential back-off with full jitter (AWS's "full jitter": uniform in [0, cap])."""
        base, cap = self.backoff
        return self.rng.uniform(0, min(cap, base * 2 ** (failures - 1)))

    # ------------------------------------------------------------------ steps
    def _start(self) -> Any:
        """Compute the replication id, read both checkpoints, and return the seq to start from."""
        self._rep_id = checkpoint.replication_id(self.source.identifier(), self.target.identifier())
        target_doc = self.target.get_local(self._rep_id)
        source_doc = self.source.get_local(self._rep_id)
        self._logs = {"source": source_doc, "target": target_doc}
        if source_doc is None and target_doc is not None and target_doc.get("last_seq"):
            return self._source_lost(target_doc)
        return checkpoint.start_seq(source_doc, target_doc)

    def _source_lost(self, target_doc: Json) -> Any:
        """The source has no checkpoint but the target has: start over, unless the source is read-only."""
        # pouchdb-checkpointer writes a seq-0 doc to the source; a 4xx proves the source read-only,
        # so it can never have a checkpoint and the target's must be trusted.
        try:
            self.source.put_local(self._rep_id, {"last_seq": checkpoint.LOWEST_SEQ})
        except TransientError:
            raise
        except CouchError as exc:
            if 400 <= exc.status < 500:
                self.write_source_checkpoint = False
                return target_doc.get("last_seq", checkpoint.LOWEST_SEQ)
            raise
        self._logs["source"] = None  # the seq-0 doc carries no history worth keeping
        return checkpoint.LOWEST_SEQ

    def _batch(self, since: Any) -> tuple[Any, bool]:
        """Replicate one batch of changes after ``since``; return the new seq and whether to go on."""
        limit = self.batch_size
        batch: ChangesBatch = self.source.changes(since, limit)
        if not batch.results:
            return since, False
        missing = self._missing(batch.results)
        docs = self.source.bulk_get([{"id": doc_id, "rev": rev} for doc_id, revs in missing.items()
                                     for rev in revs])
        self._write(docs)
        self._tally.docs_read += len(docs)
        seq = batch.results[-1].get("seq", batch.last_seq)
        self._write_checkpoint(seq)
        self._tally.batches += 1
        more = len(batch.results) >= limit
        if self.progress is not None:
            # Endpoints that know it report ``pending`` (CouchDB's _changes does); else count what we know.
            pending = getattr(batch, "pending", None)
            self.progress(self._tally.docs_read, pending if isinstance(pending, int) else int(more))
        # Fewer rows than asked for means the feed is drained: skip the empty read a 2G link pays for.
        return seq, more

    def _missing(self, rows: list[Json]) -> dict[str, list[str]]:
        """The revs of ``rows`` the target lacks, by doc id."""
        revs: dict[str, list[str]] = {}
        for row in rows:
            revs.setdefault(row["id"], []).extend(c["rev"] for c in row.get("changes", []))
        diff = self.target.revs_diff(revs)
        return {doc_id: list(entry.get("missing", [])) for doc_id, entry in diff.items() if entry.get("missing")}

    def _write(self, docs: list[Json]) -> None:
        """Store ``docs`` on the target; record denied ones, fail on any other per-document error."""
        if not docs:
            return
        failures = self.target.bulk_docs_replicated(docs)
        denied = [item for item in failures if item.get("error") in DENIED]
        others = [item for item in failures if item.get("error") not in DENIED]
        if others:
            first = others[0]
            raise BatchFailed(f"{first.get('id')} {first.get('rev', '')}: {first.get('error')}: "
                              f"{first.get('reason', '')}")
        for item in denied:
            # A retried batch is refused again: report each refused revision once.
            if (item.get("id"), item.get("rev")) not in self._tally.denied:
                self._tally.denied.add((item.get("id"), item.get("rev")))
                self._tally.errors.append({"id": item.get("id"), "rev": item.get("rev"),
                                           "error": item.get("error"), "reason": item.get("reason")})
                self._tally.doc_write_failures += 1
        self._tally.docs_written += len(docs) - len(denied)

    def _write_checkpoint(self, seq: Any) -> None:
        """Record ``seq`` on the target, then on the source (a 4xx there disables source checkpoints)."""
        self._put_checkpoint("target", self.target, seq)
        if not self.write_source_checkpoint:
            return
        try:
            self._put_checkpoint("source", self.source, seq)
        except TransientError:
            raise
        except CouchError as exc:
            if not 400 <= exc.status < 500:
                raise
            # pouchdb-checkpointer: a read-only source (e.g. a 403 for this user) keeps replicating.
            self.write_source_checkpoint = False

    def _put_checkpoint(self, side: str, endpoint: Endpoint, seq: Any) -> None:
        """Write the checkpoint doc on one side unless it already says ``seq``."""
        current = self._logs[side]
        if current is not None and current.get("last_seq") == seq and current.get("session_id") == self.session_id:
            return
        doc = checkpoint.next_checkpoint(current, seq, self.session_id)
        endpoint.put_local(self._rep_id, doc)
        self._logs[side] = doc


def replicate(source: Endpoint, target: Endpoint, **options: Any) -> ReplicationResult:
    """Replicate ``source`` to ``target`` once (options as ``Replicator``)."""
    return Replicator(source, target, **options).run()


def sync_both(local: Endpoint, remote: Endpoint, **options: Any) -> tuple[ReplicationResult, ReplicationResult]:
    """Push ``local`` to ``remote``, then pull ``remote`` into ``local``; return (push, pull)."""
    # Push first: a device's unsynced work reaches the server before anything can replace it.
    push = replicate(local, remote, **options)
    pull = replicate(remote, local, **options)
    return push, pull
