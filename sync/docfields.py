"""Rules for a document's id and top-level fields, and CouchDB's md5 digests.

Pure (no database, no Flask): the server's store (``sync.docs``) and the device's store
(``sync.device``) both validate with these, so a document one side accepts the other does.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from sync.errors import BadRequest, DocValidation

Json = dict[str, Any]
# Top-level fields a client may send; any other "_" field is refused as CouchDB does.
ALLOWED_SPECIAL = {"_id", "_rev", "_deleted", "_attachments", "_revisions", "_revs_info",
                   "_conflicts", "_deleted_conflicts", "_local_seq"}
# Replication-state fields CouchDB stores like ordinary fields (#2442 in PouchDB's suite).
KEPT_SPECIAL = {"_replication_id", "_replication_state", "_replication_state_time",
                "_replication_state_reason", "_replication_stats"}
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


def split_doc(doc: object) -> tuple[Json, bool, Json | None]:
    """Return (body without special fields, deleted flag, raw ``_attachments`` or None)."""
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


def decode_base64(name: str, data: object) -> bytes:
    """The bytes of an inline attachment's base64 ``data``; a clear 400 otherwise."""
    if not isinstance(data, str):
        raise BadRequest(f"Attachment data for {name} must be a base64 string")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("Invalid attachment data for " + name) from None


def md5_digest(data: bytes) -> str:
    """The digest PouchDB and CouchDB report for uploaded bytes: ``md5-<base64>``."""
    return "md5-" + base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


def md5_bytes(digest: str) -> bytes | None:
    """The raw md5 of an ``md5-`` digest (what CouchDB's rev hash folds in), else None."""
    if not isinstance(digest, str) or not digest.startswith("md5-"):
        return None
    try:
        return base64.b64decode(digest[4:], validate=True)
    except (binascii.Error, ValueError):
        return None
