"""PIN wraps of the data key: create a keyring, unlock it, change the PIN, set the recovery wrap.

The PIN wrap is AES-256-GCM under the Argon2id key of the PIN with ``b"wasl/pin-wrap/v1" + key id`` as
associated data; the Argon2id parameters and salt sit beside it (``WrappedKey.params``), so a PIN change
can raise them. A PIN change re-wraps only: the data key, and so every envelope, stays as it is.
"""
from __future__ import annotations

import hmac
import os
from dataclasses import replace

from ._codec import KEY_BYTES, require_text
from .envelope import DecryptionError, key_id
from .kdf import KdfParams, derive_key, new_params
from .keyring import Keyring, WrappedKey, aead_unwrap, aead_wrap
from .recovery import wrap_for_recovery

MIN_PIN_CHARS = 4  # the floor the issue allows; docs/threat-model.md explains why 6+ digits or a passphrase
_PIN_WRAP = b"wasl/pin-wrap/v1"


def check_new_pin(pin: str) -> str:
    """Return ``pin`` if it may protect a keyring: a str of at least MIN_PIN_CHARS characters."""
    if len(require_text("pin", pin)) < MIN_PIN_CHARS:
        raise ValueError(f"a PIN must have at least {MIN_PIN_CHARS} characters")
    return pin


def wrap_with_kek(data_key: bytes, params: KdfParams, kek: bytes) -> WrappedKey:
    """Wrap ``data_key`` under a key already derived from the PIN with ``params``."""
    nonce, ciphertext = aead_wrap(kek, data_key, _PIN_WRAP + key_id(data_key))
    return WrappedKey(params=params, nonce=nonce, ciphertext=ciphertext)


def unwrap_with_kek(keyring: Keyring, kek: bytes) -> bytes:
    """Return the data key of ``keyring`` given the key derived from its PIN; DecryptionError if wrong."""
    data_key = aead_unwrap(kek, keyring.pin.nonce, keyring.pin.ciphertext, _PIN_WRAP + keyring.key_id)
    if not hmac.compare_digest(key_id(data_key), keyring.key_id):
        raise DecryptionError
    return data_key


def create_keyring(pin: str, recovery_public_key: bytes | None = None, *,
                   params: KdfParams | None = None) -> tuple[bytes, Keyring]:
    """Make a random 256-bit data key and its keyring; return (data key, keyring)."""
    params = new_params() if params is None else params
    data_key = os.urandom(KEY_BYTES)
    pin_wrap = wrap_with_kek(data_key, params, derive_key(check_new_pin(pin), params))
    recovery = None if recovery_public_key is None else wrap_for_recovery(data_key, recovery_public_key)
    return data_key, Keyring(key_id=key_id(data_key), pin=pin_wrap, recovery=recovery)


def unlock(keyring: Keyring, pin: str) -> bytes:
    """Return the data key of ``keyring``; DecryptionError for a wrong PIN or a tampered keyring."""
    if not isinstance(keyring, Keyring):
        raise TypeError(f"keyring must be a Keyring, not {type(keyring).__name__}")
    return unwrap_with_kek(keyring, derive_key(pin, keyring.pin.params))


def change_pin(keyring: Keyring, old_pin: str, new_pin: str, params: KdfParams | None = None) -> Keyring:
    """Re-wrap the same data key under ``new_pin`` (fresh salt; ``params`` may raise the costs)."""
    check_new_pin(new_pin)
    data_key = unlock(keyring, old_pin)
    params = new_params() if params is None else params
    return replace(keyring, pin=wrap_with_kek(data_key, params, derive_key(new_pin, params)))


def set_recovery(keyring: Keyring, data_key: bytes, recovery_public_key: bytes | None) -> Keyring:
    """Wrap the unlocked ``data_key`` to a (new) recovery public key, or drop the recovery wrap with None."""
    if not hmac.compare_digest(key_id(data_key), keyring.key_id):
        raise ValueError("data_key is not the key of this keyring")
    recovery = None if recovery_public_key is None else wrap_for_recovery(data_key, recovery_public_key)
    return replace(keyring, recovery=recovery)
