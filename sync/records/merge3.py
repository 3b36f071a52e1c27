"""Field-level three-way merge of document bodies (DESIGN decision 6). Pure: standard library only.

``merge3(ancestor, leaves)`` merges the bodies of a document's conflicting leaf revisions
against their common ancestor's body, field by field (docs/records.md, "Conflicts"):

- a field no leaf changed keeps the ancestor's value; a field that every leaf changing it
  changed the same way takes that value; removing a field is a change;
- nested objects are merged key by key (``gps``, ``consent``, ``observations`` ...), except
  the entries of ``_attachments``, each compared whole;
- lists named in ``set_fields`` merge as sets: (ancestor - removed by any leaf) + added by
  any leaf, ancestor order first, then additions sorted by their JSON text; other lists are
  atomic values;
- a field changed differently is a hard conflict: the leaf with the latest ``updated_at``
  wins (a missing or unparsable one loses to any valid one), ties go to the higher rank
  (CouchDB's winner order: longer branch, then higher hash); each conflict is reported;
- ``updated_at``/``updated_by`` are taken from the newest leaf, never reported.

With no ancestor body (``None``) every field is compared as if the ancestor lacked it. The
outcome does not depend on the order of ``leaves`` and is deterministic down to key order,
which matters: the merged body is hashed into the resolution's revision id.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

Json = dict[str, Any]
Path = tuple[str, ...]
SET_FIELDS = frozenset({"chronic_conditions", "observations.symptoms", "areas", "chws", "merged_from"})
STAMP_FIELDS = ("updated_at", "updated_by")
_NEVER = datetime.min.replace(tzinfo=timezone.utc)


class _Missing:
    """The value of a field a body does not have."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Leaf:
    """One conflicting leaf: its rev, body, ``updated_at`` and rank (``(pos, hash)`` of its rev)."""

    rev: str
    body: Json
    updated_at: str | None = None
    rank: tuple[int, str] = (0, "")

    @classmethod
    def of(cls, rev: str, body: Json) -> Leaf:
        """A leaf whose ``updated_at`` comes from its body and whose rank comes from its rev."""
        pos, _, rev_hash = rev.partition("-")
        stamp = body.get("updated_at")
        return cls(rev, body, stamp if isinstance(stamp, str) else None,
                   (int(pos) if pos.isdigit() else 0, rev_hash))


@dataclass(frozen=True)
class FieldConflict:
    """A field the leaves changed differently: every leaf's value, and the rev picked.

    ``values`` holds ``{"rev", "value", "updated_at", "updated_by"}`` per leaf, in rank order,
    plus ``"removed": True`` (and value None) where the leaf has no such field.
    """

    path: Path
    values: list[Json]
    picked_rev: str

    @property
    def field(self) -> str:
        """The dotted field name, e.g. ``gps.lat``."""
        return ".".join(self.path)


@dataclass(frozen=True)
class MergeOutcome:
    """The merged body, the hard conflicts (by path), and the newest leaf's rev."""

    body: Json
    conflicts: list[FieldConflict] = field(default_factory=list)
    newest_rev: str = ""


def parse_time(stamp: object) -> datetime | None:
    """An RFC 3339 date-time with an offset as an aware datetime; None if it is not one."""
    if not isinstance(stamp, str):
        return None
    text = stamp.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    # Without an offset the instant is unknown, so it cannot be ordered against others.
    return parsed if parsed.tzinfo is not None else None


def canonical(value: Any) -> str:
    """JSON text that is equal for equal JSON values (object key order ignored)."""
    if value is MISSING:
        return "\x00missing"  # no JSON text starts with NUL
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def recency(leaf: Leaf) -> tuple[bool, datetime, tuple[int, str]]:
    """The order in which leaves win a conflict (largest wins)."""
    parsed = parse_time(leaf.updated_at)
    return parsed is not None, parsed or _NEVER, leaf.rank


def merge3(ancestor: Json | None, leaves: list[Leaf], set_fields: frozenset[str] = SET_FIELDS) -> MergeOutcome:
    """Merge the leaves' bodies against ``ancestor`` (None: no common ancestor body)."""
    if not leaves:
        raise ValueError("merge3 needs at least one leaf")
    unique: dict[str, Leaf] = {}
    for leaf in sorted(leaves, key=lambda lf: canonical(lf.body)):
        unique.setdefault(leaf.rev, leaf)  # a rev given twice counts once
    ordered = sorted(unique.values(), key=lambda lf: (lf.rank, lf.rev), reverse=True)
    run = _Merge(ordered, set_fields)
    # A copy: the merged value may be the ancestor or a leaf body itself, and inputs stay untouched.
    body = copy.deepcopy(run.merge((), MISSING if ancestor is None else ancestor, [lf.body for lf in ordered]))
    if not isinstance(body, dict):  # pragma: no cover - an object merged with objects is an object
        raise TypeError("merged body is not an object")
    for key in STAMP_FIELDS:
        if key in run.newest.body:
            body[key] = copy.deepcopy(run.newest.body[key])
        else:
            body.pop(key, None)
    conflicts = sorted(run.conflicts, key=lambda c: c.path)
    return MergeOutcome(body, conflicts, run.newest.rev)


class _Merge:
    """One merge: the leaves in rank order (highest first) and the conflicts found so far."""

    def __init__(self, leaves: list[Leaf], set_fields: frozenset[str]) -> None:
        self.leaves = leaves
        self.set_fields = set_fields
        self.newest = max(leaves, key=recency)
        self.conflicts: list[FieldConflict] = []

    def merge(self, path: Path, ancestor: Any, values: list[Any]) -> Any:
        """The merged value at ``path``; ``values`` are the leaves' (MISSING where absent)."""
        base = canonical(ancestor)
        changed = [(i, v) for i, v in enumerate(values) if canonical(v) != base]
        if not changed:
            return ancestor
        if len({canonical(v) for _, v in changed}) == 1:
            return changed[0][1]
        news = [v for _, v in changed]
        if ".".join(path) in self.set_fields and _is_list_or_missing(ancestor) \
                and all(isinstance(v, list) for v in news):
            return merge_set(ancestor, news)
        atomic = path[:1] == ("_attachments",) and len(path) > 1  # each attachment compared whole
        if not atomic and (ancestor is MISSING or isinstance(ancestor, dict)) \
                and all(isinstance(v, dict) for v in news):
            return self.merge_object(path, ancestor, values)
        return self.conflict(path, values, [i for i, _ in changed])

    def merge_object(self, path: Path, ancestor: Any, values: list[Any]) -> Json:
        """Merge objects key by key; keys in order of first appearance, winner first."""
        sources = [v for v in values if isinstance(v, dict)] + ([ancestor] if isinstance(ancestor, dict) else [])
        keys = list(dict.fromkeys(key for source in sources for key in source))
        out: Json = {}
        for key in keys:
            if not path and key in STAMP_FIELDS:
                out[key] = None  # a placeholder keeping the key's place; merge3 sets it
                continue
            below = ancestor.get(key, MISSING) if isinstance(ancestor, dict) else MISSING
            merged = self.merge(path + (key,), below,
                                [v.get(key, MISSING) if isinstance(v, dict) else MISSING for v in values])
            if merged is not MISSING:
                out[key] = merged
        return out

    def conflict(self, path: Path, values: list[Any], changers: list[int]) -> Any:
        """Record a hard conflict; the newest leaf among those that changed the field wins."""
        picked = max(changers, key=lambda i: recency(self.leaves[i]))
        report = []
        for leaf, value in zip(self.leaves, values):
            by = leaf.body.get("updated_by")
            entry = {"rev": leaf.rev, "value": None if value is MISSING else value,
                     "updated_at": leaf.updated_at, "updated_by": by if isinstance(by, str) else None}
            if value is MISSING:
                entry["removed"] = True
            report.append(entry)
        self.conflicts.append(FieldConflict(path, copy.deepcopy(report), self.leaves[picked].rev))
        return values[picked]


def _is_list_or_missing(value: Any) -> bool:
    return value is MISSING or isinstance(value, list)


def merge_set(ancestor: Any, lists: list[list[Any]]) -> list[Any]:
    """(ancestor - removed by any list) + added by any list; additions sorted by JSON text."""
    base = [] if ancestor is MISSING else ancestor
    base_keys = {canonical(item) for item in base}
    removed: set[str] = set()
    added: dict[str, Any] = {}
    for items in lists:
        keys = {canonical(item): item for item in reversed(items)}  # the first occurrence wins
        removed |= base_keys - keys.keys()
        for key, item in keys.items():
            if key not in base_keys:
                added.setdefault(key, item)
    out, seen = [], set()
    for item in base:
        key = canonical(item)
        if key not in removed and key not in seen:
            seen.add(key)
            out.append(item)
    return out + [added[key] for key in sorted(added)]
