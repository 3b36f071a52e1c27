"""Reading documents: single gets with CouchDB's options, open_revs, _bulk_get, _revs_diff.

``build_doc`` (sync.docview, importable from here) is the one place a stored revision
becomes the JSON a client sees.

Every read takes an optional ``reader`` (sync.scopefeed): a document outside the reader's
scope is answered exactly as a document the server does not hold (404 ``missing``, a
``missing`` open_revs entry, a ``not_found`` _bulk_get item, every rev missing in
``_revs_diff``), so a user cannot tell it exists.
"""
from __future__ import annotations

from typing import Any

from .docs import Json
from .docview import (ReadOptions, ancestry, build_doc, find_doc, find_docs, leaf_deleted, leaf_rank, leaf_revs,
                      linear_hashes, load_bodies, render_attachments, spliced_winner)
from .errors import BadRequest, CouchError, NotFound
from .jsoncodec import loads
from .revs import parse_rev
from .revtree import leaves_under, possible_ancestors, rev_exists
from .rows import DocRow, body_texts_of
from .scopefeed import Reader
from .store import get_database, load_blob

__all__ = ["ReadOptions", "ancestry", "build_doc", "bulk_get", "find_doc", "find_docs", "get_attachment", "get_doc",
           "leaf_deleted", "leaf_revs", "linear_hashes", "load_bodies", "open_revs", "render_attachments",
           "resolve_revs", "revs_diff"]


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
            rev = max(leaves, key=lambda r: leaf_rank(doc, r))
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
        wanted = leaf_revs(doc)
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
             reader: Reader | None = None, splice: bool = False) -> list[Json]:
    """``_bulk_get``: one result per request, errors as items (never raised).

    With ``splice`` (a reply about to be written out), a live unbranched winner comes back
    as ``jsoncodec.Spliced`` text around its stored body instead of a parsed dict.
    """
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
    texts = body_texts_of(pairs)
    results = []
    for req, doc, revs in plan:
        doc_id = req.get("id") if isinstance(req, dict) else None
        if isinstance(revs, CouchError):
            err = {"id": doc_id, "rev": req.get("rev") if isinstance(req, dict) else None,
                   "error": revs.error, "reason": revs.reason}
            results.append({"id": doc_id, "docs": [{"error": err}]})
            continue
        req_opts = _with_atts_since(opts, req)
        if doc is not None and len(revs) == 1 and revs[0] == doc.winning_rev:
            # The common case: one request for the winner. It exists, so only its body may be missing.
            text = texts.get((doc.id, revs[0]))
            if text is not None:
                spliced = spliced_winner(doc, text, req_opts) if splice else None
                built = spliced or build_doc(doc, revs[0], loads(text), req_opts)
                results.append({"id": doc_id, "docs": [{"ok": built}]})
                continue
        bodies = {} if doc is None else {(doc.id, r): loads(texts[(doc.id, r)]) for r in revs if (doc.id, r) in texts}
        entries = resolve_revs(doc, revs, False, req_opts, bodies)
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
    if doc is not None and rev == doc.winning_rev:
        return req, doc, [rev]  # a stored winner: well formed, and its own latest
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
