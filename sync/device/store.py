"""``DeviceStore``: the device's encrypted copy of its database in one SQLite file."""
from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable
from types import TracebackType

import crypto
from sync import jsoncodec

from . import schema
from .drop import DropApi
from .endpoint_api import EndpointApi
from .keymgmt import KeyManagement
from .local_api import LocalApi


class DeviceStore(LocalApi, EndpointApi, KeyManagement, DropApi):
    """An unlocked device store: the app's API, a replication ``Endpoint``, key management, dropping."""

    @classmethod
    def create(cls, path: str, pin: str, *, recovery_public_key: bytes | None = None, db_name: str = "wasl",
               kdf_params: crypto.KdfParams | None = None) -> DeviceStore:
        """Create a new store with a fresh data key wrapped under ``pin``; FileExistsError if ``path`` exists."""
        if not isinstance(db_name, str) or not db_name:
            raise ValueError("db_name must be a non-empty string")
        # The keyring first: a PIN that is too short must not leave an empty file behind.
        data_key, ring = crypto.create_keyring(pin, recovery_public_key, params=kdf_params)
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))  # refuses to overwrite
        conn = schema.connect(path)
        try:
            schema.create_tables(conn, {"keyring": jsoncodec.dumps(ring.to_json()), "db_name": db_name,
                                        "store_uuid": uuid.uuid4().hex})
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, data_key, None)

    @classmethod
    def open(cls, path: str, pin: str) -> DeviceStore:
        """Unlock an existing store; crypto.DecryptionError (and nothing written) for a wrong PIN."""
        return cls._unlock(path, lambda ring: crypto.unlock(ring, pin))

    @classmethod
    def open_recovered(cls, path: str, recovery_private_key: bytes, *, passphrase: str | None = None) -> DeviceStore:
        """Open a store with the organisation's recovery private key (an admin recovering unsynced work)."""
        return cls._unlock(path, lambda ring: crypto.recover_data_key(ring, recovery_private_key,
                                                                      passphrase=passphrase))

    @classmethod
    def _unlock(cls, path: str, unwrap: Callable[[crypto.Keyring], bytes]) -> DeviceStore:
        """Open the file and unwrap its data key with ``unwrap(keyring)`` (and the retiring key mid-rotation)."""
        if not os.path.isfile(path):
            raise FileNotFoundError(path)  # sqlite3 would silently create an empty database
        conn = schema.connect(path)
        try:
            text = schema.get_meta(conn, "keyring")
            if text is None:
                raise ValueError("no keyring: not a device store, or a wiped one")
            ring = crypto.Keyring.from_json(jsoncodec.loads(text))
            key = unwrap(ring)
            return cls(conn, path, key, crypto.retiring_key(ring, key))
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        """Close the file and forget the keys (as far as Python lets us)."""
        with self._lock:
            self._keys.clear()
            self._key = b""
            self._conn.close()

    def __enter__(self) -> DeviceStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def wipe(path: str) -> None:
    """Destroy a closed store: overwrite its keyring and credentials in place, then delete the files."""
    # Without the keyring the data key is gone, so any envelope left anywhere (a flash block the
    # file system did not overwrite, a backup) is unreadable: crypto-shredding is what makes this
    # "secure enough" on flash, where overwriting a file proves nothing. No PIN is needed: a
    # revoked device is told to wipe at once.
    if os.path.isfile(path):
        try:
            conn = schema.connect(path)
            try:
                # Zeroes of the same length overwrite the row in place; secure_delete zeroes the
                # freed cells, and the checkpoint writes the page over the old one in the file.
                conn.execute("UPDATE meta SET value = zeroblob(length(value)) WHERE key IN ('keyring', 'credentials')")
                conn.execute("DELETE FROM meta WHERE key IN ('keyring', 'credentials')")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()
        except sqlite3.DatabaseError:
            pass  # not a store we can open (corrupt, half-written): deleting it is all that is left
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass
