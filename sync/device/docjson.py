"""CouchDB document JSON on the device: ids, bodies, and ``_attachments`` coming in."""
from __future__ import annotations

from sync.docfields import Json, check_doc_id, decode_base64, md5_bytes, md5_digest, split_doc
from sync.errors import BadRequest, MissingStub

from .core import Att

__all__ = ["check_doc_id", "intake", "md5_bytes", "md5_digest", "needs_base", "split_doc"]


def _data(name: str, entry: Json) -> bytes:
    """The bytes of an inline attachment (base64 text, or bytes from the local API)."""
    data = entry.get("data")
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if not isinstance(data, str):
        raise BadRequest(f"Attachment {name} has neither data nor stub")
    return decode_base64(name, data)


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
