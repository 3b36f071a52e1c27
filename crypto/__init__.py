"""Cryptography recipes. Nothing outside this package imports ``cryptography.hazmat``.

``kdf`` derives keys from PINs (Argon2id), ``envelope`` seals document bodies and attachments (AES-256-GCM),
``keyring``/``keys`` wrap the device's data key, ``recovery`` wraps it to the organisation's X25519 key,
``rotation`` replaces it, and ``passwords`` hashes server passwords. docs/threat-model.md says what each protects.
"""
from __future__ import annotations

from .envelope import DecryptionError, envelope_key_id, key_id, open_sealed, seal
from .kdf import KdfParams, derive_key, new_params
from .keyring import Keyring, RetiringKey, WrappedKey
from .keys import change_pin, create_keyring, set_recovery, unlock
from .passwords import hash_password, verify_password
from .recovery import RecoveryWrap, generate_recovery_keypair, load_recovery_public_key, recover_data_key
from .recovery import wrap_for_recovery
from .rotation import finish_rotation, reencrypt, retiring_key, rotate_data_key

__all__ = [
    "DecryptionError",
    "KdfParams",
    "Keyring",
    "RecoveryWrap",
    "RetiringKey",
    "WrappedKey",
    "change_pin",
    "create_keyring",
    "derive_key",
    "envelope_key_id",
    "finish_rotation",
    "generate_recovery_keypair",
    "hash_password",
    "key_id",
    "load_recovery_public_key",
    "new_params",
    "open_sealed",
    "recover_data_key",
    "reencrypt",
    "retiring_key",
    "rotate_data_key",
    "seal",
    "set_recovery",
    "unlock",
    "verify_password",
    "wrap_for_recovery",
]
