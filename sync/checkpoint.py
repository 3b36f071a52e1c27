"""Replication checkpoints: the replication id, where to resume, and the next checkpoint doc.

Pure: no I/O. Ported from pouchdb-generate-replication-id and pouchdb-checkpointer 9.0.0,
whose comparison is itself ported from CouchDB's couch_replicator.erl (L863-906,
``compare_replication_logs``). The checkpoint document is PouchDB's version 1, stored as
``_local/<replication id>`` on both sides::

    {"session_id": "<uuid>", "last_seq": <seq>, "replicator": "pouchdb", "version": 1,
     "history": [{"session_id": "<uuid>", "last_seq": <seq>}, ... newest first, at most 5]}

Using PouchDB's id and format means a PouchDB app and Wasl's replicator read each other's
checkpoints for the same pair of databases.
"""
from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

CHECKPOINT_VERSION = 1
REPLICATOR = "pouchdb"
# PouchDB's arbitrary cap: more history makes checkpoint docs big, less makes a replication
# more likely to restart from 0 after checkpoint PUTs failed. CouchDB prunes more cleverly (50).
CHECKPOINT_HISTORY_SIZE = 5
LOWEST_SEQ = 0

Json = dict[str, Any]


def replication_id(source_id: str, target_id: str, *, doc_ids: Sequence[str] = (), filter_name: str = "",
                   query_params: Mapping[str, Any] | None = None, view: str = "",
                   selector: Mapping[str, Any] | None = None) -> str:
    """The ``_local`` id (without the prefix) of a replication, as PouchDB's generateReplicationId."""
    # JavaScript coerces the sorted doc_ids array to "a,b,c", and drops query params without a filter.
    params = json.dumps(dict(sorted(query_params.items())), separators=(",", ":")) \
        if filter_name and query_params else ""
    data = (source_id + target_id + filter_name + (view if filter_name == "_view" else "") + params
            + ",".join(sorted(doc_ids)) + (json.dumps(selector, separators=(",", ":")) if selector else ""))
    digest = base64.b64encode(hashlib.md5(data.encode()).digest()).decode()
    # '/' would start an attachment name in the URL and '+' is not URL-safe.
    return digest.replace("/", ".").replace("+", "_")


def _has_session(session_id: Any, history: Sequence[Json]) -> bool:
    return bool(session_id) and any(item.get("session_id") == session_id for item in history)


def compare_replication_history(source: Sequence[Json], target: Sequence[Json]) -> tuple[Any, list[Json]]:
    """The newest session both histories know: its seq and the history to keep."""
    # couch_replicator's loop walks both histories in step, newest first.
    for i in range(min(len(source), len(target))):
        s, t = source[i], target[i]
        if _has_session(s.get("session_id"), target[i:]):
            return s.get("last_seq"), list(source[i:])
        if _has_session(t.get("session_id"), source[i + 1:]):
            return t.get("last_seq"), list(target[i + 1:])
    return LOWEST_SEQ, []


def compare_replication_logs(source_doc: Json, target_doc: Json) -> tuple[Any, list[Json]]:
    """Where two checkpoint docs agree the replication got to: ``(last_seq, history)``."""
    if source_doc.get("session_id") == target_doc.get("session_id"):
        return source_doc.get("last_seq"), list(source_doc.get("history") or [])
    return compare_replication_history(source_doc.get("history") or [], target_doc.get("history") or [])


def start_seq(source_doc: Json | None, target_doc: Json | None) -> Any:
    """The seq to resume from, given both sides' checkpoint docs (None: missing), as getCheckpoint."""
    if target_doc is None or source_doc is None:
        # A lone target checkpoint proves nothing: the source may have been recreated since.
        return LOWEST_SEQ
    if target_doc.get("version") != source_doc.get("version"):
        return LOWEST_SEQ  # an old-format doc has no session ids to compare
    if target_doc.get("version") is None:
        same = target_doc.get("last_seq") == source_doc.get("last_seq")
        return source_doc.get("last_seq") if same else LOWEST_SEQ
    if target_doc.get("version") == CHECKPOINT_VERSION:
        seq, _ = compare_replication_logs(source_doc, target_doc)
        return LOWEST_SEQ if seq is None else seq
    return LOWEST_SEQ


def next_checkpoint(doc: Json | None, last_seq: Any, session_id: str) -> Json:
    """The checkpoint doc recording ``last_seq`` for ``session_id``, built on ``doc`` (not mutated)."""
    history = [item for item in (doc or {}).get("history") or [] if item.get("session_id") != session_id]
    history.insert(0, {"last_seq": last_seq, "session_id": session_id})
    base = {k: v for k, v in (doc or {}).items() if k not in ("_id", "_rev")}
    return {**base, "session_id": session_id, "last_seq": last_seq,
            "history": history[:CHECKPOINT_HISTORY_SIZE], "replicator": REPLICATOR, "version": CHECKPOINT_VERSION}
