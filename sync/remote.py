"""A CouchDB-protocol database over HTTP: the one module of Wasl that talks HTTP to a peer.

``RemoteDatabase`` implements ``sync.endpoint.Endpoint`` against any server speaking the
CouchDB replication protocol (Wasl's ``/couch/<db>``, pouchdb-server, Apache CouchDB).
It uses ``requests`` rather than CouchDB-Python (see docs/replication.md): the replicator
needs connect/read timeouts, gzip, and ``_bulk_get``, which CouchDB-Python lacks.

Every HTTP failure is translated here, once, into ``sync.errors``:

- no connection, a broken or truncated response, a timeout, any 5xx: ``TransientError``
  (``TimedOut`` for timeouts), meaning "retry";
- 413: ``TooLarge``, meaning "send less";
- any other 4xx: the ``CouchError`` subclass named by the body's ``error`` string.
"""
from __future__ import annotations

import gzip
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import requests

from sync import errors
from sync.endpoint import ChangesBatch, Json

Auth = tuple[str, str] | str | None

# Read timeouts must outlast a large _bulk_docs commit on a slow server; the connect timeout
# only has to outlast a 2G link's round trips.
DEFAULT_TIMEOUT = (10.0, 60.0)
# Statuses that mean "this server has no _bulk_get" (CouchDB < 2.3: 404/405; some proxies: 400).
NO_BULK_GET = (400, 404, 405)
LOCAL_PUT_ATTEMPTS = 3
# Bodies this small gain less from gzip than its 18-byte frame and the header cost.
COMPRESS_MIN_BYTES = 1024
COMPRESS_LEVEL = 5  # the server's own level for its replies (api/compression.py)


@dataclass(frozen=True)
class RemoteChangesBatch(ChangesBatch):
    """A changes batch plus the server's ``pending`` count (None when the server sends none)."""

    pending: int | None = None


def _error_classes() -> dict[tuple[int, str], type[errors.CouchError]]:
    """Map (status, error string) to the most general CouchError class carrying them."""
    table: dict[tuple[int, str], type[errors.CouchError]] = {}
    pending: list[type[errors.CouchError]] = [errors.CouchError]
    while pending:
        cls = pending.pop(0)
        table.setdefault((cls.status, cls.error), cls)  # breadth-first: the base class wins
        pending.extend(cls.__subclasses__())
    return table


ERROR_CLASSES = _error_classes()


def couch_error(status: int, body: Any) -> errors.CouchError:
    """Build the CouchError for an HTTP error ``status`` whose decoded JSON body is ``body``."""
    if status == 413:
        return errors.TooLarge()
    body = body if isinstance(body, dict) else {}
    error, reason = str(body.get("error", "")), body.get("reason")
    reason = reason if isinstance(reason, str) else None
    if status >= 500:
        return errors.TransientError(f"HTTP {status} {error}: {reason or ''}".strip())
    cls = ERROR_CLASSES.get((status, error))
    if cls is not None:
        return cls(reason)
    # A status/error pair CouchDB does not define: keep both verbatim on a plain CouchError.
    exc = errors.CouchError(reason or f"HTTP {status}")
    exc.status, exc.error = status, error or "unknown_error"
    return exc


def doc_path(doc_id: str) -> str:
    """Percent-encode a doc id for a URL, keeping the literal slash of ``_design/`` and ``_local/``."""
    for prefix in ("_design/", "_local/"):
        if doc_id.startswith(prefix):
            return prefix + quote(doc_id[len(prefix):], safe="")
    return quote(doc_id, safe="")


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """Take ``user:password@`` out of ``url``: they must not reach logs or replication ids."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return clean, (unquote(parts.username), unquote(parts.password or ""))


class RemoteDatabase:
    """One database on a CouchDB-protocol server, as a replication ``Endpoint``."""

    def __init__(self, url: str, *, auth: Auth = None, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 session: requests.Session | None = None, compress_requests: bool = False) -> None:
        url, url_auth = split_credentials(url.rstrip("/"))
        self.url = url
        self.db_name = unquote(url.rsplit("/", 1)[1])
        self.timeout = timeout
        self._owns_session = session is None
        self.session = session or requests.Session()
        auth = auth if auth is not None else url_auth
        self._headers = {"Accept": "application/json", "Accept-Encoding": "gzip"}
        if isinstance(auth, str):
            self._headers["Authorization"] = f"Bearer {auth}"
            self._auth: tuple[str, str] | None = None
        else:
            self._auth = auth
        # gzip request bodies: only to a Wasl server (api/inflate.py); a CouchDB-protocol server
        # need not accept Content-Encoding on a request, so the bridge sends them plain.
        self.compress_requests = compress_requests
        self._bulk_get_supported = True
        self._local_revs: dict[str, str] = {}
        self._identifier: str | None = None

    def __repr__(self) -> str:
        return f"RemoteDatabase({self.url!r})"

    def close(self) -> None:
        """Close the HTTP session if this object created it."""
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> RemoteDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ HTTP boundary
    def _request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                 body: Any = None, url: str | None = None) -> Any:
        """Send one request and return its decoded JSON body.

        :raise TransientError: no connection, broken or truncated response, timeout, 5xx.
        :raise CouchError: any other HTTP error, by its ``error`` string (413: TooLarge).
        """
        headers = dict(self._headers)
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
            if self.compress_requests and len(data) >= COMPRESS_MIN_BYTES:
                data = gzip.compress(data, COMPRESS_LEVEL)
                headers["Content-Encoding"] = "gzip"
        target = url if url is not None else f"{self.url}/{path}" if path else self.url
        try:
            resp = self.session.request(method, target, params=params, data=data, headers=headers,
                                        auth=self._auth, timeout=self.timeout)
            content = resp.content  # read it all here, so a cut body is a transient error too
        except requests.Timeout as exc:
            raise errors.TimedOut(f"{method} {path or '/'}: {type(exc).__name__}") from exc
        except requests.RequestException as exc:
            raise errors.TransientError(f"{method} {path or '/'}: {type(exc).__name__}") from exc
        try:
            decoded = json.loads(content)
        except ValueError:
            decoded = ValueError
        if resp.status_code >= 400:
            raise couch_error(resp.status_code, None if decoded is ValueError else decoded)
        if decoded is ValueError:
            # Every call here expects a JSON body: a 2xx without one (empty included) was cut short
            # by the network when the server sent no Content-Length (a streamed _changes).
            raise errors.TransientError(f"{method} {path or '/'}: response is not complete JSON")
        return decoded

    # ------------------------------------------------------------------ Endpoint
    def identifier(self) -> str:
        """The server's uuid plus the database name (PouchDB's ``db.id()``), else the URL."""
        if self._identifier is None:
            root = self.url.rsplit("/", 1)[0] + "/"
            try:
                welcome = self._request("GET", "", url=root)
            except errors.TransientError:
                raise
            except errors.CouchError:
                welcome = None
            uuid = welcome.get("uuid") if isinstance(welcome, dict) else None
            self._identifier = f"{uuid}{self.db_name}" if isinstance(uuid, str) and uuid else self.url + "/"
        return self._identifier

    def changes(self, since: Any, limit: int) -> ChangesBatch:
        """``GET _changes?style=all_docs&since=&limit=`` (seqs are opaque and sent back verbatim)."""
        params = {"style": "all_docs", "since": since if isinstance(since, str) else json.dumps(since),
                  "limit": str(limit)}
        body = self._request("GET", "_changes", params=params)
        pending = body.get("pending")
        return RemoteChangesBatch(results=list(body.get("results", [])), last_seq=body.get("last_seq", since),
                                  pending=pending if isinstance(pending, int) else None)

    def revs_diff(self, revs: dict[str, list[str]]) -> dict[str, Json]:
        """``POST _revs_diff``."""
        if not revs:
            return {}
        result: dict[str, Json] = self._request("POST", "_revs_diff", body=revs) or {}
        return result

    def bulk_get(self, requests_: list[Json]) -> list[Json]:
        """Fetch revisions with ``_revisions`` and inline attachments; fall back to ``open_revs``."""
        if not requests_:
            return []
        if self._bulk_get_supported:
            try:
                body = self._request("POST", "_bulk_get", body={"docs": requests_},
                                     params={"revs": "true", "latest": "true", "attachments": "true"})
            except errors.CouchError as exc:
                if exc.status not in NO_BULK_GET:
                    raise
                # Like PouchDB: this server lacks _bulk_get; use open_revs for the rest of our life.
                self._bulk_get_supported = False
            else:
                return [self._bulk_get_doc(item) for result in body["results"] for item in result["docs"]]
        return self._open_revs(requests_)

    @staticmethod
    def _bulk_get_doc(item: Json) -> Json:
        """The ``ok`` doc of a _bulk_get item; an ``error`` item fails the batch, to be retried."""
        if "ok" in item:
            doc: Json = item["ok"]
            return doc
        err = item.get("error") or {}
        # CouchDB and PouchDB treat this as a failed batch too: a changes/read race, retried later.
        raise errors.TransientError(f"_bulk_get {err.get('id')} {err.get('rev')}: {err.get('error')}")

    def _open_revs(self, requests_: list[Json]) -> list[Json]:
        """``GET doc?open_revs=[...]&revs=true&latest=true`` per document (JSON, attachments inline)."""
        wanted: dict[str, list[str]] = {}
        for req in requests_:
            wanted.setdefault(req["id"], [])
            if req.get("rev"):
                wanted[req["id"]].append(req["rev"])
        docs: list[Json] = []
        for doc_id, revs in wanted.items():
            params = {"revs": "true", "latest": "true", "attachments": "true",
                      "open_revs": json.dumps(revs) if revs else "all"}
            for item in self._request("GET", doc_path(doc_id), params=params):
                if "ok" not in item:
                    raise errors.TransientError(f"open_revs {doc_id}: missing {item.get('missing')}")
                docs.append(item["ok"])
        return docs

    def bulk_docs_replicated(self, docs: list[Json]) -> list[Json]:
        """``POST _bulk_docs`` with ``new_edits: false``; return only the per-document errors."""
        if not docs:
            return []
        body = self._request("POST", "_bulk_docs", body={"docs": docs, "new_edits": False}) or []
        return [item for item in body if isinstance(item, dict) and "error" in item]

    def get_local(self, local_id: str) -> Json | None:
        """``GET _local/<id>``, or None when it does not exist."""
        try:
            doc: Json = self._request("GET", doc_path(f"_local/{local_id}"))
        except errors.NotFound:
            return None
        if isinstance(doc.get("_rev"), str):
            self._local_revs[local_id] = doc["_rev"]
        return doc

    def put_local(self, local_id: str, doc: Json) -> None:
        """``PUT _local/<id>`` over whatever revision is there (409: read the current rev, retry)."""
        body = {k: v for k, v in doc.items() if k not in ("_id", "_rev")}
        rev = self._local_revs.get(local_id) or doc.get("_rev")
        for attempt in range(LOCAL_PUT_ATTEMPTS):
            try:
                result = self._request("PUT", doc_path(f"_local/{local_id}"),
                                       body={"_id": f"_local/{local_id}", **({"_rev": rev} if rev else {}), **body})
            except errors.Conflict:
                # Another writer, or our own earlier PUT whose reply the network lost.
                if attempt == LOCAL_PUT_ATTEMPTS - 1:
                    raise
                current = self.get_local(local_id)
                rev = current.get("_rev") if current else None
                continue
            if isinstance(result, dict) and isinstance(result.get("rev"), str):
                self._local_revs[local_id] = result["rev"]
            return

    # ------------------------------------------------------------------ beyond Endpoint
    def create(self) -> bool:
        """``PUT /db``; return False when it already existed."""
        try:
            self._request("PUT", "")
        except errors.FileExists:
            return False
        return True

    def info(self) -> Json:
        """``GET /db``."""
        result: Json = self._request("GET", "")
        return result


def _api_call(server_url: str, method: str, path: str, *, token: str | None = None, body: Any = None,
              timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> Json:
    """One call to Wasl's device API, with the same error translation as replication."""
    base = server_url.rstrip("/")
    with RemoteDatabase(f"{base}/couch/_api", auth=token, timeout=timeout) as api:
        answer: Json = api._request(method, "", url=f"{base}/api/v1/devices/{path}", body=body)
        return answer


def enrol_device(server_url: str, code: str, name: str) -> Json:
    """Trade an enrolment code for this device's id and bearer token."""
    return _api_call(server_url, "POST", "enrol", body={"code": code, "name": name})


STATUS_ATTEMPTS = 4  # the status call opens every sync: one lost packet on 2G must not end it


def device_status(server_url: str, token: str, *, pause: float = 1.0) -> Json:
    """What the server says of this device: ``status`` and the ``action`` it must take.

    A read with no effect, so a broken connection or a 5xx is retried (``pause`` seconds,
    doubling) before the sync gives up, as the replicator retries its own requests.
    """
    for attempt in range(STATUS_ATTEMPTS - 1):
        try:
            return _api_call(server_url, "GET", "me", token=token)
        except errors.TransientError:
            time.sleep(pause * 2 ** attempt)
    return _api_call(server_url, "GET", "me", token=token)
