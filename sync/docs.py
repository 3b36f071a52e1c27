"""Shared document helpers: id and field validation, body splitting, attachment intake.

A stored revision body is the document without ``_id``, ``_rev``, ``_deleted`` and
``_revisions``; its ``_attachments`` entries hold metadata only (``content_type``,
``digest``, ``length``, ``revpos`` and ``sha256``, our key for the bytes).
"""
from __future__ import annotations

import base64
import binascii
from typing import Any

from . import jsoncodec
from .errors import BadRequest, DocValidation, MissingStub
from .store import md5_digest, store_blob

# Top-level fields a client may send; any other "_" field is refused as CouchDB does.
ALLOWED_SPECIAL = {"_id", "_rev", "_deleted", "_attachments", "_revisions", "_revs_info",
                   "_conflicts", "_deleted_conflicts", "_local_seq"}
# Replication-state fields CouchDB stores like ordinary fields (#2442 in PouchDB's suite).
KEPT_SPECIAL = {"_replication_id", "_replication_state", "_replication_state_time",
                "_replication_state_reason", "_replication_stats"}
ATT_META = ("content_type", "digest", "length", "revpos", "sha256")

Json = dict[str, Any]
# One limit on every engine (SQLite enforces none): the id must fit the column and a
# PostgreSQL B-tree index entry (about 2,700 bytes).
MAX_ID_BYTES = 2000


def check_doc_id(doc_id: object, *, allow_local: bool = True) -> str:
    """Validate a document id the way CouchDB does; return it."""
    if not isinstance(doc_id, str) or doc_id == "":
        raise BadRequest("Document id must be a non-empty string")
    if doc_id.startswith("_") and not doc_id.startswith(("_design/", "_local/")):
        raise BadRequest("Only reserved document ids may start with underscore.")
    if doc_id.startswith("_local/") and not allow_local:
        raise BadRequest("_local documents are not replicated")
    if doc_id in ("_design/", "_local/"):
        raise BadRequest("Document id must not be empty")
    if len(doc_id.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        raise BadRequest(f"Document id must be at most {MAX_ID_BYTES} bytes of UTF-8")
    return doc_id


def split_doc(doc: Json) -> tuple[Json, bool, Json | None]:
    """Return (body without special fields, deleted flag, raw ``_attachments``)."""
    if not isinstance(doc, dict):
        raise BadRequest("Document must be a JSON object")
    body: Json = {}
    for key, value in doc.items():
        if key.startswith("_") and key not in KEPT_SPECIAL:
            if key not in ALLOWED_SPECIAL:
                raise DocValidation(f"Bad special document member: {key}")
            continue
        body[key] = value
    atts = doc.get("_attachments")
    if atts is not None and not isinstance(atts, dict):
        raise BadRequest("_attachments must be a JSON object")
    return body, bool(doc.get("_deleted")), atts or None


def dump_body(body: Json) -> str:
    """Serialise a body for storage; refuse text that is not valid Unicode."""
    text = jsoncodec.dumps(body)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("Document contains invalid UTF-8 (a lone surrogate)") from None
    return text


def _decode_inline(name: str, data: object) -> bytes:
    if not isinstance(data, str):
        raise BadRequest(f"Attachment data for {name} must be a base64 string")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("Invalid attachment data for " + name) from None


def intake_attachments(atts: Json | None, *, new_pos: int, replicated: bool,
                       base: Json | None, follows: dict[str, bytes] | None = None) -> Json | None:
    """Turn incoming ``_attachments`` into stored metadata, storing any new bytes.

    :param base: attachments of the revision stubs refer to (the parent, or an ancestor).
    :param replicated: keep the sender's digest and revpos (new_edits=false); otherwise
        compute the digest and set revpos to the new revision's position.
    :raise 412 missing_stub: a stub names an attachment ``base`` does not hold.
    """
    if not atts:
        return None
    out: Json = {}
    for name, entry in atts.items():
        if not name or name.startswith("_"):
            raise BadRequest(f"Attachment name '{name}' starts with prohibited character '_'"
                             if name else "Attachment name must not be empty")
        if not isinstance(entry, dict):
            raise BadRequest(f"Attachment {name} must be a JSON object")
        if entry.get("stub"):
            known = (base or {}).get(name)
            if known is None:
                raise MissingStub(f"Invalid attachment stub in {name}")
            out[name] = dict(known)
            continue
        if "data" in entry:
            data = _decode_inline(name, entry["data"])
        elif entry.get("follows") and follows is not None and name in follows:
            data = follows[name]
        else:
            raise BadRequest(f"Attachment {name} has neither data nor stub")
        # A replicated attachment must be as long as it says; an edit may carry the old
        # length beside new data (PouchDB's get-modify-put), so there it is ignored.
        if replicated and "length" in entry and entry.get("encoding") is None and entry["length"] != len(data):
            raise BadRequest(f"Attachment {name} length does not match its data")
        digest = entry.get("digest") if replicated else None
        if digest is not None and (not isinstance(digest, str) or not digest.startswith("md5-")):
            raise BadRequest(f"Attachment {name} has an invalid digest")
        revpos = entry.get("revpos") if replicated else None
        out[name] = {"content_type": str(entry.get("content_type") or "application/octet-stream"),
                     "digest": digest or md5_digest(data), "length": len(data),
                     "revpos": revpos if isinstance(revpos, int) and revpos > 0 else new_pos,
                     "sha256": store_blob(data)}
    return out


def md5_of(meta: Json) -> bytes | None:
    """Raw md5 of an attachment's digest, for CouchDB's rev hash (None if not md5)."""
    digest = meta.get("digest", "")
    if not digest.startswith("md5-"):
        return None
    try:
        return base64.b64decode(digest[4:])
    except (binascii.Error, ValueError):
        return None
