"""Dropping what left the user's scope (the drop protocol, docs/access.md), on the device's side.

After a sync, the device tells the server which documents it holds and how many of its
local changes are not pushed yet (``POST /api/v1/devices/me/held``); the server answers
the ids the user may no longer see. The device removes those documents, with every
revision and attachment, but never one changed locally after the push checkpoint: an
unpushed edit goes to the server first (where, if it is refused, the quarantine keeps it).

A removal is not a change: nothing about it is replicated, and the document comes back
through the feed if it re-enters the scope.
"""
from __future__ import annotations

from typing import Any

from sync import jsoncodec

from . import schema
from .core import Json, StoreCore


class DropApi(StoreCore):
    """held_ids, unpushed, drop, and the notes the drop protocol keeps in ``meta``."""

    def held_ids(self) -> list[str]:
        """Every document id this store holds, deleted ones included."""
        return [doc_id for (doc_id,) in self._rows("SELECT doc_id FROM docs ORDER BY doc_id")]

    def unpushed(self, pushed_through: int) -> int:
        """How many documents changed here after local seq ``pushed_through`` (the push checkpoint)."""
        return int(self._rows("SELECT COUNT(*) FROM docs WHERE seq > ?", (pushed_through,))[0][0])

    def drop(self, doc_ids: list[str], *, pushed_through: int) -> list[str]:
        """Remove these documents unless changed after ``pushed_through``; return the ids removed."""
        removed: list[str] = []
        with self._tx():
            for doc_id in dict.fromkeys(doc_ids):
                row = self._conn.execute("SELECT seq FROM docs WHERE doc_id = ?", (doc_id,)).fetchone()
                if row is None or row[0] > pushed_through:
                    continue  # not held, or edited here since the push: keep it until it is pushed
                for table in ("attachments", "revs", "docs"):
                    self._conn.execute(f"DELETE FROM {table} WHERE doc_id = ?", (doc_id,))
                removed.append(doc_id)
        return removed

    def note(self, key: str) -> Any:
        """A clear note of the drop protocol (``held.scope``, ``held.at``), or None."""
        text = self._rows("SELECT value FROM meta WHERE key = ?", (f"note.{key}",))
        return jsoncodec.loads(text[0][0]) if text else None

    def set_note(self, key: str, value: Json | str | float | None) -> None:
        """Keep a clear note (never personal data: fingerprints and times only)."""
        with self._tx():
            schema.set_meta(self._conn, f"note.{key}", jsoncodec.dumps(value))


def report_held(server_url: str, token: str, db_name: str, doc_ids: list[str], pending: int) -> list[str]:
    """``POST /api/v1/devices/me/held``: say what this device holds; return the ids to drop."""
    # The device API's one HTTP helper (same error translation as replication).
    from sync.remote import _api_call
    answer = _api_call(server_url, "POST", "me/held", token=token,
                       body={"db": db_name, "doc_ids": doc_ids, "pending": pending})
    drop = answer.get("drop")
    return [i for i in drop if isinstance(i, str)] if isinstance(drop, list) else []
