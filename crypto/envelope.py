"""AES-256-GCM envelopes for document bodies and attachments, bound to their database, id and revision.

Version 1 layout (binary; all lengths in bytes)::

    0   3  magic b"WSE"
    3   1  version 0x01
    4   8  key id of the data key that sealed it (``key_id``), so a rotation can resume without a secret
    12 12  random nonce
    24  n  AES-256-GCM ciphertext followed by its 16-byte tag

Binary rather than JSON+base64 because attachments are photos, and base64 would add a third to each on
a tablet's storage; fixed offsets also leave nothing to parse loosely. The associated data is the first
12 bytes (magic, version, key id), a kind byte (0 body, 1 attachment) and each of db, doc id, rev (and the
attachment name) as a 4-byte big-endian length plus UTF-8, so no two different tuples give the same bytes.
"""
from __future__ import annotations

import hashlib
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ._codec import KEY_BYTES, NONCE_BYTES, TAG_BYTES, require_bytes, require_key, require_text

MAGIC = b"WSE"
VERSION = 1
KEY_ID_BYTES = 8
HEADER_BYTES = len(MAGIC) + 1 + KEY_ID_BYTES + NONCE_BYTES
_KEY_ID_INFO = b"wasl/key-id/v1"


class DecryptionError(Exception):
    """The one error for any envelope or wrapped key that does not open: wrong key or PIN, tampered, moved."""

    def __init__(self) -> None:
        """Carry the same message whatever went wrong."""
        super().__init__("decryption failed")  # the same words every time: the cause is not told


def key_id(key: bytes) -> bytes:
    """Return the 8-byte public id of a data key: SHA-256 of an HKDF-derived identifier, never of the key."""
    ident = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=_KEY_ID_INFO)
    return hashlib.sha256(ident.derive(require_key("key", key))).digest()[:KEY_ID_BYTES]


def envelope_key_id(envelope: bytes) -> bytes:
    """Return the key id in an envelope's header (no secret needed); DecryptionError if it is no envelope."""
    data = require_bytes("envelope", envelope)
    if len(data) < HEADER_BYTES + TAG_BYTES or data[:3] != MAGIC or data[3] != VERSION:
        raise DecryptionError
    return data[4:4 + KEY_ID_BYTES]


def associated_data(header: bytes, *, db: str, doc_id: str, rev: str, attachment: str | None = None) -> bytes:
    """Return the AAD binding an envelope to its header, database, document id, revision and part."""
    parts = [require_text("db", db), require_text("doc_id", doc_id), require_text("rev", rev)]
    if attachment is not None:
        parts.append(require_text("attachment", attachment))
    out = [header, b"\x01" if attachment is not None else b"\x00"]
    for part in parts:
        encoded = part.encode("utf-8")
        out += [struct.pack(">I", len(encoded)), encoded]
    return b"".join(out)


def seal(key: bytes, plaintext: bytes, *, db: str, doc_id: str, rev: str, attachment: str | None = None,
         _nonce: bytes | None = None) -> bytes:
    """Encrypt a document body (or one of its attachments) under the data key ``key``."""
    key = require_key("key", key)
    data = require_bytes("plaintext", plaintext)
    nonce = os.urandom(NONCE_BYTES) if _nonce is None else require_bytes("_nonce", _nonce, NONCE_BYTES)
    header = MAGIC + bytes([VERSION]) + key_id(key)
    aad = associated_data(header, db=db, doc_id=doc_id, rev=rev, attachment=attachment)
    return header + nonce + AESGCM(key).encrypt(nonce, data, aad)


def open_sealed(key: bytes, envelope: bytes, *, db: str, doc_id: str, rev: str,
                attachment: str | None = None) -> bytes:
    """Decrypt what ``seal`` produced for the same db, doc id, rev and part; DecryptionError otherwise."""
    key = require_key("key", key)
    header = MAGIC + bytes([VERSION]) + key_id(key)
    # Built first, so misuse (a wrong type, an empty id) raises TypeError/ValueError, not DecryptionError.
    aad = associated_data(header, db=db, doc_id=doc_id, rev=rev, attachment=attachment)
    if envelope_key_id(envelope) != header[4:]:
        raise DecryptionError  # the key id is public, so failing early on it tells an attacker nothing
    data = bytes(envelope)
    try:
        return AESGCM(key).decrypt(data[len(header):HEADER_BYTES], data[HEADER_BYTES:], aad)
    except InvalidTag:
        raise DecryptionError from None
