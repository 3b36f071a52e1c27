"""The optional second wrap of a device's data key to the organisation's X25519 recovery public key.

The construction is HPKE (RFC 9180) base mode, single shot, with the suite DHKEM(X25519, HKDF-SHA256),
HKDF-SHA256, AES-256-GCM, from cryptography's own implementation: a fresh ephemeral X25519 key per wrap,
its shared secret with the recipient through HKDF-SHA256 into a one-time AES-256-GCM key. That is the
ECIES-style wrap the issue asks for, in its standardised form (so other HPKE libraries can read it), rather
than a hand-assembled one. The HPKE ``info`` is ``b"wasl/recovery-wrap/v1"`` plus the data key's id, which
binds the wrap to the key it claims to hold. Only the public key is ever on a device or the server; the
private key stays offline with an admin, ideally in a passphrase-encrypted PEM.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ._codec import KEY_BYTES, b64, fields, require_bytes, require_key, require_text, unb64
from .envelope import DecryptionError, key_id

if TYPE_CHECKING:
    from .keys import Keyring

SCHEME = "hpke-base-x25519-hkdfsha256-aes256gcm"
PUBLIC_KEY_BYTES = 32
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_INFO = b"wasl/recovery-wrap/v1"
_WRAP_BYTES = 32 + KEY_BYTES + 16  # HPKE enc, then the wrapped key and its tag


@dataclass(frozen=True)
class RecoveryWrap:
    """The data key wrapped to a recovery public key (kept in the keyring, so a rotation can re-wrap it)."""

    recipient: bytes
    ciphertext: bytes
    scheme: str = SCHEME

    def __post_init__(self) -> None:
        """Refuse a wrap of the wrong shape."""
        if self.scheme != SCHEME:
            raise ValueError(f"unsupported recovery scheme {self.scheme!r}")
        object.__setattr__(self, "recipient", require_bytes("recipient", self.recipient, PUBLIC_KEY_BYTES))
        object.__setattr__(self, "ciphertext", require_bytes("ciphertext", self.ciphertext, _WRAP_BYTES))

    def to_json(self) -> dict[str, Any]:
        """Return the wrap as a JSON-ready dict."""
        return {"scheme": self.scheme, "recipient": b64(self.recipient), "ciphertext": b64(self.ciphertext)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> RecoveryWrap:
        """Read a wrap written by ``to_json``; ValueError if malformed."""
        data = fields("recovery", obj, {"scheme", "recipient", "ciphertext"})
        return cls(scheme=data["scheme"], recipient=unb64("recipient", data["recipient"]),
                   ciphertext=unb64("ciphertext", data["ciphertext"]))


def generate_recovery_keypair(passphrase: str | None = None) -> tuple[bytes, bytes]:
    """Return (private key as PKCS#8 PEM, encrypted if a passphrase is given; raw 32-byte public key)."""
    private = X25519PrivateKey.generate()
    if passphrase is None:
        protection: serialization.KeySerializationEncryption = serialization.NoEncryption()
    else:
        protection = serialization.BestAvailableEncryption(require_text("passphrase", passphrase).encode("utf-8"))
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, protection)
    return pem, private.public_key().public_bytes_raw()


def load_recovery_public_key(key: bytes) -> bytes:
    """Return a recovery public key, given raw (32 bytes) or as a PEM SubjectPublicKeyInfo, as raw bytes."""
    data = require_bytes("recovery_public_key", key)
    if data.startswith(b"-----BEGIN"):
        try:
            public = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm):
            raise ValueError("recovery public key is not a PEM public key") from None
        if not isinstance(public, X25519PublicKey):
            raise ValueError("recovery public key must be an X25519 key")
        return public.public_bytes_raw()
    return require_bytes("recovery_public_key", data, PUBLIC_KEY_BYTES)


def wrap_for_recovery(data_key: bytes, recovery_public_key: bytes) -> RecoveryWrap:
    """Wrap ``data_key`` to the organisation's recovery public key (raw or PEM); ValueError for a bad key."""
    data_key = require_key("data_key", data_key)
    recipient = load_recovery_public_key(recovery_public_key)
    # cryptography refuses a low-order point (all-zero shared secret) with ValueError, which we let through.
    sealed = _SUITE.encrypt(data_key, X25519PublicKey.from_public_bytes(recipient), info=_INFO + key_id(data_key))
    return RecoveryWrap(recipient=recipient, ciphertext=sealed)


def _load_private(key: bytes, passphrase: str | None) -> X25519PrivateKey:
    """Load a recovery private key from PEM (maybe encrypted) or 32 raw bytes; ValueError if that fails."""
    data = require_bytes("recovery_private_key", key)
    if not data.startswith(b"-----BEGIN"):
        return X25519PrivateKey.from_private_bytes(require_bytes("recovery_private_key", data, KEY_BYTES))
    password = None if passphrase is None else require_text("passphrase", passphrase).encode("utf-8")
    try:
        private = serialization.load_pem_private_key(data, password=password)
    except (TypeError, ValueError, UnsupportedAlgorithm):
        raise ValueError("recovery private key could not be loaded (wrong passphrase, or not a key)") from None
    if not isinstance(private, X25519PrivateKey):
        raise ValueError("recovery private key must be an X25519 key")
    return private


def recover_data_key(keyring: Keyring, recovery_private_key: bytes, *, passphrase: str | None = None) -> bytes:
    """Return a device's data key from its keyring with the organisation's recovery private key."""
    if keyring.recovery is None:
        raise ValueError("this keyring has no recovery wrap")
    private = _load_private(recovery_private_key, passphrase)
    if private.public_key().public_bytes_raw() != keyring.recovery.recipient:
        raise DecryptionError  # another organisation's key: the same answer as any other failure
    try:
        data_key = _SUITE.decrypt(keyring.recovery.ciphertext, private, info=_INFO + keyring.key_id)
    except (InvalidTag, ValueError):
        raise DecryptionError from None
    if key_id(data_key) != keyring.key_id:
        raise DecryptionError
    return data_key
