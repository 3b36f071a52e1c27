"""Shared document helpers: id and field validation, body splitting, attachment intake.

A stored revision body is the document without ``_id``, ``_rev``, ``_deleted`` and
``_revisions``; its ``_attachments`` entries hold metadata only (``content_type``,
``digest``, ``length``, ``revpos`` and ``sha256``, our key for the bytes).
"""
from __future__ import annotations

from . import jsoncodec
from .docfields import Json, check_doc_id, decode_base64, md5_bytes, md5_digest, split_doc
from .errors import BadRequest, MissingStub
from .store import store_blob

__all__ = ["Json", "check_doc_id", "dump_body", "intake_attachments", "md5_of", "split_doc"]


def dump_body(body: Json) -> str:
    """Serialise a body for storage; refuse text that is not valid Unicode."""
    text = jsoncodec.dumps(body)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("Document contains invalid UTF-8 (a lone surrogate)") from None
    return text


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
            data = decode_base64(name, entry["data"])
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
    return md5_bytes(meta.get("digest", ""))
