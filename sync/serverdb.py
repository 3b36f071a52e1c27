"""One of this server's own databases as a replication ``Endpoint`` (in process, no HTTP).

``wasl replicate`` runs the replicator (sync.replicator) between this and a remote
CouchDB-protocol database (sync.remote), so the server can bridge to an Apache CouchDB
cluster in either direction (DESIGN decision 10). Every call runs inside the caller's
app context. Writes into the records database pass its gate (schema check and
quarantine), as writes from any other peer do: nothing a bridge brings is dropped silently.
"""
from __future__ import annotations

from typing import Any

from models.server import get_setting

from . import reads, writes
from .changes import ChangesQuery, parse_since, read_changes
from .endpoint import ChangesBatch, Json
from .errors import NotFound
from .local import get_local, put_local
from .store import get_database


class ServerDatabase:
    """The database ``db_name`` of this server, read and written directly."""

    def __init__(self, db_name: str, *, gate: writes.Gate | None = None) -> None:
        self.db_name = db_name
        self.gate = gate
        get_database(db_name)  # DatabaseNotFound now, not halfway through a replication

    def __repr__(self) -> str:
        return f"ServerDatabase({self.db_name!r})"

    def identifier(self) -> str:
        """The server uuid plus the database name, as this server's welcome and PouchDB say it."""
        return f"{get_setting('uuid')}{self.db_name}"

    def changes(self, since: Any, limit: int) -> ChangesBatch:
        """Up to ``limit`` changes after ``since``, every leaf rev (style=all_docs)."""
        current = get_database(self.db_name).update_seq
        query = ChangesQuery(since=parse_since(since, current), limit=limit, all_docs=True)
        rows, last_seq, _pending = read_changes(self.db_name, query)
        return ChangesBatch(results=rows, last_seq=last_seq)

    def revs_diff(self, revs: dict[str, list[str]]) -> dict[str, Json]:
        return reads.revs_diff(self.db_name, revs) if revs else {}

    def bulk_get(self, requests: list[Json]) -> list[Json]:
        """The requested revisions with ``_revisions`` and attachments inline."""
        results = reads.bulk_get(self.db_name, requests, True, reads.ReadOptions(revs=True, attachments=True))
        docs = []
        for result in results:
            for item in result["docs"]:
                if "ok" not in item:  # a change raced this read: the replicator retries the batch
                    raise NotFound(f"{item.get('error', {}).get('id')} vanished during replication")
                docs.append(item["ok"])
        return docs

    def bulk_docs_replicated(self, docs: list[Json]) -> list[Json]:
        return writes.bulk_docs(self.db_name, docs, new_edits=False, gate=self.gate) if docs else []

    def get_local(self, local_id: str) -> Json | None:
        try:
            return get_local(self.db_name, f"_local/{local_id}")
        except NotFound:
            return None

    def put_local(self, local_id: str, doc: Json) -> None:
        current = self.get_local(local_id)
        body = {k: v for k, v in doc.items() if k not in ("_id", "_rev")}
        rev = {"_rev": current["_rev"]} if current and "_rev" in current else {}
        put_local(self.db_name, f"_local/{local_id}", {"_id": f"_local/{local_id}", **rev, **body})
