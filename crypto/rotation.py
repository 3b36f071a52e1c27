"""Data-key rotation: a new data key, every envelope re-encrypted, resumable if interrupted.

The device store (not this package) drives it in this order, so a crash at any point loses nothing:

1. ``old, new, ring = rotate_data_key(ring, pin)`` and persist ``ring``. The new keyring holds the old key
   wrapped under the new one (``retiring``), so after a restart ``retiring_key(ring, unlock(ring, pin))``
   gives it back.
2. For every envelope, replace it with ``reencrypt(old, new, envelope, ...)``. An envelope already under
   the new key comes back unchanged: its header's key id says so without decrypting, so a resumed pass
   simply runs again over everything (or skips what ``envelope_key_id`` shows is done).
3. When none is left under the old key, persist ``finish_rotation(ring)``; the old key is then gone.
"""
from __future__ import annotations

import hmac
import os
from dataclasses import replace

from ._codec import KEY_BYTES, require_key
from .envelope import DecryptionError, envelope_key_id, key_id, open_sealed, seal
from .kdf import derive_key
from .keyring import Keyring, RetiringKey, aead_unwrap, aead_wrap
from .keys import unwrap_with_kek, wrap_with_kek
from .recovery import wrap_for_recovery

_RETIRING_WRAP = b"wasl/retiring-wrap/v1"


def rotate_data_key(keyring: Keyring, pin: str) -> tuple[bytes, bytes, Keyring]:
    """Return (old data key, new data key, new keyring); ValueError if a rotation is still in progress."""
    if not isinstance(keyring, Keyring):
        raise TypeError(f"keyring must be a Keyring, not {type(keyring).__name__}")
    if keyring.retiring is not None:
        # Starting again would drop the retiring key while envelopes may still need it.
        raise ValueError("a data-key rotation is in progress: finish it first")
    kek = derive_key(pin, keyring.pin.params)  # one Argon2id run: the PIN and its parameters don't change
    old_key = unwrap_with_kek(keyring, kek)
    new_key = os.urandom(KEY_BYTES)
    new_id = key_id(new_key)
    nonce, ciphertext = aead_wrap(new_key, old_key, _RETIRING_WRAP + keyring.key_id + new_id)
    recovery = keyring.recovery
    if recovery is not None:  # the organisation must still be able to recover after a rotation
        recovery = wrap_for_recovery(new_key, recovery.recipient)
    ring = Keyring(key_id=new_id, pin=wrap_with_kek(new_key, keyring.pin.params, kek), recovery=recovery,
                   retiring=RetiringKey(key_id=keyring.key_id, nonce=nonce, ciphertext=ciphertext))
    return old_key, new_key, ring


def retiring_key(keyring: Keyring, data_key: bytes) -> bytes | None:
    """Return the previous data key while a rotation is in progress (None when there is none)."""
    retiring = keyring.retiring
    if retiring is None:
        return None
    if not hmac.compare_digest(key_id(require_key("data_key", data_key)), keyring.key_id):
        raise ValueError("data_key is not the key of this keyring")
    old_key = aead_unwrap(data_key, retiring.nonce, retiring.ciphertext,
                          _RETIRING_WRAP + retiring.key_id + keyring.key_id)
    if not hmac.compare_digest(key_id(old_key), retiring.key_id):
        raise DecryptionError
    return old_key


def finish_rotation(keyring: Keyring) -> Keyring:
    """Return the keyring without the previous data key, once no envelope is sealed under it."""
    return replace(keyring, retiring=None)


def reencrypt(old_key: bytes, new_key: bytes, envelope: bytes, *, db: str, doc_id: str, rev: str,
              attachment: str | None = None) -> bytes:
    """Return ``envelope`` sealed under ``new_key``: unchanged if it already is, else opened with ``old_key``."""
    new_id = key_id(new_key)
    if envelope_key_id(envelope) == new_id:
        # Done by an earlier, interrupted pass; still authenticate it, so a resumed rotation never
        # carries a tampered or moved ciphertext over as if it had been checked.
        open_sealed(new_key, envelope, db=db, doc_id=doc_id, rev=rev, attachment=attachment)
        return bytes(envelope)
    plaintext = open_sealed(old_key, envelope, db=db, doc_id=doc_id, rev=rev, attachment=attachment)
    return seal(new_key, plaintext, db=db, doc_id=doc_id, rev=rev, attachment=attachment)
