"""The replicator between two databases of the live server, through sync.remote."""
from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from sync import errors
from sync.remote import RemoteDatabase, couch_error
from sync.replicator import Replicator, replicate, sync_both

from .helpers import ADMIN, Db, Wrapped, inline, md5_digest, new_db, remote

NO_SLEEP = {"sleep": lambda s: None}


@pytest.fixture
def root(live_server: str) -> str:
    """The live server's CouchDB root."""
    return live_server + "/couch"


@pytest.fixture
def pair(root: str) -> Iterator[tuple[Db, Db]]:
    """Two fresh databases on the live server."""
    a, b = new_db(root), new_db(root)
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def ends(pair: tuple[Db, Db]) -> Iterator[tuple[RemoteDatabase, RemoteDatabase]]:
    """RemoteDatabases on the two databases."""
    ra, rb = remote(pair[0]), remote(pair[1])
    yield ra, rb
    ra.close()
    rb.close()


def seed(db: Db, prefix: str, count: int) -> None:
    """Write ``count`` small docs."""
    for i in range(count):
        db.put({"_id": f"{prefix}{i:03d}", "n": i, "type": "visit"})


@pytest.mark.parametrize("direction", ["push", "pull", "sync"])
def test_replicator_copies_docs_in_each_direction(pair: tuple[Db, Db], ends: tuple[RemoteDatabase, RemoteDatabase],
                                                  direction: str) -> None:
    a, b = pair
    if direction in ("push", "sync"):
        seed(a, "a", 5)
    if direction in ("pull", "sync"):
        seed(b, "b", 4)
    if direction == "push":
        results = [replicate(*ends, **NO_SLEEP)]
    elif direction == "pull":
        results = [replicate(ends[1], ends[0], **NO_SLEEP)]
    else:
        results = list(sync_both(*ends, **NO_SLEEP))
    assert all(r.ok and not r.errors for r in results)
    assert sum(r.docs_written for r in results) == {"push": 5, "pull": 4, "sync": 9}[direction]
    snap = a.snapshot()
    assert snap == b.snapshot()
    assert len(snap) == {"push": 5, "pull": 4, "sync": 9}[direction]


def test_replicator_second_run_reads_nothing(pair: tuple[Db, Db], ends: tuple[RemoteDatabase, RemoteDatabase]) -> None:
    seed(pair[0], "d", 7)
    first = replicate(*ends, batch_size=3, **NO_SLEEP)
    assert (first.ok, first.docs_read, first.docs_written, first.batches) == (True, 7, 7, 3)
    again = replicate(*ends, **NO_SLEEP)
    assert (again.ok, again.docs_read, again.docs_written, again.batches) == (True, 0, 0, 0)
    assert again.last_seq == first.last_seq


def test_replicator_converges_conflicts(pair: tuple[Db, Db], ends: tuple[RemoteDatabase, RemoteDatabase]) -> None:
    a, b = pair
    a.put({"_id": "p1", "name": "Amina"})
    assert replicate(*ends, **NO_SLEEP).ok
    a.update("p1", name="Amina K.")
    a.update("p1", phone="0991")
    b.update("p1", name="Aminah")  # offline edit on the other side: a conflict
    push, pull = sync_both(*ends, **NO_SLEEP)
    assert push.ok and pull.ok
    snap_a, snap_b = a.snapshot(), b.snapshot()
    assert snap_a == snap_b
    leaves = snap_a["p1"]["leaves"]
    assert len(leaves) == 2
    assert snap_a["p1"]["winner"].startswith("3-")  # the longer branch wins everywhere
    assert a.get("p1", conflicts="true")["_conflicts"] == b.get("p1", conflicts="true")["_conflicts"]


def test_replicator_carries_deletions(pair: tuple[Db, Db], ends: tuple[RemoteDatabase, RemoteDatabase]) -> None:
    a, b = pair
    seed(a, "x", 3)
    assert replicate(*ends, **NO_SLEEP).ok
    a.delete("x001")
    result = replicate(*ends, **NO_SLEEP)
    assert result.ok and result.docs_written == 1
    snap = b.snapshot()
    assert snap["x001"]["deleted"] and snap["x001"]["leaves"][0]["_deleted"] is True
    assert snap == a.snapshot()


def test_replicator_carries_attachments(pair: tuple[Db, Db], ends: tuple[RemoteDatabase, RemoteDatabase]) -> None:
    a, b = pair
    photo = bytes(random.Random(3).getrandbits(8) for _ in range(70_000))
    a.put({"_id": "v1", "_attachments": {"photo.jpg": inline(photo, "image/jpeg"),
                                         "note.txt": inline(b"hello", "text/plain")}})
    assert replicate(*ends, **NO_SLEEP).ok
    assert b.attachment("v1", "photo.jpg") == photo
    assert b.attachment("v1", "note.txt") == b"hello"
    stubs_a, stubs_b = a.get("v1")["_attachments"], b.get("v1")["_attachments"]
    assert stubs_a == stubs_b
    assert stubs_b["note.txt"]["digest"] == md5_digest(b"hello")
    assert a.snapshot() == b.snapshot()


def test_replicator_reports_progress_per_batch(pair: tuple[Db, Db],
                                               ends: tuple[RemoteDatabase, RemoteDatabase]) -> None:
    seed(pair[0], "p", 10)
    seen: list[tuple[int, int]] = []
    result = replicate(*ends, batch_size=4, progress=lambda done, pending: seen.append((done, pending)), **NO_SLEEP)
    assert result.ok and result.batches == 3
    assert seen == [(4, 6), (8, 2), (10, 0)]


def test_replicator_resumes_from_the_last_checkpoint(pair: tuple[Db, Db],
                                                     ends: tuple[RemoteDatabase, RemoteDatabase]) -> None:
    seed(pair[0], "r", 9)
    writes = {"n": 0}

    def fail_second_write(original: Any, docs: list[dict[str, Any]]) -> Any:
        writes["n"] += 1
        if writes["n"] == 2:
            raise errors.BadRequest("boom")  # not transient: the run stops
        return original(docs)
    broken = Replicator(ends[0], Wrapped(ends[1], bulk_docs_replicated=fail_second_write), batch_size=3,
                        **NO_SLEEP).run()
    assert not broken.ok and isinstance(broken.failure, errors.BadRequest)
    assert (broken.docs_written, broken.batches) == (3, 1)
    resumed = replicate(*ends, batch_size=3, **NO_SLEEP)
    assert resumed.ok and resumed.docs_read == 6 and resumed.docs_written == 6
    assert pair[0].snapshot() == pair[1].snapshot()


def test_replicator_retries_transient_errors_with_jittered_backoff(
        pair: tuple[Db, Db], ends: tuple[RemoteDatabase, RemoteDatabase]) -> None:
    seed(pair[0], "t", 2)
    left = {"n": 3}

    def flaky(original: Any, revs: Any) -> Any:
        if left["n"]:
            left["n"] -= 1
            raise errors.TransientError()
        return original(revs)
    delays: list[float] = []
    result = Replicator(ends[0], Wrapped(ends[1], revs_diff=flaky), backoff=(1.0, 3.0), sleep=delays.append,
                        rng=random.Random(1)).run()
    assert result.ok and result.retries == 3 and result.docs_written == 2
    assert len(delays) == 3 and all(0 <= d <= cap for d, cap in zip(delays, (1.0, 2.0, 3.0)))


def test_replicator_gives_up_after_its_retries(pair: tuple[Db, Db],
                                               ends: tuple[RemoteDatabase, RemoteDatabase]) -> None:
    seed(pair[0], "g", 1)

    def down(original: Any, *args: Any) -> Any:
        raise errors.TransientError()
    result = Replicator(ends[0], Wrapped(ends[1], revs_diff=down), retries=2, **NO_SLEEP).run()
    assert not result.ok and isinstance(result.failure, errors.TransientError) and result.retries == 2


@pytest.mark.parametrize("error", [errors.TooLarge, errors.TimedOut])
def test_replicator_halves_the_batch(pair: tuple[Db, Db], ends: tuple[RemoteDatabase, RemoteDatabase],
                                     error: type[errors.CouchError]) -> None:
    seed(pair[0], "h", 8)

    def limited(original: Any, docs: list[dict[str, Any]]) -> Any:
        if len(docs) > 2:
            raise error()
        return original(docs)
    replicator = Replicator(ends[0], Wrapped(ends[1], bulk_docs_replicated=limited), batch_size=8, **NO_SLEEP)
    result = replicator.run()
    assert result.ok and result.docs_written == 8 and replicator.batch_size == 2 and result.batches == 4
    assert pair[0].snapshot() == pair[1].snapshot()


def test_replicator_fails_when_one_doc_is_too_large(pair: tuple[Db, Db],
                                                    ends: tuple[RemoteDatabase, RemoteDatabase]) -> None:
    seed(pair[0], "l", 2)

    def never(original: Any, docs: Any) -> Any:
        raise errors.TooLarge()
    result = Replicator(ends[0], Wrapped(ends[1], bulk_docs_replicated=never), **NO_SLEEP).run()
    assert not result.ok and isinstance(result.failure, errors.TooLarge)


def test_replicator_records_forbidden_docs_and_goes_on(pair: tuple[Db, Db],
                                                       ends: tuple[RemoteDatabase, RemoteDatabase]) -> None:
    a, b = pair
    seed(a, "ok", 3)
    a.put({"_id": "secret", "x": 1})

    def guard(original: Any, docs: list[dict[str, Any]]) -> Any:
        refused = [{"id": d["_id"], "rev": d["_rev"], "error": "forbidden", "reason": "not in your area"}
                   for d in docs if d["_id"] == "secret"]
        return original([d for d in docs if d["_id"] != "secret"]) + refused
    result = replicate(ends[0], Wrapped(ends[1], bulk_docs_replicated=guard), **NO_SLEEP)
    assert result.ok and result.docs_written == 3 and result.doc_write_failures == 1
    assert result.errors == [{"id": "secret", "rev": a.get("secret")["_rev"], "error": "forbidden",
                              "reason": "not in your area"}]
    assert sorted(b.snapshot()) == ["ok000", "ok001", "ok002"]


def test_replicator_fails_on_other_document_errors(pair: tuple[Db, Db],
                                                   ends: tuple[RemoteDatabase, RemoteDatabase]) -> None:
    seed(pair[0], "e", 1)

    def broken(original: Any, docs: list[dict[str, Any]]) -> Any:
        return [{"id": docs[0]["_id"], "error": "missing_stub", "reason": "no"}]
    result = replicate(ends[0], Wrapped(ends[1], bulk_docs_replicated=broken), **NO_SLEEP)
    assert not result.ok and result.failure is not None and "missing_stub" in result.failure.reason


def test_replicator_resumes_from_the_target_when_the_source_is_read_only(
        pair: tuple[Db, Db], ends: tuple[RemoteDatabase, RemoteDatabase]) -> None:
    seed(pair[0], "ro", 3)

    def refuse(original: Any, *args: Any) -> Any:
        raise errors.Forbidden()
    source = Wrapped(ends[0], put_local=refuse)
    first = replicate(source, ends[1], **NO_SLEEP)
    assert first.ok and first.docs_written == 3
    again = replicate(source, ends[1], **NO_SLEEP)
    assert again.ok and again.docs_read == 0 and again.last_seq == first.last_seq


def test_remote_falls_back_to_open_revs_without_bulk_get(pair: tuple[Db, Db], root: str) -> None:
    a, b = pair
    a.put({"_id": "f1", "_attachments": {"a.bin": inline(b"\x00\x01\x02")}})
    a.put({"_id": "f2", "v": 1})
    a.update("f2", v=2)

    class NoBulkGet(RemoteDatabase):
        def _request(self, method: str, path: str, **kw: Any) -> Any:
            if path == "_bulk_get":
                raise errors.MethodNotAllowed()
            return super()._request(method, path, **kw)
    with NoBulkGet(a.url, auth=ADMIN) as source, remote(b) as target:
        assert replicate(source, target, **NO_SLEEP).ok
        assert source._bulk_get_supported is False
    assert b.attachment("f1", "a.bin") == b"\x00\x01\x02"
    assert a.snapshot() == b.snapshot()


def test_remote_identifier_is_the_server_uuid_and_db_name(pair: tuple[Db, Db], root: str) -> None:
    a, _ = pair
    with remote(a) as ra:
        uuid = Db(root).call("GET", "")["uuid"]
        assert ra.identifier() == uuid + a.url.rsplit("/", 1)[1]


def test_remote_takes_credentials_from_the_url(pair: tuple[Db, Db], live_server: str) -> None:
    name = pair[0].url.rsplit("/", 1)[1]
    url = live_server.replace("http://", f"http://{ADMIN[0]}:{ADMIN[1]}@") + f"/couch/{name}"
    with RemoteDatabase(url) as ra:
        assert "secret" not in ra.url and ra.get_local("nothing") is None


@pytest.mark.parametrize(("auth", "error"), [(("admin", "wrong"), errors.Unauthorized),
                                             (ADMIN, errors.NotFound)])
def test_remote_translates_http_errors(root: str, auth: tuple[str, str], error: type[errors.CouchError]) -> None:
    with RemoteDatabase(f"{root}/nosuchdb", auth=auth) as ra, pytest.raises(error):
        ra.changes(0, 10)


def test_remote_reports_an_unreachable_server_as_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        with RemoteDatabase(f"http://127.0.0.1:{port}/db", timeout=(1, 1)) as ra, \
                pytest.raises(errors.TransientError):
            ra.changes(0, 10)


@pytest.mark.parametrize(("status", "body", "expected"), [
    (404, {"error": "not_found", "reason": "deleted"}, errors.NotFound),
    (409, {"error": "conflict", "reason": "x"}, errors.Conflict),
    (412, {"error": "missing_stub", "reason": "x"}, errors.MissingStub),
    (413, None, errors.TooLarge),
    (500, {"error": "unknown_error"}, errors.TransientError),
    (502, None, errors.TransientError),
    (400, {"error": "bad_request", "reason": "x"}, errors.BadRequest),
])
def test_couch_error_maps_status_and_error_string(status: int, body: Any, expected: type) -> None:
    exc = couch_error(status, body)
    assert type(exc) is expected
    if body and status < 500 and "reason" in body:
        assert exc.reason == body["reason"]


def test_couch_error_keeps_unknown_errors_verbatim() -> None:
    exc = couch_error(418, {"error": "teapot", "reason": "short and stout"})
    assert (exc.status, exc.error, exc.reason) == (418, "teapot", "short and stout")
