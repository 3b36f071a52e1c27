"""What the replicator needs from either side of a replication.

Both the server (over HTTP, ``sync.remote``) and the device's encrypted store
(``sync.device``) implement ``Endpoint``; ``sync.replicator`` runs CouchDB's replication
algorithm between any two. Documents cross this boundary as CouchDB JSON: ``_id``,
``_rev``, ``_revisions`` ({"start", "ids"}), ``_deleted``, and ``_attachments`` with
inline base64 ``data`` plus ``content_type``, ``digest`` and ``revpos``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

Json = dict[str, Any]


@dataclass(frozen=True)
class ChangesBatch:
    """One read of a change feed: rows ``{"seq", "id", "changes": [{"rev"}], "deleted"?}``."""

    results: list[Json] = field(default_factory=list)
    last_seq: Any = 0


class Endpoint(Protocol):
    """One side of a replication (source or target)."""

    def identifier(self) -> str:
        """A stable id for replication ids: the server uuid plus the database name."""

    def changes(self, since: Any, limit: int) -> ChangesBatch:
        """Up to ``limit`` changes after ``since`` (style=all_docs: every leaf rev)."""

    def revs_diff(self, revs: dict[str, list[str]]) -> dict[str, Json]:
        """For each id, ``{"missing": [...]}`` for the revs this side lacks (ids lacking nothing omitted)."""

    def bulk_get(self, requests: list[Json]) -> list[Json]:
        """The documents ``[{"id", "rev"}]`` with ``_revisions`` and inline attachments."""

    def bulk_docs_replicated(self, docs: list[Json]) -> list[Json]:
        """Store revisions as given (new_edits=false); return only per-document error items."""

    def get_local(self, local_id: str) -> Json | None:
        """The ``_local/<local_id>`` checkpoint document, or None."""

    def put_local(self, local_id: str, doc: Json) -> None:
        """Write the checkpoint document (replacing any previous one)."""
