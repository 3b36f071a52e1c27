"""Argon2id key derivation from a CHW's PIN or passphrase, with its parameters kept beside what it protects.

Default costs are RFC 9106 section 4's second recommended option (64 MiB, 3 passes, 4 lanes), the one it
gives for memory-constrained devices. On the reference machine (2-vCPU Xeon VM) one derivation takes
0.12 to 0.19 s on one core, since cryptography's Argon2id runs its lanes one after another.
``new_params`` never goes below OWASP's Password Storage Cheat Sheet minimum for Argon2id (19 MiB, 2 passes).
"""
from __future__ import annotations

import os
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from ._codec import KEY_BYTES, b64, fields, require_bytes, require_int, require_text, unb64

ALGORITHM = "argon2id"
MEMORY_KIB = 64 * 1024
ITERATIONS = 3
LANES = 4
SALT_BYTES = 16  # RFC 9106: 128 bits is enough for every use
MIN_MEMORY_KIB = 19 * 1024
MIN_ITERATIONS = 2
# Ceilings for parameters read back from a keyring, so a crafted file can't make an unlock allocate
# gigabytes or spin for minutes; raising the costs later stays far below them.
MAX_MEMORY_KIB = 1024 * 1024
MAX_ITERATIONS = 64
MAX_LANES = 64
MAX_SECRET_CHARS = 1024


@dataclass(frozen=True)
class KdfParams:
    """Argon2id costs and salt; stored in clear beside the key they protect so costs can rise later."""

    memory_kib: int
    iterations: int
    lanes: int
    salt: bytes
    name: str = ALGORITHM

    def __post_init__(self) -> None:
        """Refuse parameters cryptography would reject, or that no keyring of ours would hold."""
        if self.name != ALGORITHM:
            raise ValueError(f"unsupported KDF {self.name!r}; only {ALGORITHM!r}")
        require_int("lanes", self.lanes, 1, MAX_LANES)
        require_int("memory_kib", self.memory_kib, 8 * self.lanes, MAX_MEMORY_KIB)  # Argon2's own floor
        require_int("iterations", self.iterations, 1, MAX_ITERATIONS)
        salt = require_bytes("salt", self.salt)
        if not SALT_BYTES <= len(salt) <= 64:
            raise ValueError(f"salt must be 16 to 64 bytes, not {len(salt)}")
        object.__setattr__(self, "salt", salt)

    def to_json(self) -> dict[str, Any]:
        """Return the parameters as a JSON-ready dict (salt in base64)."""
        return {"name": self.name, "memory_kib": self.memory_kib, "iterations": self.iterations,
                "lanes": self.lanes, "salt": b64(self.salt)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> KdfParams:
        """Read parameters written by ``to_json``; ValueError if malformed."""
        data = fields("kdf", obj, {"name", "memory_kib", "iterations", "lanes", "salt"})
        try:
            return cls(name=data["name"], memory_kib=data["memory_kib"], iterations=data["iterations"],
                       lanes=data["lanes"], salt=unb64("salt", data["salt"]))
        except TypeError as error:  # a stored value of the wrong JSON type is corrupt data, not misuse
            raise ValueError(str(error)) from None


def new_params(*, memory_kib: int = MEMORY_KIB, iterations: int = ITERATIONS, lanes: int = LANES) -> KdfParams:
    """Return parameters with a fresh random salt, at the recommended costs unless raised."""
    require_int("memory_kib", memory_kib, MIN_MEMORY_KIB, MAX_MEMORY_KIB)
    require_int("iterations", iterations, MIN_ITERATIONS, MAX_ITERATIONS)
    return KdfParams(memory_kib=memory_kib, iterations=iterations, lanes=lanes, salt=os.urandom(SALT_BYTES))


def normalize_secret(secret: str) -> bytes:
    """Return the UTF-8 bytes Argon2id hashes for a PIN or passphrase typed on any keyboard."""
    require_text("secret", secret)
    if len(secret) > MAX_SECRET_CHARS:
        raise ValueError(f"secret must be at most {MAX_SECRET_CHARS} characters")
    # NFC, so the same passphrase typed as composed or decomposed characters derives the same key;
    # then every decimal digit as ASCII, so a PIN typed with Arabic-Indic or Persian digits
    # (U+0660..0669, U+06F0..06F9) on one keyboard still unlocks after a switch to Latin digits.
    text = unicodedata.normalize("NFC", secret)
    return "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in text).encode("utf-8")


def derive_key(secret: str, params: KdfParams) -> bytes:
    """Derive a 256-bit key-encryption key from ``secret`` with cryptography's Argon2id."""
    if not isinstance(params, KdfParams):
        raise TypeError(f"params must be KdfParams, not {type(params).__name__}")
    kdf = Argon2id(salt=params.salt, length=KEY_BYTES, iterations=params.iterations, lanes=params.lanes,
                   memory_cost=params.memory_kib)
    return kdf.derive(normalize_secret(secret))
