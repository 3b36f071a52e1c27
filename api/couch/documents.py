"""Document endpoints: single docs (with open_revs and multipart), bulk reads and writes,
``_revs_diff``, ``_all_docs``, ``_local`` docs and attachments.

Every write to the records database (config ``WASL_RECORDS_DB``) passes the caller's
write rules and its schema check (``access.gate``): a refused revision is held in the
quarantine and answered ``forbidden`` (docs/records.md, docs/access.md). Every read there
goes through the caller's scope (``access.reader``), and a non-admin's ``_local``
documents live in their own namespace (``access.local_id``).
"""
from __future__ import annotations

import base64
from typing import Any

from flask import Response, request

from sync import local, reads, writes
from sync.alldocs import AllDocsQuery, all_docs as query_all_docs
from sync.errors import BadRequest, Conflict, NotFound
from sync.store import get_database

from . import multipart
from .access import audit_found, audit_reads, audit_rows, gate as _gate, local_id, public_local_id, reader
from .params import json_body, json_object, qbool, qint, qjson, send

LOCAL_ATTACHMENTS = "_local documents do not accept attachments."


def _local_docs(db_name: str, docs: list[Any]) -> list[Any]:
    """``docs`` with the caller's ``_local`` ids moved into their namespace."""
    return [{**d, "_id": local_id(db_name, d["_id"])} if isinstance(d, dict) and isinstance(d.get("_id"), str)
            and d["_id"].startswith("_local/") else d for d in docs]


def _public_items(db_name: str, items: list[Any]) -> list[Any]:
    """Write results with ``_local`` ids as the caller sent them."""
    return [{**item, "id": public_local_id(db_name, item["id"])} if isinstance(item.get("id"), str)
            and item["id"].startswith("_local/") else item for item in items]


def _read_options(force_revs: bool = False) -> reads.ReadOptions:
    meta = qbool("meta")
    atts_since = qjson("atts_since", [])
    if not isinstance(atts_since, list) or not all(isinstance(r, str) for r in atts_since):
        raise BadRequest("atts_since must be a list of revs")
    return reads.ReadOptions(
        revs=force_revs or qbool("revs"), revs_info=meta or qbool("revs_info"),
        conflicts=meta or qbool("conflicts"), deleted_conflicts=meta or qbool("deleted_conflicts"),
        attachments=qbool("attachments") or bool(atts_since), atts_since=tuple(atts_since),
        local_seq=qbool("local_seq"))


def _accepts(kind: str) -> bool:
    return kind in request.headers.get("Accept", "")


def _follow_list(doc: dict[str, Any]) -> list[multipart.Attachment]:
    """The attachments of ``doc`` that carry data, decoded, for a multipart reply."""
    out = []
    for name, att in (doc.get("_attachments") or {}).items():
        if "data" in att:
            out.append((name, att["content_type"], base64.b64decode(att["data"])))
    return out


def get_doc(db_name: str, doc_id: str) -> Response:
    """``GET /db/doc``: one revision, or ``open_revs`` as JSON or multipart/mixed."""
    if doc_id.startswith("_local/"):
        return send({**local.get_local(db_name, local_id(db_name, doc_id)), "_id": doc_id})
    raw_open = request.args.get("open_revs")
    if raw_open is not None:
        revs = None if raw_open == "all" else qjson("open_revs")
        if revs is not None and (not isinstance(revs, list) or not all(isinstance(r, str) for r in revs)):
            raise BadRequest("Invalid open_revs value")
        found = reads.open_revs(db_name, doc_id, revs, qbool("latest"), _read_options(), reader=reader(db_name))
        audit_found(db_name, found, "get")
        if _accepts("multipart/mixed"):
            parts = [multipart.Part.found(e["ok"], _follow_list(e["ok"])) if "ok" in e
                     else multipart.Part.not_found(e["missing"]) for e in found]
            body, ctype = multipart.build_mixed(parts)
            return Response(body, content_type=ctype)
        return send(found)
    doc = reads.get_doc(db_name, doc_id, request.args.get("rev"), _read_options(), qbool("latest"),
                        reader=reader(db_name))
    audit_reads(db_name, [(doc_id, doc["_rev"])], "get")
    if _accepts("multipart/related") and doc.get("_attachments") and qbool("attachments"):
        body, ctype = multipart.build_related(doc, _follow_list(doc))
        return Response(body, content_type=ctype)
    return send(doc, headers={"ETag": f'"{doc["_rev"]}"'})


def _incoming_doc(doc_id: str) -> tuple[dict[str, Any], dict[str, bytes] | None]:
    """The body of a document PUT: JSON, or multipart/related with attachment bodies."""
    if request.mimetype == "multipart/related":
        doc, bodies = multipart.parse_related(request.get_data(), request.headers["Content-Type"])
        follows = multipart.decode_follows(doc, bodies)
    else:
        doc, follows = json_object(), None
    if "_id" in doc and doc["_id"] != doc_id:
        raise BadRequest("Document id must match the URL")
    doc["_id"] = doc_id
    rev = request.args.get("rev")
    if rev is not None and "_rev" not in doc:
        doc["_rev"] = rev
    return doc, follows


def put_doc(db_name: str, doc_id: str) -> Response:
    """``PUT /db/doc`` (also ``?new_edits=false``, JSON or multipart/related)."""
    doc, follows = _incoming_doc(doc_id)
    if doc_id.startswith("_local/"):
        doc.pop("_attachments", None)  # CouchDB accepts and drops them
        stored = local_id(db_name, doc_id)
        return send({**local.put_local(db_name, stored, {**doc, "_id": stored}), "id": doc_id}, 201)
    result = writes.put_doc(db_name, doc, new_edits=qbool("new_edits", True), follows=follows,
                            gate=_gate(db_name))
    return send(result, 201, {"ETag": f'"{result["rev"]}"'})


def post_doc(db_name: str) -> Response:
    """``POST /db``: create a document, with a generated id unless it has one."""
    doc = json_object()
    if not str(doc.get("_id", "")).startswith("_local/"):
        return send(writes.put_doc(db_name, doc, gate=_gate(db_name)), 201)
    stored = local_id(db_name, doc["_id"])
    return send({**local.put_local(db_name, stored, {**doc, "_id": stored}), "id": doc["_id"]}, 201)


def delete_doc(db_name: str, doc_id: str) -> Response:
    """``DELETE /db/doc?rev=``: a deleted leaf on top of ``rev``."""
    rev = request.args.get("rev") or request.headers.get("If-Match", "").strip('"') or None
    if doc_id.startswith("_local/"):
        return send({**local.delete_local(db_name, local_id(db_name, doc_id), rev), "id": doc_id})
    if rev is None:
        raise Conflict()
    return send(writes.put_doc(db_name, {"_id": doc_id, "_rev": rev, "_deleted": True}, gate=_gate(db_name)))


def bulk_docs(db_name: str) -> Response:
    """``POST /db/_bulk_docs``: 201 with per-document results (only errors for new_edits=false)."""
    body = json_object()
    docs = body.get("docs")
    if not isinstance(docs, list):
        raise BadRequest("POST body must include `docs` parameter.")
    new_edits = body.get("new_edits", True)
    if not isinstance(new_edits, bool):
        raise BadRequest("`new_edits` parameter must be a boolean.")
    results = writes.bulk_docs(db_name, _local_docs(db_name, docs), new_edits, gate=_gate(db_name))
    return send(_public_items(db_name, results), 201)


def bulk_get(db_name: str) -> Response:
    """``POST /db/_bulk_get``: every requested revision, errors as items."""
    body = json_object()
    docs = body.get("docs")
    if not isinstance(docs, list):
        raise BadRequest("Missing JSON list of 'docs'.")
    opts = _read_options(force_revs=qbool("revs") or bool(body.get("revs")))
    if body.get("attachments"):
        opts = reads.ReadOptions(**{**opts.__dict__, "attachments": True})
    latest = qbool("latest") or bool(body.get("latest"))
    results = reads.bulk_get(db_name, docs, latest, opts, reader=reader(db_name), splice=True)
    audit_found(db_name, [e for item in results for e in item.get("docs", ())], "bulk_get")
    return send({"results": results})


def revs_diff(db_name: str) -> Response:
    """``POST /db/_revs_diff``."""
    return send(reads.revs_diff(db_name, json_body(), reader=reader(db_name)))


def _all_docs_query() -> AllDocsQuery:
    keys = qjson("keys")
    if request.method == "POST":
        keys = json_object().get("keys", keys)
    key = qjson("key")
    if keys is not None and (not isinstance(keys, list) or not all(isinstance(k, str) for k in keys)):
        raise BadRequest("`keys` member must be an array of document ids.")
    if keys is not None and key is not None:
        raise BadRequest("`keys` is incompatible with `key`, `start_key` and `end_key`")
    start = qjson("startkey", qjson("start_key"))
    end = qjson("endkey", qjson("end_key"))
    if key is not None:
        # `key` is a one-key range, unlike `keys`: a deleted document yields no row.
        start = key if start is None else start
        end = key if end is None else end
    return AllDocsQuery(keys=tuple(keys) if keys is not None else None, startkey=start, endkey=end,
                        inclusive_end=qbool("inclusive_end", True), descending=qbool("descending"),
                        limit=qint("limit"), skip=qint("skip", 0) or 0, include_docs=qbool("include_docs"),
                        conflicts=qbool("conflicts"), attachments=qbool("attachments"))


def all_docs(db_name: str) -> Response:
    """``GET|POST /db/_all_docs``."""
    result = query_all_docs(db_name, _all_docs_query(), reader=reader(db_name))
    audit_rows(db_name, result["rows"], "all_docs")
    if qbool("update_seq"):
        result["update_seq"] = get_database(db_name).update_seq
    return send(result)


def get_attachment(db_name: str, doc_id: str, name: str) -> Response:
    """``GET /db/doc/att[?rev=]``: the raw bytes with their stored type."""
    if doc_id.startswith("_local/"):
        raise BadRequest(LOCAL_ATTACHMENTS)
    meta, data = reads.get_attachment(db_name, doc_id, name, request.args.get("rev"), reader=reader(db_name))
    rev = request.args.get("rev")
    audit_reads(db_name, [(doc_id, rev) if rev else doc_id], "attachment", attachment=name)
    resp = Response(data, content_type=meta["content_type"])
    resp.headers["ETag"] = f'"{meta["digest"]}"'
    resp.headers["Content-MD5"] = meta["digest"][4:] if meta["digest"].startswith("md5-") else ""
    return resp


def _doc_for_attachment_edit(db_name: str, doc_id: str) -> dict[str, Any]:
    rev = request.args.get("rev") or request.headers.get("If-Match", "").strip('"') or None
    if rev is None:
        try:
            reads.get_doc(db_name, doc_id, None, reads.ReadOptions(), reader=reader(db_name))
        except NotFound:
            return {"_id": doc_id}  # a new document holding just this attachment
        raise Conflict()
    return reads.get_doc(db_name, doc_id, rev, reads.ReadOptions(), reader=reader(db_name))


def put_attachment(db_name: str, doc_id: str, name: str) -> Response:
    """``PUT /db/doc/att?rev=``: a new revision with this attachment's raw body."""
    if doc_id.startswith("_local/"):
        raise BadRequest(LOCAL_ATTACHMENTS)
    doc = _doc_for_attachment_edit(db_name, doc_id)
    atts = dict(doc.get("_attachments") or {})
    atts[name] = {"content_type": request.headers.get("Content-Type", "application/octet-stream"),
                  "data": base64.b64encode(request.get_data()).decode()}
    doc["_attachments"] = atts
    result = writes.put_doc(db_name, doc, gate=_gate(db_name))
    return send(result, 201, {"ETag": f'"{result["rev"]}"'})


def delete_attachment(db_name: str, doc_id: str, name: str) -> Response:
    """``DELETE /db/doc/att?rev=``: a new revision without that attachment."""
    if doc_id.startswith("_local/"):
        raise BadRequest(LOCAL_ATTACHMENTS)
    if not (request.args.get("rev") or request.headers.get("If-Match")):
        raise Conflict()
    doc = _doc_for_attachment_edit(db_name, doc_id)
    atts = dict(doc.get("_attachments") or {})
    if name not in atts:
        raise NotFound("Document is missing attachment")
    del atts[name]
    doc["_attachments"] = atts
    return send(writes.put_doc(db_name, doc, gate=_gate(db_name)))
