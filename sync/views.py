"""Design-document views: ``GET|POST /db/_design/D/_view/V``, computed on demand.

Map and JavaScript reduce functions run in Node (``viewserver.mjs``), the way CouchDB
runs them in couchjs: a separate process, started with Node's permission model (no file
writes, no child processes) and a time limit. Only admins may write design documents.
There is no persistent index: each query maps every live document, which is what the
small views of replication tools need; the health records themselves are queried in SQL.
Built-in reduces (``_count``, ``_sum``, ``_stats``) run here.
"""
from __future__ import annotations

import functools
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BadRequest, CouchError, NotFound, NotImplementedHere
from .reads import ReadOptions, build_doc, get_doc, load_bodies
from .rows import docs_after
from .selector import collate
from .store import get_database

SERVER_SCRIPT = Path(__file__).with_name("viewserver.mjs")
NODE_TIMEOUT = 120
SCAN_CHUNK = 2000


@dataclass(frozen=True)
class ViewQuery:
    """The options of a view query that this server honours."""

    reduce: bool | None = None
    group: bool = False
    group_level: int | None = None
    keys: tuple[Any, ...] | None = None
    startkey: Any = None
    endkey: Any = None
    has_start: bool = False
    has_end: bool = False
    inclusive_end: bool = True
    descending: bool = False
    skip: int = 0
    limit: int | None = None
    include_docs: bool = False
    conflicts: bool = False


def _run_node(request: dict[str, Any]) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        raise NotImplementedHere("Views need Node.js on the server")
    cmd = [node, "--no-warnings", "--experimental-permission", f"--allow-fs-read={SERVER_SCRIPT}",
           str(SERVER_SCRIPT)]
    try:
        done = subprocess.run(cmd, input=json.dumps(request), capture_output=True, text=True,
                              timeout=NODE_TIMEOUT, check=False)
        answer: dict[str, Any] = json.loads(done.stdout)
    except (subprocess.TimeoutExpired, ValueError):
        raise CouchError("The view server did not answer") from None
    if "error" in answer:
        raise BadRequest(f"Invalid view function: {answer['error']}")
    return answer


def _live_docs(database_id: int) -> list[dict[str, Any]]:
    """Every live, non-design document at its winner, with ``_conflicts`` as CouchDB maps them."""
    out: list[dict[str, Any]] = []
    cursor = 0
    while True:
        chunk = docs_after(database_id, cursor, SCAN_CHUNK)
        if not chunk:
            return out
        live = [d for d in chunk if not d.deleted and not d.doc_id.startswith("_design/")]
        bodies = load_bodies([(d.id, d.winning_rev) for d in live])
        out.extend(build_doc(d, d.winning_rev, bodies.get((d.id, d.winning_rev)), ReadOptions(conflicts=True))
                   for d in live)
        cursor = chunk[-1].seq


def _row_order(a: dict[str, Any], b: dict[str, Any]) -> int:
    return collate(a["key"], b["key"]) or collate(a.get("id"), b.get("id"))


def _in_range(row: dict[str, Any], q: ViewQuery) -> bool:
    low, high = (q.endkey, q.startkey) if q.descending else (q.startkey, q.endkey)
    has_low, has_high = (q.has_end, q.has_start) if q.descending else (q.has_start, q.has_end)
    low_inclusive = q.inclusive_end if q.descending else True
    high_inclusive = True if q.descending else q.inclusive_end
    if has_low and (collate(row["key"], low) < 0 or (not low_inclusive and collate(row["key"], low) == 0)):
        return False
    if has_high and (collate(row["key"], high) > 0 or (not high_inclusive and collate(row["key"], high) == 0)):
        return False
    return True


def _select(rows: list[dict[str, Any]], q: ViewQuery) -> list[dict[str, Any]]:
    if q.keys is not None:
        picked = [r for k in q.keys for r in rows if collate(r["key"], k) == 0]
        return list(reversed(picked)) if q.descending else picked
    ordered = list(reversed(rows)) if q.descending else rows
    return [r for r in ordered if _in_range(r, q)]


def _builtin(name: str, keys: list[Any], values: list[Any]) -> Any:
    if name == "_count":
        return len(values)
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numbers) != len(values):
        raise BadRequest(f"The {name} function requires that map values be numbers")
    if name == "_sum":
        return sum(numbers)
    if name == "_stats":
        return {"sum": sum(numbers), "count": len(numbers), "min": min(numbers, default=0),
                "max": max(numbers, default=0), "sumsqr": sum(n * n for n in numbers)}
    raise BadRequest(f"Builtin reduce function {name} is not supported")


def _group_key(key: Any, q: ViewQuery) -> Any:
    if q.group_level is not None and isinstance(key, list):
        return key[:q.group_level]
    return key if (q.group or q.group_level is not None) else None


def _reduce(rows: list[dict[str, Any]], source: str, q: ViewQuery) -> list[dict[str, Any]]:
    groups: list[tuple[Any, list[dict[str, Any]]]] = []
    for row in rows:
        key = _group_key(row["key"], q)
        if groups and collate(groups[-1][0], key) == 0:
            groups[-1][1].append(row)
        else:
            groups.append((key, [row]))
    if source.strip().startswith("_"):
        values = [_builtin(source.strip(), [r["key"] for r in g], [r["value"] for r in g]) for _, g in groups]
    else:
        payload = [[[[r["key"], r["id"]] for r in g], [r["value"] for r in g]] for _, g in groups]
        values = _run_node({"op": "reduce", "reduce": source, "groups": payload})["values"] if groups else []
    return [{"key": key, "value": value} for (key, _), value in zip(groups, values)]


def query_view(db_name: str, ddoc: str, view: str, q: ViewQuery) -> dict[str, Any]:
    """Run view ``view`` of ``_design/ddoc`` with the options of ``q``."""
    database = get_database(db_name)
    design = get_doc(db_name, f"_design/{ddoc}", None, ReadOptions())
    spec = (design.get("views") or {}).get(view)
    if not isinstance(spec, dict) or not isinstance(spec.get("map"), str):
        raise NotFound("missing_named_view")
    docs = _live_docs(database.id)
    emitted = _run_node({"op": "map", "map": spec["map"], "docs": docs})["rows"] if docs else []
    rows = sorted(({"id": docs[i]["_id"], "key": k, "value": v} for i, k, v in emitted),
                  key=functools.cmp_to_key(_row_order))
    selected = _select(rows, q)
    reduce_source = spec.get("reduce")
    if isinstance(reduce_source, str) and q.reduce is not False:
        if q.include_docs:
            raise BadRequest("`include_docs` is invalid for reduce")
        reduced = _reduce(selected, reduce_source, q)[q.skip:]
        return {"rows": reduced if q.limit is None else reduced[:q.limit]}
    page = selected[q.skip:]
    page = page if q.limit is None else page[:q.limit]
    if q.include_docs:
        by_id = {d["_id"]: d for d in docs}
        for row in page:
            row["doc"] = _without_conflicts(by_id.get(row["id"]), q.conflicts)
    return {"total_rows": len(rows), "offset": _offset(rows, selected, q), "rows": page}


def _offset(rows: list[dict[str, Any]], selected: list[dict[str, Any]], q: ViewQuery) -> int:
    """How many index rows come before the first row returned (CouchDB's ``offset``)."""
    if q.keys is not None or not selected:
        return q.skip if q.keys is not None else len(rows)
    ordered = list(reversed(rows)) if q.descending else rows
    return next(i for i, row in enumerate(ordered) if row is selected[0]) + q.skip


def _without_conflicts(doc: dict[str, Any] | None, keep: bool) -> dict[str, Any] | None:
    if doc is None or keep:
        return doc
    return {k: v for k, v in doc.items() if k != "_conflicts"}
