"""Shared helpers for the replication tests: raw HTTP on a test database and snapshots to compare."""
from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests

from sync.remote import RemoteDatabase

ADMIN = ("admin", "secret")


class Db:
    """Plain HTTP on one database (the test's own view, independent of sync.remote)."""

    def __init__(self, url: str, auth: tuple[str, str] = ADMIN) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.auth = auth

    def call(self, method: str, path: str = "", body: Any = None, **params: Any) -> Any:
        """Send a JSON request; assert it succeeded; return the decoded body."""
        resp = self.session.request(method, f"{self.url}/{path}" if path else self.url,
                                    json=body, params=params or None, timeout=30)
        assert resp.status_code < 300, (method, path, resp.status_code, resp.text[:500])
        return resp.json()

    def create(self) -> Db:
        """Create the database; return self."""
        self.call("PUT")
        return self

    def put(self, doc: dict[str, Any]) -> str:
        """Write a doc (new_edits=true); return its new rev."""
        rev: str = self.call("PUT", quote(doc["_id"], safe=""), doc)["rev"]
        return rev

    def get(self, doc_id: str, **params: Any) -> Any:
        """GET a doc with options."""
        return self.call("GET", quote(doc_id, safe=""), **params)

    def update(self, doc_id: str, **fields: Any) -> str:
        """Change fields of the current winner; return the new rev."""
        doc = self.get(doc_id)
        return self.put({**doc, **fields})

    def delete(self, doc_id: str) -> str:
        """Delete the winner; return the tombstone's rev."""
        rev = self.get(doc_id)["_rev"]
        result: str = self.call("DELETE", quote(doc_id, safe=""), rev=rev)["rev"]
        return result

    def attachment(self, doc_id: str, name: str) -> bytes:
        """The raw bytes of an attachment of the winner."""
        resp = self.session.get(f"{self.url}/{quote(doc_id, safe='')}/{quote(name)}", timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.content

    def snapshot(self) -> dict[str, Any]:
        """Every doc's leaves (full bodies with _revisions and attachments), deleted flag and winner."""
        rows = self.call("GET", "_changes", style="all_docs")["results"]
        result: dict[str, Any] = {}
        for row in rows:
            leaves = self.get(row["id"], open_revs="all", revs="true", attachments="true")
            leaves = sorted((item["ok"] for item in leaves), key=lambda d: d["_rev"])
            winner = None if row.get("deleted") else self.get(row["id"])["_rev"]
            result[row["id"]] = {"deleted": bool(row.get("deleted")), "winner": winner, "leaves": leaves}
        return result

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()


def new_db(root: str) -> Db:
    """A freshly created database with a random name under ``root``."""
    return Db(f"{root}/r{uuid.uuid4().hex[:12]}").create()


def remote(db: Db, **kw: Any) -> RemoteDatabase:
    """A RemoteDatabase on the same database."""
    return RemoteDatabase(db.url, auth=ADMIN, **kw)


def inline(data: bytes, content_type: str = "application/octet-stream") -> dict[str, str]:
    """An inline attachment."""
    return {"content_type": content_type, "data": base64.b64encode(data).decode()}


def md5_digest(data: bytes) -> str:
    """CouchDB's digest of uncompressed bytes."""
    return "md5-" + base64.b64encode(hashlib.md5(data).digest()).decode()


class Wrapped:
    """An Endpoint that delegates to ``inner``; ``hooks[name](original, *args)`` replaces a method."""

    def __init__(self, inner: Any, **hooks: Callable[..., Any]) -> None:
        self.inner = inner
        self.hooks = hooks
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        original = getattr(self.inner, name)
        hook = self.hooks.get(name)

        def call(*args: Any) -> Any:
            self.calls.append(name)
            return hook(original, *args) if hook else original(*args)
        return call


def dumps(value: Any) -> str:
    """Stable JSON for assertion messages."""
    return json.dumps(value, sort_keys=True)[:2000]
