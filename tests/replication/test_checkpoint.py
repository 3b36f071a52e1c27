"""The checkpoint functions, table-driven (pure: no server)."""
from __future__ import annotations

import copy
import json
import pathlib
import subprocess
import sys
from typing import Any

import pytest

from sync.checkpoint import (CHECKPOINT_HISTORY_SIZE, compare_replication_logs, next_checkpoint, replication_id,
                             start_seq)

ROOT = pathlib.Path(__file__).resolve().parents[2]


def log(session: str, seq: Any, history: list[tuple[str, Any]], version: Any = 1) -> dict[str, Any]:
    """A checkpoint doc with ``history`` given as (session, seq) pairs, newest first."""
    doc: dict[str, Any] = {"session_id": session, "last_seq": seq, "replicator": "pouchdb",
                           "history": [{"session_id": s, "last_seq": q} for s, q in history]}
    if version is not None:
        doc["version"] = version
    return doc


# Vectors printed by pouchdb-generate-replication-id 9.0.0 for ids "abc123src" and "def456tgt".
@pytest.mark.parametrize(("options", "expected"), [
    ({}, "w2MHhOKqT9E3Sfyp2wMjWw=="),
    ({"doc_ids": ["b", "a"]}, "Jpzdxv2QTgrWmDC7.NaMxA=="),
    ({"filter_name": "ddoc/f", "query_params": {"z": 1, "a": "x"}}, "rV9HJzbDkwKKeVscQKgFlQ=="),
    ({"selector": {"type": "visit"}}, "eZbSvFNf4nAX3NZyl76PXQ=="),
])
def test_replication_id_matches_pouchdb(options: dict[str, Any], expected: str) -> None:
    assert replication_id("abc123src", "def456tgt", **options) == expected


def test_replication_id_depends_on_direction() -> None:
    assert replication_id("a", "b") != replication_id("b", "a")


A = log("s3", 30, [("s3", 30), ("s2", 20), ("s1", 10)])
COMPARE_CASES = [
    # (source doc, target doc, expected seq)
    pytest.param(A, A, 30, id="same-session"),
    pytest.param(log("s3", 30, [("s3", 30), ("s2", 20)]), log("s2", 20, [("s2", 20), ("s1", 10)]), 20,
                 id="target-behind-one-session"),
    pytest.param(log("s2", 20, [("s2", 20), ("s1", 10)]), log("s3", 30, [("s3", 30), ("s2", 20)]), 20,
                 id="source-behind-one-session"),
    pytest.param(log("x2", 7, [("x2", 7), ("s1", 10)]), log("y2", 9, [("y2", 9), ("s1", 10)]), 10,
                 id="common-older-session"),
    pytest.param(log("x", 7, [("x", 7)]), log("y", 9, [("y", 9)]), 0, id="no-common-session"),
    pytest.param(log("x", 7, []), log("y", 9, [("y", 9)]), 0, id="empty-source-history"),
    pytest.param(log("x", 7, [("x", 7)]), log("y", 9, []), 0, id="empty-target-history"),
    pytest.param(log("x", "5-g1AAA", [("x", "5-g1AAA")]), log("x", "5-g1AAA", []), "5-g1AAA", id="opaque-seq"),
]


@pytest.mark.parametrize(("source", "target", "expected"), COMPARE_CASES)
def test_start_seq_compares_logs_like_couchdb(source: dict[str, Any], target: dict[str, Any], expected: Any) -> None:
    before = copy.deepcopy((source, target))
    assert start_seq(source, target) == expected
    assert (source, target) == before  # inputs are not mutated


@pytest.mark.parametrize(("source", "target", "expected"), [
    pytest.param(None, None, 0, id="first-run"),
    pytest.param(A, None, 0, id="target-lost"),
    pytest.param(None, A, 0, id="source-lost"),
    pytest.param(log("s", 5, [], version=None), log("s", 5, [], version=None), 5, id="old-format-equal"),
    pytest.param(log("s", 5, [], version=None), log("s", 6, [], version=None), 0, id="old-format-differs"),
    pytest.param(log("s", 5, [("s", 5)]), log("s", 5, [("s", 5)], version=None), 0, id="versions-differ"),
    pytest.param(log("s", 5, [("s", 5)], version=2), log("s", 5, [("s", 5)], version=2), 0, id="unknown-version"),
])
def test_start_seq_edge_cases(source: dict[str, Any] | None, target: dict[str, Any] | None, expected: Any) -> None:
    assert start_seq(source, target) == expected


def test_compare_replication_logs_returns_the_history_to_keep() -> None:
    source = log("x2", 7, [("x2", 7), ("s1", 10), ("s0", 5)])
    target = log("y2", 9, [("y2", 9), ("s1", 10), ("s0", 5)])
    assert compare_replication_logs(source, target) == (10, source["history"][1:])


def test_next_checkpoint_puts_the_session_first_and_caps_history() -> None:
    doc = log("old", 1, [(f"s{i}", i) for i in range(CHECKPOINT_HISTORY_SIZE)])
    doc["_id"], doc["_rev"] = "_local/x", "0-3"
    before = copy.deepcopy(doc)
    new = next_checkpoint(doc, 42, "s3")
    assert doc == before
    assert new["session_id"] == "s3" and new["last_seq"] == 42 and new["version"] == 1
    assert [h["session_id"] for h in new["history"]] == ["s3", "s0", "s1", "s2", "s4"]
    assert len(new["history"]) == CHECKPOINT_HISTORY_SIZE
    assert "_rev" not in new and "_id" not in new


def test_next_checkpoint_from_nothing() -> None:
    assert next_checkpoint(None, 3, "s") == {"session_id": "s", "last_seq": 3, "replicator": "pouchdb",
                                             "version": 1, "history": [{"last_seq": 3, "session_id": "s"}]}


def test_checkpoint_module_is_pure() -> None:
    code = ("import json, sys, sync.checkpoint\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('flask', 'sqlalchemy', 'requests', 'models', 'api', 'werkzeug'))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
