"""Revision ids: parsing, formatting, and CouchDB's deterministic revision hash.

A revision id is the string ``"N-hash"``: ``N`` is the revision's depth in its document's
tree (a positive integer, written without sign or leading zeros) and ``hash`` is an opaque,
non-empty string. CouchDB stores a 32-character hexadecimal hash as 16 raw bytes, so a
32-character hash that is not hexadecimal is refused, as CouchDB refuses it.

``new_rev_hash`` reproduces CouchDB's ``couch_db:new_revid/1`` exactly: the lowercase hex
md5 of ``term_to_binary([Deleted, OldStart, OldRev, Body, Atts], [{minor_version, 1}])``.
``term_to_binary`` below is a port of the subset of Erlang's external term format that
this term needs (see erts' external.c and the "External Term Format" chapter of the ERTS
user's guide); the atom encoding (ATOM_EXT, tag 100) was checked against CouchDB's
published revisions, which the tests pin.

Provenance: couch_doc.erl ``parse_rev/1`` and ``parse_revid/2``, couch_db.erl
``new_revid/1``; PROTOCOL.md section 2.1.
"""
from __future__ import annotations

import hashlib
import re
import struct
import uuid
from typing import Any

from sync.errors import InvalidRev

# re.ASCII: str.isdigit() and \d would otherwise accept digits of other scripts ("١-a").
_REV_RE = re.compile(r"([1-9][0-9]*)-(.+)", re.ASCII | re.DOTALL)
_HEX32_RE = re.compile(r"[0-9a-fA-F]{32}", re.ASCII)

# External term format tags (erts/emulator/beam/external.h).
_VERSION = 131
_NEW_FLOAT, _SMALL_INTEGER, _INTEGER = 70, 97, 98
_ATOM, _SMALL_TUPLE, _NIL, _STRING, _LIST, _BINARY = 100, 104, 106, 107, 108, 109
_SMALL_BIG, _LARGE_BIG = 110, 111
_MAX_STRING_LEN = 0xFFFF


class Atom(str):
    """An Erlang atom, told apart from a string (which encodes as a binary)."""


MAX_REV_LENGTH = 300  # the width of the rev columns


def parse_rev(rev: object) -> tuple[int, str]:
    """Split ``"N-hash"`` into ``(N, hash)``; raise InvalidRev for anything else."""
    if not isinstance(rev, str) or len(rev) > MAX_REV_LENGTH:
        raise InvalidRev()
    match = _REV_RE.fullmatch(rev)
    if match is None:
        raise InvalidRev()
    rev_hash = match.group(2)
    # CouchDB decodes every 32-character id as hex (binary:decode_hex), so a 32-character
    # id that is not hex is "Invalid rev format" there too.
    if len(rev_hash) == 32 and not _HEX32_RE.fullmatch(rev_hash):
        raise InvalidRev()
    return int(match.group(1)), rev_hash


def format_rev(pos: int, rev_hash: str) -> str:
    """Join a position and a hash into ``"N-hash"``."""
    return f"{pos}-{rev_hash}"


def rev_id_bytes(rev_hash: str) -> bytes:
    """The raw rev id CouchDB hashes: 16 bytes for a 32-hex id, else the UTF-8 text."""
    if _HEX32_RE.fullmatch(rev_hash):
        return bytes.fromhex(rev_hash)
    return rev_hash.encode("utf-8")


def new_rev_hash(deleted: bool, parent: tuple[int, str] | None, body: dict[str, Any],
                 attachments: list[tuple[str, str, bytes]]) -> str:
    """CouchDB's deterministic hash for a new revision (without the ``N-`` prefix)."""
    # couch_db:new_revid folds attachments that have an md5 into a list (which reverses
    # them) and, when one lacks an md5, gives up on determinism with a random id.
    if any(not md5 for _, _, md5 in attachments):
        return uuid.uuid4().hex
    atts = [(name, content_type, bytes(md5)) for name, content_type, md5 in reversed(attachments)]
    old_start, old_rev = (0, 0) if parent is None else (parent[0], rev_id_bytes(parent[1]))
    # Fields starting with "_" are metadata (couch_doc:transfer_fields strips them).
    fields = {key: value for key, value in body.items() if not key.startswith("_")}
    term = [bool(deleted), old_start, old_rev, fields, atts]
    return hashlib.md5(term_to_binary(term)).hexdigest()


def term_to_binary(term: Any) -> bytes:
    """Erlang's ``term_to_binary(Term, [{minor_version, 1}])`` for JSON-like terms."""
    out = bytearray([_VERSION])
    _encode(term, out)
    return bytes(out)


def _encode(term: Any, out: bytearray) -> None:
    """Append one term; JSON values map to jiffy's EJSON, tuples and bytes to themselves."""
    # bool and None first: bool is an int subclass, and all three are atoms in EJSON.
    if term is True or term is False or term is None:
        _encode_atom(Atom({True: "true", False: "false", None: "null"}[term]), out)
    elif isinstance(term, Atom):
        _encode_atom(term, out)
    elif isinstance(term, int):
        _encode_int(term, out)
    elif isinstance(term, float):
        out += struct.pack(">Bd", _NEW_FLOAT, term)
    elif isinstance(term, str):
        _encode_binary(term.encode("utf-8", "surrogatepass"), out)
    elif isinstance(term, (bytes, bytearray)):
        _encode_binary(bytes(term), out)
    elif isinstance(term, tuple):
        _encode_tuple(term, out)
    elif isinstance(term, list):
        _encode_list(term, out)
    elif isinstance(term, dict):
        # EJSON object: a 1-tuple holding the proplist, keys in insertion order.
        _encode_tuple((list(term.items()),), out)
    else:
        raise TypeError(f"cannot encode {type(term).__name__} as an Erlang term")


def _encode_atom(atom: Atom, out: bytearray) -> None:
    """ATOM_EXT: what OTP < 26 emits for latin-1 atoms with minor_version 1."""
    name = atom.encode("latin-1")
    out += struct.pack(">BH", _ATOM, len(name)) + name


def _encode_int(value: int, out: bytearray) -> None:
    """SMALL_INTEGER (0..255), INTEGER (signed 32 bit), else SMALL_BIG / LARGE_BIG."""
    if 0 <= value <= 255:
        out += struct.pack(">BB", _SMALL_INTEGER, value)
    elif -(2 ** 31) <= value < 2 ** 31:
        out += struct.pack(">Bi", _INTEGER, value)
    else:
        magnitude = abs(value)
        digits = magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "little")
        sign = 1 if value < 0 else 0
        if len(digits) <= 255:
            out += struct.pack(">BBB", _SMALL_BIG, len(digits), sign) + digits
        else:
            out += struct.pack(">BIB", _LARGE_BIG, len(digits), sign) + digits


def _encode_binary(data: bytes, out: bytearray) -> None:
    """BINARY_EXT: a 32-bit length and the bytes."""
    out += struct.pack(">BI", _BINARY, len(data)) + data


def _encode_tuple(items: tuple[Any, ...], out: bytearray) -> None:
    """SMALL_TUPLE_EXT (the tuples CouchDB hashes have at most 3 elements)."""
    if len(items) > 255:
        raise ValueError("tuples of more than 255 elements are not supported")
    out += struct.pack(">BB", _SMALL_TUPLE, len(items))
    for item in items:
        _encode(item, out)


def _encode_list(items: list[Any], out: bytearray) -> None:
    """NIL_EXT, STRING_EXT for short lists of bytes (as erts does), else LIST_EXT."""
    if not items:
        out.append(_NIL)
    elif len(items) <= _MAX_STRING_LEN and all(_is_byte(item) for item in items):
        # Erlang has no separate string type: [1,2,3] *is* "\1\2\3" and is encoded so.
        out += struct.pack(">BH", _STRING, len(items)) + bytes(items)
    else:
        out += struct.pack(">BI", _LIST, len(items))
        for item in items:
            _encode(item, out)
        out.append(_NIL)


def _is_byte(item: Any) -> bool:
    """True for an int in 0..255 that is not a bool (true/false are atoms)."""
    return isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 255
