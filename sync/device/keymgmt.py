"""Keys of the device store: PIN change, data-key rotation (resumable), recovery export, credentials."""
from __future__ import annotations

from collections.abc import Callable

import crypto
from sync import jsoncodec

from . import schema
from .core import Json, StoreCore

Progress = Callable[[int, int], None]
# Envelope "ids" for what is sealed in meta rather than in a document (never a valid doc id).
CREDENTIALS_AAD = {"doc_id": "_meta/credentials", "rev": "0-1"}
RECOVERY_INSTRUCTIONS = (
    "Give this JSON to an admin of the organisation, together with the device's store file. With the "
    "organisation's recovery private key (kept offline) the admin runs "
    "DeviceStore.open_recovered(store_path, private_key_pem, passphrase=...) to read and push the "
    "unsynced work. The keyring holds no secret in clear: the data key is only present wrapped "
    "(under the PIN, and to the recovery public key).")


class KeyManagement(StoreCore):
    """change_pin, rotate_key, export_recovery, and the encrypted server credentials."""

    @property
    def rotation_in_progress(self) -> bool:
        """Whether a data-key rotation was started and not finished (``rotate_key`` resumes it)."""
        return self._keyring().retiring is not None

    def _save_keyring(self, ring: crypto.Keyring) -> None:
        """Replace the keyring (inside ``_tx``)."""
        schema.set_meta(self._conn, "keyring", jsoncodec.dumps(ring.to_json()))

    def change_pin(self, old_pin: str, new_pin: str) -> None:
        """Re-wrap the data key under ``new_pin``; no envelope changes. DecryptionError if ``old_pin`` is wrong."""
        with self._tx():
            self._save_keyring(crypto.change_pin(self._keyring(), old_pin, new_pin))
        self._checkpoint()  # the old PIN wrap should not linger in the WAL

    def set_recovery_key(self, recovery_public_key: bytes | None) -> None:
        """Wrap the data key to a (new) organisation recovery public key, or drop the wrap with None."""
        with self._tx():
            self._save_keyring(crypto.set_recovery(self._keyring(), self._key, recovery_public_key))

    def export_recovery(self) -> Json:
        """What a device hands to an admin for recovery: the keyring (wrapped keys only) and instructions."""
        ring = self._keyring()
        if ring.recovery is None:
            raise ValueError("this store has no recovery wrap (create it with recovery_public_key)")
        store_uuid = schema.get_meta(self._conn, "store_uuid")
        return {"format": "wasl-device-recovery/v1", "store_uuid": store_uuid, "db_name": self.db_name,
                "key_id": ring.key_id.hex(), "keyring": ring.to_json(), "instructions": RECOVERY_INSTRUCTIONS}

    def rotate_key(self, pin: str, progress: Progress | None = None, *, batch_size: int = 100) -> None:
        """Re-encrypt everything under a new data key in committed batches; resume an interrupted rotation."""
        # progress(done, total) runs after each committed batch. If the process stops mid-way,
        # DeviceStore.open and rotate_key again finish the job: every envelope names the key that
        # sealed it, and the old key stays wrapped (under the new one) in the keyring until the end.
        ring = self._keyring()
        if ring.retiring is None:
            old_key, new_key, ring = crypto.rotate_data_key(ring, pin)
            with self._tx():
                self._save_keyring(ring)
        else:
            new_key = crypto.unlock(ring, pin)
            old_key = crypto.retiring_key(ring, new_key)
        self._set_keys(new_key, old_key)
        self._reencrypt_all(old_key, new_key, progress, batch_size)  # type: ignore[arg-type]
        with self._tx():
            self._reencrypt_credentials(old_key, new_key)  # type: ignore[arg-type]
            self._save_keyring(crypto.finish_rotation(ring))
        self._set_keys(new_key, None)
        self._checkpoint()

    def resume_rotation(self, pin: str, progress: Progress | None = None) -> bool:
        """Finish an interrupted rotation; return False if none was in progress."""
        if not self.rotation_in_progress:
            return False
        self.rotate_key(pin, progress)
        return True

    def _reencrypt_all(self, old_key: bytes, new_key: bytes, progress: Progress | None, batch_size: int) -> None:
        """Re-encrypt every body, then every attachment, one committed batch at a time."""
        total = sum(self._rows(f"SELECT COUNT(*) FROM {table}")[0][0] for table in ("revs", "attachments"))
        done = 0
        for table, name in (("revs", "NULL"), ("attachments", "name")):
            last = 0
            while True:
                with self._tx():
                    rows = self._conn.execute(
                        f"SELECT rowid, doc_id, rev, {name}, envelope FROM {table} WHERE rowid > ?"
                        " ORDER BY rowid LIMIT ?", (last, batch_size)).fetchall()
                    self._reencrypt_rows(table, rows, old_key, new_key)
                if not rows:
                    break
                last, done = rows[-1][0], done + len(rows)
                if progress is not None:
                    progress(done, total)

    def _reencrypt_rows(self, table: str, rows: list[tuple], old_key: bytes, new_key: bytes) -> None:
        """Re-seal the rows not yet under ``new_key`` (an interrupted pass left the others done)."""
        new_id = crypto.key_id(new_key)
        updates = [(crypto.reencrypt(old_key, new_key, envelope, db=self.db_name, doc_id=doc_id, rev=rev,
                                     attachment=name), rowid)
                   for rowid, doc_id, rev, name, envelope in rows if crypto.envelope_key_id(envelope) != new_id]
        self._conn.executemany(f"UPDATE {table} SET envelope = ? WHERE rowid = ?", updates)

    def _reencrypt_credentials(self, old_key: bytes, new_key: bytes) -> None:
        """Re-seal the server credentials, if any (inside ``_tx``)."""
        envelope = schema.get_meta(self._conn, "credentials")
        if envelope is not None:
            sealed = crypto.reencrypt(old_key, new_key, envelope, db=self.db_name, **CREDENTIALS_AAD)
            schema.set_meta(self._conn, "credentials", sealed)

    def set_server(self, server_url: str, device_id: str, credentials: Json) -> None:
        """Remember the server and this device's enrolment; ``credentials`` are sealed under the data key."""
        sealed = self._seal(jsoncodec.dumps(credentials).encode("utf-8"), **CREDENTIALS_AAD)
        with self._tx():
            for key, value in (("server_url", server_url), ("device_id", device_id), ("credentials", sealed)):
                schema.set_meta(self._conn, key, value)

    def server(self) -> Json | None:
        """``{"server_url", "device_id", "credentials"}`` as set by ``set_server``, or None."""
        with self._lock:
            values = {key: schema.get_meta(self._conn, key) for key in ("server_url", "device_id", "credentials")}
        if values["credentials"] is None:
            return None
        values["credentials"] = jsoncodec.loads(self._open(values["credentials"], **CREDENTIALS_AAD))
        return values

    def _checkpoint(self) -> None:
        """Copy the WAL into the file and truncate it, so superseded pages do not linger there."""
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
