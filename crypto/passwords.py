"""Password hashes: Argon2id in PHC string form, so parameters travel with each hash.

Parameters follow OWASP's 2024 minimum for Argon2id (19 MiB, 2 passes, 1 lane); the PHC
string records them, so raising them later re-hashes on the next successful sign-in.
"""
from __future__ import annotations

import os

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

MEMORY_KIB = 19 * 1024
ITERATIONS = 2
LANES = 1


def hash_password(password: str) -> str:
    """Return the Argon2id PHC string of ``password`` with a fresh random salt."""
    if not isinstance(password, str) or not password:
        raise ValueError("password must be a non-empty string")
    kdf = Argon2id(salt=os.urandom(16), length=32, iterations=ITERATIONS, lanes=LANES,
                   memory_cost=MEMORY_KIB)
    return kdf.derive_phc_encoded(password.encode())


def verify_password(password: str, phc: str) -> bool:
    """Tell whether ``password`` matches the PHC string ``phc`` (False for any malformed hash)."""
    try:
        Argon2id.verify_phc_encoded(password.encode(), phc)
    except (InvalidKey, ValueError):
        return False
    return True
