"""Reading documents: single gets with CouchDB's options, open_revs, _bulk_get, _revs_diff.

``build_doc`` is the one place a stored revision becomes the JSON a client sees.

Every read takes an optional ``reader`` (sync.scopefeed): a document outside the reader's
scope is answered exactly as a document the server does not hold (404 ``missing``, a
``missing`` open_revs entry, a ``not_found`` _bulk_get item, every rev missing in
``_revs_diff``), so a user cannot tell it exists.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any


from .docs import Json
from .errors import BadRequest, CouchError, NotFound
from .revs import format_rev, parse_rev
from .revtree import (collect_conflicts, collect_deleted_conflicts, collect_leaves, leaves_under,
                      possible_ancestors, rev_ancestry, rev_exists, revs_info)
from .rows import DocRow, bodies_of, doc_by_id, docs_by_ids
from .scopefeed import Reader, visible
from .store import get_database, load_blob


@dataclass(frozen=True)
class ReadOptions:
    """What to add to a document (the query options of ``GET /db/doc``)."""

    revs: bool = False
    revs_info: bool = False
    conflicts: bool = False
    deleted_conflicts: bool = False
    attachments: bool = False
    atts_since: tuple[str, ...] = ()
    local_seq: bool = False


def find_doc(database_id: int, doc_id: str, reader: Reader | None = None) -> DocRow | None:
    """The document's row, or None if it is absent or outside the reader's scope."""
    doc = doc_by_id(database_id, doc_id)
    if doc is not None and reader is not None and not visible(reader, [doc.id]):
        return None
    return doc


def find_docs(database_id: int, doc_ids: list[str], reader: Reader | None = None) -> dict[str, DocRow]:
    """The rows of the given documents that exist and that the reader sees, by doc id."""
    docs = docs_by_ids(database_id, doc_ids)
    if reader is not None:
        seen = visible(reader, [d.id for d in docs.values()])
        docs = {doc_id: d for doc_id, d in docs.items() if d.id in seen}
    return docs


def load_bodies(pairs: list[tuple[int, str]]) -> dict[tuple[int, str], Json]:
    """Bodies for (document pk, rev) pairs, fetched in a few queries."""
    return bodies_of(pairs)


def _stub_limit(doc: DocRow, rev: str, atts_since: tuple[str, ...]) -> int:
    """Attachments with revpos at or below this position travel as stubs."""
    ancestry = rev_ancestry(doc.rev_tree, rev) or []
    pos = parse_rev(rev)[0]
    known = {format_rev(pos - i, h) for i, h in enumerate(ancestry)}
    return max((parse_rev(r)[0] for r in atts_since if r in known), default=0)


def render_attachments(stored: Json, *, inline: bool, stub_limit: int = 0) -> Json:
    """Stored attachment metadata as stubs, or with base64 ``data`` when ``inline``."""
    out: Json = {}
    for name, meta in stored.items():
        entry = {k: meta[k] for k in ("content_type", "digest", "length", "revpos") if k in meta}
        if inline and meta.get("revpos", 0) > stub_limit:
            entry.pop("length", None)
            entry["data"] = base64.b64encode(load_blob(meta["sha256"])).decode()
        else:
            entry["stub"] = True
        out[name] = entry
    return out


def build_doc(doc: DocRow, rev: str, body: Json | None, opts: ReadOptions) -> Json:
    """The JSON of ``doc`` at ``rev``: ``_id``, ``_rev``, fields, and what ``opts`` asks for."""
    body = dict(body or {})
    atts = body.pop("_attachments", None)
    out: Json = {"_id": doc.doc_id, "_rev": rev, **body}
    if atts:
        limit = _stub_limit(doc, rev, opts.atts_since) if opts.atts_since else 0
        out["_attachments"] = render_attachments(atts, inline=opts.attachments, stub_limit=limit)
    if _leaf_deleted(doc, rev):
        out["_deleted"] = True
    if opts.revs:
        out["_revisions"] = {"start": parse_rev(rev)[0], "ids": rev_ancestry(doc.rev_tree, rev) or []}
    if opts.revs_info:
        out["_revs_info"] = revs_info(doc.rev_tree, rev)
    if opts.conflicts and rev == doc.winning_rev:
        conflicts = collect_conflicts(doc.rev_tree)
        if conflicts:
            out["_conflicts"] = conflicts
    if opts.deleted_conflicts and rev == doc.winning_rev:
        deleted = collect_deleted_conflicts(doc.rev_tree)
        if deleted:
            out["_deleted_conflicts"] = deleted
    if opts.local_seq:
        out["_local_seq"] = doc.seq
    return out


def _leaf_rank(doc: DocRow, rev: str) -> tuple[bool, int, str]:
    """The winner rule as a sort key (highest wins): live, then deeper, then higher hash."""
    pos, rev_hash = parse_rev(rev)
    return (not _leaf_deleted(doc, rev), pos, rev_hash)


def _leaf_deleted(doc: DocRow, rev: str) -> bool:
    if rev == doc.winning_rev:  # the common case, known without walking the tree
        return doc.deleted
    for leaf in collect_leaves(doc.rev_tree):
        if leaf.rev == rev:
            return bool(leaf.opts.get("deleted"))
    return False


def get_doc(db_name: str, doc_id: str, rev: str | None, opts: ReadOptions, latest: bool = False, *,
            reader: Reader | None = None) -> Json:
    """``GET /db/doc[?rev=]``: the winner (404 deleted if it is deleted) or the given rev.

    With ``latest``, a rev that is no longer a leaf is followed to the winning leaf below it.
    """
    database = get_database(db_name)
    doc = find_doc(database.id, doc_id, reader)
    if doc is None:
        raise NotFound()
    if rev is None:
        if doc.deleted:
            raise NotFound("deleted")
        rev = doc.winning_rev
    else:
        parse_rev(rev)
        leaves = leaves_under(doc.rev_tree, rev) if latest else []
        if leaves:
            rev = max(leaves, key=lambda r: _leaf_rank(doc, r))
    body = load_bodies([(doc.id, rev)]).get((doc.id, rev))
    if body is None:
        # Known but compacted away, stemmed, or never held: CouchDB says missing.
        raise NotFound()
    return build_doc(doc, rev, body, opts)


def open_revs(db_name: str, doc_id: str, revs: list[str] | None, latest: bool,
              opts: ReadOptions, *, reader: Reader | None = None) -> list[Json]:
    """``open_revs``: ``[{"ok": doc} | {"missing": rev}]`` for a list of revs, or all leaves."""
    database = get_database(db_name)
    doc = find_doc(database.id, doc_id, reader)
    if revs is None:
        if doc is None:
            return []
        wanted = [leaf.rev for leaf in collect_leaves(doc.rev_tree)]
    else:
        for rev in revs:
            parse_rev(rev)
        wanted = revs
    return resolve_revs(doc, wanted, latest, opts)


def resolve_revs(doc: DocRow | None, wanted: list[str], latest: bool, opts: ReadOptions,
                 bodies: dict[tuple[int, str], Json] | None = None) -> list[Json]:
    """Turn requested revs into ok/missing entries (``latest`` follows each to its leaves)."""
    targets: list[str] = []
    for rev in wanted:
        # The winner is a leaf: following it leads to itself, no walk needed.
        found = leaves_under(doc.rev_tree, rev) if (doc is not None and latest and rev != doc.winning_rev) else []
        targets.extend(found or [rev])
    targets = list(dict.fromkeys(targets))
    if doc is not None and bodies is None:
        bodies = load_bodies([(doc.id, r) for r in targets])
    out: list[Json] = []
    for rev in targets:
        body = bodies.get((doc.id, rev)) if (doc is not None and bodies is not None) else None
        if doc is None or body is None or (rev != doc.winning_rev and not rev_exists(doc.rev_tree, rev)):
            out.append({"missing": rev})
        else:
            out.append({"ok": build_doc(doc, rev, body, opts)})
    return out


def bulk_get(db_name: str, requests: list[Any], latest: bool, opts: ReadOptions, *,
             reader: Reader | None = None) -> list[Json]:
    """``_bulk_get``: one result per request, errors as items (never raised)."""
    database = get_database(db_name)
    ids = list({r.get("id") for r in requests if isinstance(r, dict) and isinstance(r.get("id"), str)})
    docs = find_docs(database.id, ids, reader)
    plan: list[tuple[Any, DocRow | None, list[str] | CouchError]] = []
    pairs: list[tuple[int, str]] = []
    for req in requests:
        plan.append(_plan_one(req, docs, latest))
        doc, revs = plan[-1][1], plan[-1][2]
        if doc is not None and isinstance(revs, list):
            pairs.extend((doc.id, r) for r in revs)
    bodies = load_bodies(pairs)
    results = []
    for req, doc, revs in plan:
        doc_id = req.get("id") if isinstance(req, dict) else None
        if isinstance(revs, CouchError):
            err = {"id": doc_id, "rev": req.get("rev") if isinstance(req, dict) else None,
                   "error": revs.error, "reason": revs.reason}
            results.append({"id": doc_id, "docs": [{"error": err}]})
            continue
        entries = resolve_revs(doc, revs, False, _with_atts_since(opts, req), bodies)
        docs_out = [e if "ok" in e else {"error": {"id": doc_id, "rev": e["missing"], "error": "not_found",
                                                   "reason": "missing"}} for e in entries]
        results.append({"id": doc_id, "docs": docs_out})
    return results


def _with_atts_since(opts: ReadOptions, req: Json) -> ReadOptions:
    since = req.get("atts_since")
    if isinstance(since, list) and all(isinstance(r, str) for r in since):
        return ReadOptions(**{**opts.__dict__, "atts_since": tuple(since)})
    return opts


Plan = tuple[Any, DocRow | None, list[str] | CouchError]


def _plan_one(req: Any, docs: dict[str, DocRow], latest: bool) -> Plan:
    if not isinstance(req, dict) or not isinstance(req.get("id"), str):
        return req, None, BadRequest("Each request needs a string id")
    doc = docs.get(req["id"])
    rev = req.get("rev")
    if rev is None:
        if doc is None:
            return req, None, NotFound()
        return req, doc, [doc.winning_rev]
    try:
        parse_rev(rev)
    except CouchError as exc:
        return req, doc, exc
    if doc is not None and latest and rev != doc.winning_rev:
        return req, doc, leaves_under(doc.rev_tree, rev) or [rev]
    return req, doc, [rev]


def revs_diff(db_name: str, request: Any, *, reader: Reader | None = None) -> Json:
    """``_revs_diff``: for each id, the revs we lack and the leaves they may descend from."""
    if not isinstance(request, dict):
        raise BadRequest("Request body must be a JSON object")
    database = get_database(db_name)
    ids = list(request)
    trees = {doc_id: row.rev_tree for doc_id, row in find_docs(database.id, ids, reader).items()}
    out: Json = {}
    for doc_id, revs in request.items():
        if not isinstance(revs, list) or not all(isinstance(r, str) for r in revs):
            raise BadRequest("revs_diff values must be lists of revs")
        tree = trees.get(doc_id)
        missing = [r for r in dict.fromkeys(revs) if tree is None or not rev_exists(tree, r)]
        if not missing:
            continue
        entry: Json = {"missing": missing}
        if tree is not None:
            ancestors = possible_ancestors(tree, missing)
            if ancestors:
                entry["possible_ancestors"] = ancestors
        out[doc_id] = entry
    return out


def get_attachment(db_name: str, doc_id: str, name: str, rev: str | None, *,
                   reader: Reader | None = None) -> tuple[Json, bytes]:
    """Metadata and bytes of one attachment of the winner, or of ``rev``."""
    body = get_doc(db_name, doc_id, rev, ReadOptions(), reader=reader)
    meta = (body.get("_attachments") or {}).get(name)
    if meta is None:
        raise NotFound("Document is missing attachment")
    database = get_database(db_name)
    doc = find_doc(database.id, doc_id)
    stored = load_bodies([(doc.id, body["_rev"])])[(doc.id, body["_rev"])]  # type: ignore[union-attr]
    return meta, load_blob(stored["_attachments"][name]["sha256"])
