"""Mango selectors (CouchDB's ``_find`` language), matched against documents in memory.

Used by ``_changes?filter=_selector``, which PouchDB and the CouchDB replicator send for
selector-filtered replication. Semantics follow CouchDB's mango_selector.erl: a field
that is missing matches nothing but ``{"$exists": false}``; comparisons use CouchDB's
collation across types (null < false < true < numbers < strings < arrays < objects).
Pure: no I/O. ``validate`` rejects a malformed selector before any document is read.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import BadRequest

Selector = dict[str, Any]
COMBINATORS = {"$and", "$or", "$nor", "$not"}
CONDITIONS = {"$lt", "$lte", "$eq", "$ne", "$gte", "$gt", "$exists", "$type", "$in", "$nin", "$size",
              "$mod", "$regex", "$all", "$elemMatch", "$allMatch", "$keyMapMatch"}
TYPES = {"null", "boolean", "number", "string", "array", "object"}
_MISSING = object()


def _type_rank(value: Any) -> int:
    if value is None:
        return 0
    if value is False:
        return 1
    if value is True:
        return 2
    if isinstance(value, (int, float)):
        return 3
    if isinstance(value, str):
        return 4
    return 5 if isinstance(value, list) else 6


def collate(a: Any, b: Any) -> int:
    """-1, 0 or 1, ordering any two JSON values as CouchDB views do."""
    ra, rb = _type_rank(a), _type_rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == 5:
        for x, y in zip(a, b):
            c = collate(x, y)
            if c:
                return c
        return (len(a) > len(b)) - (len(a) < len(b))
    if ra == 6:
        return collate([[k, v] for k, v in sorted(a.items())], [[k, v] for k, v in sorted(b.items())])
    if ra in (3, 4):
        return (a > b) - (a < b)
    return 0


def _path(field: str) -> list[str]:
    """Split a field path on unescaped dots (``a\\.b`` is one field named ``a.b``)."""
    return [part.replace("\\.", ".") for part in re.split(r"(?<!\\)\.", field)]


def _get(doc: Any, path: list[str]) -> Any:
    for part in path:
        if not isinstance(doc, dict) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


def validate(selector: Any) -> None:
    """Raise ``BadRequest`` unless ``selector`` is a well-formed Mango selector."""
    if not isinstance(selector, dict):
        raise BadRequest("Selector error: expected a JSON object")
    for key, arg in selector.items():
        if key in ("$and", "$or", "$nor"):
            if not isinstance(arg, list):
                raise BadRequest(f"Selector operator {key} requires an array")
            for sub in arg:
                validate(sub)
        elif key == "$not":
            validate(arg)
        elif key.startswith("$"):
            if key not in CONDITIONS:
                raise BadRequest(f"Invalid operator: {key}")
            _validate_condition(key, arg)
        elif isinstance(arg, dict):
            validate(arg)


def _validate_condition(op: str, arg: Any) -> None:
    checks: dict[str, Callable[[Any], bool]] = {
        "$in": lambda a: isinstance(a, list), "$nin": lambda a: isinstance(a, list),
        "$all": lambda a: isinstance(a, list), "$exists": lambda a: isinstance(a, bool),
        "$type": lambda a: a in TYPES, "$size": lambda a: isinstance(a, int) and not isinstance(a, bool),
        "$regex": lambda a: isinstance(a, str),
        "$mod": lambda a: isinstance(a, list) and len(a) == 2 and all(
            isinstance(x, int) and not isinstance(x, bool) for x in a) and a[0] != 0,
        "$elemMatch": lambda a: isinstance(a, dict), "$allMatch": lambda a: isinstance(a, dict),
        "$keyMapMatch": lambda a: isinstance(a, dict)}
    if op in checks and not checks[op](arg):
        raise BadRequest(f"Bad argument for operator {op}: {arg!r}")
    if op == "$regex":
        try:
            re.compile(arg)
        except re.error:
            raise BadRequest(f"Invalid regular expression for $regex: {arg!r}") from None
    if op in ("$elemMatch", "$allMatch", "$keyMapMatch"):
        validate(arg)


def matches(selector: Selector, doc: Any) -> bool:
    """Whether ``doc`` satisfies ``selector`` (implicitly an ``$and`` of its members)."""
    return all(_match_member(key, arg, doc) for key, arg in selector.items())


def _match_member(key: str, arg: Any, doc: Any) -> bool:
    if key == "$and":
        return all(matches(sub, doc) for sub in arg)
    if key == "$or":
        return any(matches(sub, doc) for sub in arg)
    if key == "$nor":
        return not any(matches(sub, doc) for sub in arg)
    if key == "$not":
        return not matches(arg, doc)
    if key.startswith("$"):
        return _condition(key, arg, doc)  # an operator applied to the value itself
    return _match_field(_get(doc, _path(key)), arg)


def _match_field(value: Any, cond: Any) -> bool:
    """Apply a field's condition: operators, a nested selector, or implicit equality."""
    if isinstance(cond, dict) and any(k.startswith("$") for k in cond):
        if value is _MISSING:
            return cond == {"$exists": False}
        return all(_match_member(k, a, value) if k in COMBINATORS else _condition(k, a, value)
                   for k, a in cond.items())
    if isinstance(cond, dict) and cond:
        return value is not _MISSING and matches(cond, value)
    return value is not _MISSING and collate(value, cond) == 0


def _condition(op: str, arg: Any, value: Any) -> bool:
    """One operator against a present value."""
    if op in ("$lt", "$lte", "$eq", "$ne", "$gte", "$gt"):
        c = collate(value, arg)
        return {"$lt": c < 0, "$lte": c <= 0, "$eq": c == 0, "$ne": c != 0, "$gte": c >= 0, "$gt": c > 0}[op]
    if op == "$exists":
        return bool(arg)
    if op == "$type":
        return ["null", "boolean", "boolean", "number", "string", "array", "object"][_type_rank(value)] == arg
    if op in ("$in", "$nin"):
        found = any(collate(value, a) == 0 for a in arg) or (
            isinstance(value, list) and any(collate(v, a) == 0 for v in value for a in arg))
        return found if op == "$in" else not found
    return _list_condition(op, arg, value)


def _list_condition(op: str, arg: Any, value: Any) -> bool:
    if op == "$size":
        return isinstance(value, list) and len(value) == arg
    if op == "$mod":
        return isinstance(value, int) and not isinstance(value, bool) and value % arg[0] == arg[1]
    if op == "$regex":
        return isinstance(value, str) and re.search(arg, value) is not None
    if op == "$all":
        return isinstance(value, list) and all(any(collate(v, a) == 0 for v in value) for a in arg)
    if op == "$elemMatch":
        return isinstance(value, list) and any(_match_sub(arg, v) for v in value)
    if op == "$allMatch":
        return isinstance(value, list) and bool(value) and all(_match_sub(arg, v) for v in value)
    if op == "$keyMapMatch":
        return isinstance(value, dict) and any(_match_sub(arg, k) for k in value)
    raise BadRequest(f"Invalid operator: {op}")  # pragma: no cover - validate() refuses it first


def _match_sub(selector: Selector, value: Any) -> bool:
    """A sub-selector against an array element: fields, or operators on the element itself."""
    return all(_match_member(k, a, value) for k, a in selector.items())
