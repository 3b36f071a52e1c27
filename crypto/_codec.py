"""Shared checks and encodings for the crypto modules (private to the package)."""
from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

KEY_BYTES = 32  # AES-256 data keys and key-encryption keys
NONCE_BYTES = 12  # the 96-bit GCM nonce that needs no extra hashing
TAG_BYTES = 16


def require_bytes(name: str, value: object, length: int | None = None) -> bytes:
    """Return ``value`` as ``bytes``; TypeError if it is not bytes-like, ValueError if its length is wrong."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    data = bytes(value)
    if length is not None and len(data) != length:
        raise ValueError(f"{name} must be {length} bytes, not {len(data)}")
    return data


def require_key(name: str, value: object) -> bytes:
    """Return a 256-bit key or raise TypeError/ValueError."""
    return require_bytes(name, value, KEY_BYTES)


def require_text(name: str, value: object) -> str:
    """Return a non-empty ``str`` or raise TypeError/ValueError."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    return value


def require_int(name: str, value: object, low: int, high: int) -> int:
    """Return an ``int`` in [low, high]; bool is refused because True would pass as 1."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, not {value}")
    return value


def b64(data: bytes) -> str:
    """Encode bytes as standard padded base64 text."""
    return base64.b64encode(data).decode("ascii")


def unb64(name: str, text: object) -> bytes:
    """Decode strict base64 text, raising ValueError for anything else."""
    if not isinstance(text, str):
        raise ValueError(f"{name} must be base64 text")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError(f"{name} is not valid base64") from None


def unhex(name: str, text: object, length: int) -> bytes:
    """Decode lowercase hex text of exactly ``length`` bytes, raising ValueError otherwise."""
    if not isinstance(text, str) or len(text) != 2 * length or text != text.lower():
        raise ValueError(f"{name} must be {2 * length} lowercase hex digits")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{name} must be {2 * length} lowercase hex digits") from None


def fields(name: str, obj: object, required: set[str], optional: frozenset[str] = frozenset()) -> Mapping[str, Any]:
    """Check a JSON object has the required keys and no unknown ones (a strict reader refuses what it can't judge)."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"{name} must be a JSON object")
    keys = set(obj)
    if not required <= keys or not keys <= required | optional:
        raise ValueError(f"{name} must have the keys {sorted(required)} (optional {sorted(optional)}), "
                         f"not {sorted(keys)}")
    return obj
