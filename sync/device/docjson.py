"""CouchDB document JSON on the device: ids, bodies, and ``_attachments`` coming in."""
from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from sync.errors import BadRequest, DocValidation, MissingStub

from .core import Att

Json = dict[str, Any]
# Top-level members a document may carry besides its body (CouchDB's list); others are refused.
SPECIAL = {"_id", "_rev", "_deleted", "_attachments", "_revisions", "_revs_info", "_conflicts",
           "_deleted_conflicts", "_local_seq"}


def check_doc_id(doc_id: object) -> str:
    """A replicable document id, validated as CouchDB does (``_local/`` ids are checkpoints)."""
    if not isinstance(doc_id, str) or not doc_id:
        raise BadRequest("Document id must be a non-empty string")
    if doc_id.startswith("_") and not doc_id.startswith("_design/"):
        raise BadRequest("Only reserved document ids may start with underscore.")
    return doc_id


def split_doc(doc: object) -> tuple[Json, bool, Json]:
    """Return (body, deleted flag, raw ``_attachments``) of a document."""
    if not isinstance(doc, dict):
        raise BadRequest("Document must be a JSON object")
    body: Json = {}
    for key, value in doc.items():
        # CouchDB stores the replicator's own "_replication_*" fields like ordinary ones.
        if key.startswith("_") and not key.startswith("_replication_"):
            if key not in SPECIAL:
                raise DocValidation(f"Bad special document member: {key}")
            continue
        body[key] = value
    atts = doc.get("_attachments") or {}
    if not isinstance(atts, dict):
        raise BadRequest("_attachments must be a JSON object")
    return body, bool(doc.get("_deleted")), atts


def md5_digest(data: bytes) -> str:
    """CouchDB's attachment digest: ``md5-`` and the base64 of the raw md5."""
    return "md5-" + base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


def md5_bytes(digest: str) -> bytes | None:
    """The raw md5 of an ``md5-`` digest (what CouchDB's rev hash folds in), else None."""
    if not digest.startswith("md5-"):
        return None
    try:
        return base64.b64decode(digest[4:], validate=True)
    except (binascii.Error, ValueError):
        return None


def _data(name: str, entry: Json) -> bytes:
    """The bytes of an inline attachment (base64 text, or bytes from the local API)."""
    data = entry.get("data")
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if not isinstance(data, str):
        raise BadRequest(f"Attachment {name} has neither data nor stub")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("Invalid attachment data for " + name) from None


def intake(atts: Json, *, base: dict[str, Att], new_pos: int, replicated: bool) -> dict[str, Att]:
    """Turn incoming ``_attachments`` into ``Att``s; stubs come from ``base`` (the ancestor's)."""
    out: dict[str, Att] = {}
    for name, entry in atts.items():
        if not isinstance(name, str) or not name or name.startswith("_"):
            raise BadRequest(f"Attachment name '{name}' is empty or starts with '_'")
        if not isinstance(entry, dict):
            raise BadRequest(f"Attachment {name} must be a JSON object")
        if entry.get("stub"):
            if name not in base:
                raise MissingStub(f"Invalid attachment stub in {name}")
            out[name] = base[name]
            continue
        data = _data(name, entry)
        # Replicated revisions keep the sender's digest and revpos: they are part of what
        # makes the revision identical on every replica.
        digest = entry.get("digest") if replicated else None
        if digest is not None and (not isinstance(digest, str) or not digest.startswith("md5-")):
            raise BadRequest(f"Attachment {name} has an invalid digest")
        revpos = entry.get("revpos") if replicated else None
        if not isinstance(revpos, int) or isinstance(revpos, bool) or revpos < 1:
            revpos = new_pos
        out[name] = Att(str(entry.get("content_type") or "application/octet-stream"),
                        digest or md5_digest(data), len(data), revpos, data)
    return out


def needs_base(atts: Json) -> bool:
    """Whether any entry is a stub (then the ancestor's attachments must be read)."""
    return any(isinstance(entry, dict) and entry.get("stub") for entry in atts.values())
