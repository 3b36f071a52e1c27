"""CouchDB's multipart bodies: parse ``multipart/related`` uploads, build related and mixed replies.

Pure helpers (stdlib only). The wire format is CouchDB's own (couch_httpd_multipart.erl
``encode_multipart_stream``, chttpd_db.erl ``send_docs_multipart``): CRLF line ends, no
preamble, the doc JSON first, then one part per attachment marked ``"follows": true``, in
``_attachments`` order, and the closing ``--BOUNDARY--`` with nothing after it.
"""
from __future__ import annotations

import gzip
import json
import uuid
import zlib
from dataclasses import dataclass, field
from email.message import Message
from email.utils import collapse_rfc2231_value
from typing import Any

from sync.errors import BadContentType, BadRequest

CRLF = b"\r\n"

#: An attachment body to send: (name, content type, raw decoded bytes).
Attachment = tuple[str, str, bytes]


# ---------------------------------------------------------------------------- parsing


def media_type(content_type: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Type header into its lowercased media type and its (unquoted) parameters."""
    msg = Message()
    msg["Content-Type"] = content_type
    params = {}
    for key, value in msg.get_params(header="Content-Type", failobj=[])[1:]:
        params[key.lower()] = collapse_rfc2231_value(value)
    return msg.get_content_type(), params


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/related`` Content-Type, quoted or not."""
    kind, params = media_type(content_type)
    if kind != "multipart/related":
        raise BadRequest(f"Expected multipart/related, got {kind}")
    boundary = params.get("boundary", "")
    if not boundary:
        raise BadRequest("multipart/related Content-Type has no boundary")
    return boundary.encode("utf-8")


def split_parts(body: bytes, boundary: bytes) -> list[tuple[bytes, bytes]]:
    """Split a multipart body into (raw header block, body) pairs; raise on a broken frame."""
    dash = b"--" + boundary
    delimiter = CRLF + dash
    if body.startswith(dash):
        pos = len(dash)
    else:
        # A preamble is legal before the first delimiter; senders such as CouchDB never write one.
        start = body.find(delimiter)
        if start < 0:
            raise BadRequest("Multipart body does not contain its boundary")
        pos = start + len(delimiter)
    parts: list[tuple[bytes, bytes]] = []
    while True:
        if body.startswith(b"--", pos):
            return parts
        pos = skip_delimiter_line(body, pos)
        head_end = header_block_end(body, pos)
        end = body.find(delimiter, head_end)
        if end < 0:
            raise BadRequest("Multipart body has no closing delimiter")
        parts.append((body[pos:head_end], body[head_end:end]))
        pos = end + len(delimiter)


def skip_delimiter_line(body: bytes, pos: int) -> int:
    """Skip the transport padding and CRLF that end a delimiter line."""
    while body[pos:pos + 1] in (b" ", b"\t"):
        pos += 1
    if not body.startswith(CRLF, pos):
        raise BadRequest("Multipart body has no closing delimiter" if pos >= len(body)
                         else "Multipart delimiter is not followed by CRLF")
    return pos + 2


def header_block_end(body: bytes, pos: int) -> int:
    """Offset just past the blank line that ends a part's headers (which may be empty)."""
    if body.startswith(CRLF, pos):
        return pos + 2
    end = body.find(CRLF + CRLF, pos)
    if end < 0:
        raise BadRequest("Multipart part headers are not terminated")
    return end + 4


def parse_headers(block: bytes) -> dict[str, str]:
    """Parse a part's header block into lowercased names and stripped values."""
    headers: dict[str, str] = {}
    name = ""
    for line in block.decode("utf-8", "replace").split("\r\n"):
        if not line:
            continue
        if line[0] in " \t" and name:
            headers[name] += " " + line.strip()  # an obsolete folded continuation line
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise BadRequest(f"Bad multipart part header: {line[:80]!r}")
        name = name.strip().lower()
        headers[name] = value.strip()
    return headers


def parse_doc_part(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """Decode the first part, the document JSON."""
    if "content-type" in headers and media_type(headers["content-type"])[0] != "application/json":
        # CouchDB answers 415 bad_content_type here too (mp_parse_doc's bad_ctype).
        raise BadContentType("Content-Type must be application/json")
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"Invalid JSON in the document part: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest("Document must be a JSON object")
    return doc


def follows_entries(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The ``_attachments`` entries marked ``"follows": true``, in document order."""
    atts = doc.get("_attachments", {})
    if not isinstance(atts, dict):
        raise BadRequest("_attachments must be a JSON object")
    return [(name, att) for name, att in atts.items() if isinstance(att, dict) and att.get("follows") is True]


def checked_body(headers: dict[str, str], body: bytes) -> bytes:
    """An attachment part's body, checked against its Content-Length header when it has one."""
    declared = headers.get("content-length")
    if declared is not None and declared != str(len(body)):
        raise BadRequest(f"Multipart part has {len(body)} bytes, its Content-Length says {declared}")
    return body


def parse_related(body: bytes, content_type: str) -> tuple[dict[str, Any], list[bytes]]:
    """Parse a ``multipart/related`` doc upload into the doc and its attachment bodies as sent."""
    parts = split_parts(body, boundary_of(content_type))
    if not parts:
        raise BadRequest("Multipart body has no document part")
    doc = parse_doc_part(parse_headers(parts[0][0]), parts[0][1])
    bodies = [checked_body(parse_headers(head), part_body) for head, part_body in parts[1:]]
    expected = len(follows_entries(doc))
    if len(bodies) != expected:
        # Fewer is a truncated upload; more would be bytes we would silently drop.
        raise BadRequest(f"Multipart body has {len(bodies)} attachment part(s) for {expected} attachment(s)"
                         " marked follows")
    return doc, bodies


def declared_length(name: str, att: dict[str, Any], key: str, default: Any = None) -> int:
    """A non-negative integer length field of an attachment entry."""
    value = att.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"Attachment {name} has no valid {key}")
    return value


def gunzip(name: str, raw: bytes) -> bytes:
    """Decompress a gzip-encoded attachment body."""
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise BadRequest(f"Attachment {name} is not valid gzip: {exc}") from None


def decode_one(name: str, att: dict[str, Any], raw: bytes) -> bytes:
    """Check one following body against its declared sizes and return its decoded bytes."""
    length = declared_length(name, att, "length")
    encoding = att.get("encoding", "identity")
    if encoding == "identity":
        data = raw
    elif encoding == "gzip":
        # CouchDB defaults encoded_length to length (couch_att:encoded_lengths_from_json).
        encoded_length = declared_length(name, att, "encoded_length", length)
        if len(raw) != encoded_length:
            raise BadRequest(f"Attachment {name} has {len(raw)} bytes,"
                             f" its encoded_length says {encoded_length}")
        data = gunzip(name, raw)
    else:
        raise BadRequest(f"Attachment {name} has an unsupported encoding: {encoding!r}")
    if len(data) != length:
        raise BadRequest(f"Attachment {name} has {len(data)} bytes, its length says {length}")
    return data


def decode_follows(doc: dict[str, Any], bodies: list[bytes]) -> dict[str, bytes]:
    """Map each ``follows`` attachment name to its decoded bytes (gunzipped when ``encoding`` is gzip)."""
    entries = follows_entries(doc)
    if len(entries) != len(bodies):
        raise BadRequest(f"{len(entries)} attachments follow but {len(bodies)} bodies were sent")
    return {name: decode_one(name, att, raw) for (name, att), raw in zip(entries, bodies)}


# ---------------------------------------------------------------------------- building


def new_boundary() -> str:
    """A random boundary, 32 hex digits like couch_uuids:random()."""
    return uuid.uuid4().hex


def json_bytes(doc: dict[str, Any]) -> bytes:
    """Compact JSON, as CouchDB writes it; ASCII escapes keep lone surrogates encodable."""
    return json.dumps(doc, separators=(",", ":")).encode("ascii")


def header_safe(text: str) -> str:
    """``text`` with CR and LF replaced, so a stored name or type cannot inject a header."""
    return text.replace("\r", " ").replace("\n", " ")


def quoted(text: str) -> str:
    """An HTTP quoted-string (CouchDB writes the name raw, which breaks on a double quote)."""
    return '"' + header_safe(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def mark_follows(doc: dict[str, Any], attachments: list[Attachment]) -> dict[str, Any]:
    """A copy of ``doc`` whose entries for ``attachments`` say follows, with the decoded length."""
    names = [name for name, _, _ in attachments]
    if len(set(names)) != len(names):
        raise ValueError("duplicate attachment names")
    atts = {name: dict(att) for name, att in (doc.get("_attachments") or {}).items()}
    for name, ctype, data in attachments:
        att = atts.setdefault(name, {})
        for key in ("stub", "data", "encoding", "encoded_length"):
            att.pop(key, None)  # the body travels decoded, in its own part
        att.update(content_type=ctype, length=len(data), follows=True)
    dangling = [n for n, att in atts.items() if att.get("follows") is True and n not in names]
    if dangling:
        raise ValueError(f"attachments marked follows without a body: {dangling}")
    return {**doc, "_attachments": atts} if atts else dict(doc)


def attachment_headers(name: str, ctype: str, length: int) -> bytes:
    """The header block of one attachment part, in CouchDB's order, with the blank line after it."""
    return (f"\r\nContent-Disposition: attachment; filename={quoted(name)}"
            f"\r\nContent-Type: {header_safe(ctype)}\r\nContent-Length: {length}\r\n\r\n").encode("utf-8")


def related_body(doc: dict[str, Any], attachments: list[Attachment], boundary: str) -> bytes:
    """The bytes of a ``multipart/related`` doc: JSON part, then bodies in ``_attachments`` order."""
    marked = mark_follows(doc, attachments)
    by_name = {name: (ctype, data) for name, ctype, data in attachments}
    dash = b"--" + boundary.encode("ascii")
    chunks = [dash, b"\r\nContent-Type: application/json\r\n\r\n", json_bytes(marked), CRLF, dash]
    for name in marked["_attachments"]:
        if name in by_name:
            ctype, data = by_name[name]
            chunks += [attachment_headers(name, ctype, len(data)), data, CRLF, dash]
    chunks.append(b"--")
    return b"".join(chunks)


def build_related(doc: dict[str, Any], attachments: list[Attachment]) -> tuple[bytes, str]:
    """Body and Content-Type of ``GET /db/doc`` with ``Accept: multipart/related``.

    With nothing to follow, this is plain JSON, as CouchDB sends it.
    """
    if not attachments:
        return json_bytes(doc), "application/json"
    boundary = new_boundary()
    return related_body(doc, attachments, boundary), f'multipart/related; boundary="{boundary}"'


@dataclass(frozen=True)
class Part:
    """One revision in an ``open_revs`` multipart/mixed reply: a found doc, or a missing rev."""

    doc: dict[str, Any] | None = None
    attachments: list[Attachment] = field(default_factory=list)
    missing: str | None = None

    def __post_init__(self) -> None:
        if (self.doc is None) == (self.missing is None):
            raise ValueError("a Part has either a doc or a missing rev")
        if self.missing is not None and self.attachments:
            raise ValueError("a missing rev has no attachments")

    @classmethod
    def found(cls, doc: dict[str, Any], attachments: list[Attachment] | None = None) -> Part:
        """A revision that exists, with the attachment bodies that follow it (none: plain JSON)."""
        return cls(doc=doc, attachments=list(attachments or []))

    @classmethod
    def not_found(cls, rev: str) -> Part:
        """A requested revision that does not exist."""
        return cls(missing=rev)

    def encode(self) -> tuple[str, bytes]:
        """This part's Content-Type and body."""
        if self.doc is None:
            return 'application/json; error="true"', json_bytes({"missing": self.missing})
        if not self.attachments:
            # The CouchDB replicator matches exactly "application/json", with no parameters.
            return "application/json", json_bytes(self.doc)
        boundary = new_boundary()
        return f'multipart/related; boundary="{boundary}"', related_body(self.doc, self.attachments, boundary)


def build_mixed(parts: list[Part]) -> tuple[bytes, str]:
    """Body and Content-Type of ``GET /db/doc?open_revs=...`` with ``Accept: multipart/mixed``."""
    boundary = new_boundary()
    dash = b"--" + boundary.encode("ascii")
    chunks = [dash]
    for part in parts:
        ctype, body = part.encode()
        chunks += [f"\r\nContent-Type: {ctype}\r\n\r\n".encode("ascii"), body, CRLF, dash]
    chunks.append(b"--")
    return b"".join(chunks), f'multipart/mixed; boundary="{boundary}"'
