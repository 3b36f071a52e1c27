"""The keyring a device stores: its data key's public id and the wraps of that key (no secret in clear).

Keyring JSON, version 1 (``Keyring.to_json``)::

    {"version": 1, "key_id": "<16 hex digits>",
     "pin": {"kdf": {"name": "argon2id", "memory_kib": ..., "iterations": ..., "lanes": ..., "salt": "<b64>"},
             "nonce": "<b64>", "ciphertext": "<b64>"},
     "recovery": {"scheme": ..., "recipient": "<b64>", "ciphertext": "<b64>"} or null,
     "retiring": {"key_id": "<16 hex digits>", "nonce": "<b64>", "ciphertext": "<b64>"} or null}

The PIN wrap is AES-256-GCM under the Argon2id key of the PIN, with ``b"wasl/pin-wrap/v1" + key_id`` as
associated data. ``retiring`` holds the previous data key during a rotation (see ``rotation``).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ._codec import KEY_BYTES, NONCE_BYTES, TAG_BYTES, b64, fields, require_bytes, require_key, unb64, unhex
from .envelope import KEY_ID_BYTES, DecryptionError
from .kdf import KdfParams
from .recovery import RecoveryWrap

VERSION = 1
_WRAPPED_BYTES = KEY_BYTES + TAG_BYTES


def aead_wrap(kek: bytes, secret: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """Wrap a key under ``kek`` with AES-256-GCM and a random nonce; return (nonce, ciphertext)."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce, AESGCM(require_key("kek", kek)).encrypt(nonce, require_key("secret", secret), aad)


def aead_unwrap(kek: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """Undo ``aead_wrap``; DecryptionError for a wrong key, a tampered byte or other associated data."""
    try:
        return AESGCM(require_key("kek", kek)).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise DecryptionError from None


@dataclass(frozen=True)
class WrappedKey:
    """The data key wrapped under a key derived from the PIN, with the Argon2id parameters beside it."""

    params: KdfParams
    nonce: bytes
    ciphertext: bytes

    def __post_init__(self) -> None:
        """Refuse a wrap of the wrong shape."""
        if not isinstance(self.params, KdfParams):
            raise TypeError("params must be KdfParams")
        object.__setattr__(self, "nonce", require_bytes("nonce", self.nonce, NONCE_BYTES))
        object.__setattr__(self, "ciphertext", require_bytes("ciphertext", self.ciphertext, _WRAPPED_BYTES))

    def to_json(self) -> dict[str, Any]:
        """Return the wrap as a JSON-ready dict."""
        return {"kdf": self.params.to_json(), "nonce": b64(self.nonce), "ciphertext": b64(self.ciphertext)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> WrappedKey:
        """Read a wrap written by ``to_json``; ValueError if malformed."""
        data = fields("pin", obj, {"kdf", "nonce", "ciphertext"})
        return cls(params=KdfParams.from_json(data["kdf"]), nonce=unb64("nonce", data["nonce"]),
                   ciphertext=unb64("ciphertext", data["ciphertext"]))


@dataclass(frozen=True)
class RetiringKey:
    """The previous data key, wrapped under the current one while a rotation re-encrypts the store."""

    key_id: bytes
    nonce: bytes
    ciphertext: bytes

    def __post_init__(self) -> None:
        """Refuse a wrap of the wrong shape."""
        object.__setattr__(self, "key_id", require_bytes("key_id", self.key_id, KEY_ID_BYTES))
        object.__setattr__(self, "nonce", require_bytes("nonce", self.nonce, NONCE_BYTES))
        object.__setattr__(self, "ciphertext", require_bytes("ciphertext", self.ciphertext, _WRAPPED_BYTES))

    def to_json(self) -> dict[str, Any]:
        """Return the wrap as a JSON-ready dict."""
        return {"key_id": self.key_id.hex(), "nonce": b64(self.nonce), "ciphertext": b64(self.ciphertext)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> RetiringKey:
        """Read a wrap written by ``to_json``; ValueError if malformed."""
        data = fields("retiring", obj, {"key_id", "nonce", "ciphertext"})
        return cls(key_id=unhex("key_id", data["key_id"], KEY_ID_BYTES), nonce=unb64("nonce", data["nonce"]),
                   ciphertext=unb64("ciphertext", data["ciphertext"]))


@dataclass(frozen=True)
class Keyring:
    """Everything a device stores about its data key: its public id and its wraps (no secret in clear)."""

    key_id: bytes
    pin: WrappedKey
    recovery: RecoveryWrap | None = None
    retiring: RetiringKey | None = None

    def __post_init__(self) -> None:
        """Refuse a keyring of the wrong shape."""
        object.__setattr__(self, "key_id", require_bytes("key_id", self.key_id, KEY_ID_BYTES))
        if not isinstance(self.pin, WrappedKey):
            raise TypeError("pin must be a WrappedKey")
        if not isinstance(self.recovery, (RecoveryWrap, type(None))) or \
                not isinstance(self.retiring, (RetiringKey, type(None))):
            raise TypeError("recovery and retiring must be a RecoveryWrap and a RetiringKey, or None")

    def to_json(self) -> dict[str, Any]:
        """Return the keyring as a JSON-ready dict."""
        return {"version": VERSION, "key_id": self.key_id.hex(), "pin": self.pin.to_json(),
                "recovery": None if self.recovery is None else self.recovery.to_json(),
                "retiring": None if self.retiring is None else self.retiring.to_json()}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Keyring:
        """Read a keyring written by ``to_json``; ValueError if malformed or of another version."""
        data = fields("keyring", obj, {"version", "key_id", "pin"}, frozenset({"recovery", "retiring"}))
        if type(data["version"]) is not int or data["version"] != VERSION:
            raise ValueError(f"unsupported keyring version {data['version']!r}")
        try:
            recovery, retiring = data.get("recovery"), data.get("retiring")
            return cls(key_id=unhex("key_id", data["key_id"], KEY_ID_BYTES), pin=WrappedKey.from_json(data["pin"]),
                       recovery=None if recovery is None else RecoveryWrap.from_json(recovery),
                       retiring=None if retiring is None else RetiringKey.from_json(retiring))
        except TypeError as error:  # a stored value of the wrong JSON type is corrupt data, not misuse
            raise ValueError(str(error)) from None
