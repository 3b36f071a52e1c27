"""The device's encrypted local store (DESIGN decision 9): one SQLite file in WAL mode.

Encrypted (AES-256-GCM envelopes from ``crypto``, under a random 256-bit data key):

- every revision body (``revs.envelope``), bound to db name, doc id and rev;
- every attachment's bytes (``attachments.envelope``), bound also to the attachment name;
- the server credentials (``meta.credentials``).

The data key itself is only stored wrapped (``meta.keyring``): under an Argon2id key of the
PIN, and optionally to the organisation's X25519 recovery public key.

In clear, because replication needs them without the key: document ids (random UUIDs, never
personal data), revision ids and trees, deleted flags, local seqs, envelope sizes and key ids,
attachment names, content types, md5 digests, lengths and revpos (use generic names such as
``photo-1.jpg``), ``_local`` checkpoints (seqs and session ids only), the db name, the store's
random uuid, the server url and the device id. The app must put nothing personal in these.
"""
from __future__ import annotations

from .store import DeviceStore, wipe

__all__ = ["DeviceStore", "wipe"]
