"""The device store: local edits, the replication Endpoint, encryption at rest, keys and wipe."""
from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import crypto
from sync.device import DeviceStore, wipe
from sync.errors import Conflict, NotFound, TransientError

PIN = "204817"
# The floor new_params allows: keeps each unlock fast in tests; the stored params are what open() uses.
FAST = crypto.new_params(memory_kib=19 * 1024, iterations=2, lanes=1)


@pytest.fixture
def path(tmp_path: Path) -> str:
    """Where the store file goes."""
    return str(tmp_path / "device.sqlite")


@pytest.fixture
def store(path: str) -> Iterator[DeviceStore]:
    """A fresh, unlocked store."""
    with DeviceStore.create(path, PIN, kdf_params=FAST) as opened:
        yield opened


def make(tmp_path: Path, name: str) -> DeviceStore:
    """Another store in the same temp dir."""
    return DeviceStore.create(str(tmp_path / name), PIN, kdf_params=FAST)


def replicate(source: DeviceStore, target: DeviceStore) -> list[dict[str, Any]]:
    """One pass of CouchDB's replication algorithm between two stores; return the pushed docs."""
    batch = source.changes(0, 1000)
    diff = target.revs_diff({row["id"]: [c["rev"] for c in row["changes"]] for row in batch.results})
    docs = source.bulk_get([{"id": doc_id, "rev": rev} for doc_id, d in diff.items() for rev in d["missing"]])
    assert all("error" not in doc for doc in docs)
    assert target.bulk_docs_replicated(docs) == []
    return docs


# --- the app's API -------------------------------------------------------------------------------------

def test_put_get_update_round_trip(store: DeviceStore) -> None:
    rev1 = store.put({"_id": "p1", "type": "patient", "age": 31})
    assert rev1.startswith("1-") and len(rev1) == 34
    assert store.get("p1") == {"_id": "p1", "_rev": rev1, "type": "patient", "age": 31}
    rev2 = store.put({**store.get("p1"), "age": 32})
    assert rev2.startswith("2-")
    assert store.get("p1")["age"] == 32
    assert store.get("p1", rev2)["_rev"] == rev2
    with pytest.raises(NotFound):
        store.get("p1", rev1)  # the device keeps leaf bodies only
    assert [doc["_id"] for doc in store.all_docs()] == ["p1"]


def test_rev_is_couchdb_deterministic(tmp_path: Path) -> None:
    a, b = make(tmp_path, "a.sqlite"), make(tmp_path, "b.sqlite")
    assert a.put({"_id": "x", "n": 1}) == b.put({"_id": "x", "n": 1})
    a.close()
    b.close()


def test_stale_or_missing_rev_conflicts(store: DeviceStore) -> None:
    rev1 = store.put({"_id": "p1", "v": 1})
    store.put({"_id": "p1", "_rev": rev1, "v": 2})
    with pytest.raises(Conflict):
        store.put({"_id": "p1", "_rev": rev1, "v": 3})
    with pytest.raises(Conflict):
        store.put({"_id": "p1", "v": 4})
    with pytest.raises(Conflict):
        store.put({"_id": "nope", "_rev": rev1})


def test_delete_then_recreate(store: DeviceStore) -> None:
    rev1 = store.put({"_id": "v1", "kind": "routine"})
    rev2 = store.delete("v1", rev1)
    with pytest.raises(NotFound):
        store.get("v1")
    assert store.get("v1", rev2) == {"_id": "v1", "_rev": rev2, "_deleted": True}
    assert store.all_docs() == []
    rev3 = store.put({"_id": "v1", "kind": "again"})
    assert rev3.startswith("3-") and store.get("v1")["kind"] == "again"


def test_attachments_round_trip(store: DeviceStore) -> None:
    rev1 = store.put({"_id": "v1", "kind": "screening"})
    photo = os.urandom(5000)
    rev2 = store.put_attachment("v1", rev1, "photo-1.jpg", "image/jpeg", photo)
    doc = store.get("v1")
    stub = doc["_attachments"]["photo-1.jpg"]
    assert stub["stub"] and stub["length"] == 5000 and stub["revpos"] == 2 and stub["content_type"] == "image/jpeg"
    assert stub["digest"].startswith("md5-")
    assert store.get_attachment("v1", "photo-1.jpg") == photo
    rev3 = store.put({**doc, "note": "edited"})  # the stub carries the photo over
    assert store.get_attachment("v1", "photo-1.jpg", rev3) == photo
    rev4 = store.put_attachment("v1", rev3, "photo-2.jpg", "image/jpeg", b"second")
    assert sorted(store.get("v1")["_attachments"]) == ["photo-1.jpg", "photo-2.jpg"]
    with pytest.raises(NotFound):
        store.get_attachment("v1", "nope.jpg")
    assert rev2 < rev3 < rev4


# --- the Endpoint -------------------------------------------------------------------------------------

def _fill(store: DeviceStore) -> None:
    """Documents with an update chain, a deletion and an attachment."""
    rev = store.put({"_id": "h1", "type": "household"})
    store.put({"_id": "h1", "_rev": rev, "type": "household", "gps": [1, 2]})
    store.delete("d1", store.put({"_id": "d1", "type": "visit"}))
    store.put_attachment("v1", store.put({"_id": "v1", "type": "visit"}), "photo-1.jpg", "image/png", b"\x89PNG")


def test_replication_gives_the_same_revs_and_revisions(store: DeviceStore, tmp_path: Path) -> None:
    _fill(store)
    target = make(tmp_path, "target.sqlite")
    assert len(replicate(store, target)) == 3
    ours, theirs = store.changes(0, 100), target.changes(0, 100)
    assert [(r["id"], r["changes"], r.get("deleted")) for r in ours.results] == \
        [(r["id"], r["changes"], r.get("deleted")) for r in theirs.results]
    revs = {r["id"]: [c["rev"] for c in r["changes"]] for r in ours.results}
    assert target.revs_diff(revs) == {}
    requests = [{"id": doc_id, "rev": rev[0]} for doc_id, rev in revs.items()]
    assert target.bulk_get(requests) == store.bulk_get(requests)
    got = target.bulk_get([{"id": "h1"}])[0]
    assert got["_revisions"]["start"] == 2 and len(got["_revisions"]["ids"]) == 2
    assert target.get_attachment("v1", "photo-1.jpg") == b"\x89PNG"
    target.close()


def test_changes_each_doc_once_at_latest_seq(store: DeviceStore) -> None:
    rev = store.put({"_id": "a"})
    store.put({"_id": "b"})
    store.put({"_id": "a", "_rev": rev, "n": 2})
    batch = store.changes(0, 10)
    assert [(r["id"], r["seq"]) for r in batch.results] == [("b", 2), ("a", 3)] and batch.last_seq == 3
    assert store.changes(0, 1).last_seq == 2
    assert store.changes("2", 10).results[0]["id"] == "a"
    assert store.changes(3, 10).results == [] and store.changes(3, 10).last_seq == 3


def test_repushing_a_batch_changes_nothing(store: DeviceStore, tmp_path: Path) -> None:
    _fill(store)
    target = make(tmp_path, "target.sqlite")
    docs = replicate(store, target)
    before = (target.update_seq(), target.changes(0, 100))
    assert target.bulk_docs_replicated(docs) == []
    assert (target.update_seq(), target.changes(0, 100)) == before
    target.close()


def test_concurrent_edits_become_the_same_conflict(store: DeviceStore, tmp_path: Path) -> None:
    rev1 = store.put({"_id": "p1", "name": "x"})
    other = make(tmp_path, "other.sqlite")
    replicate(store, other)
    store.put({"_id": "p1", "_rev": rev1, "name": "ours"})
    other.put({"_id": "p1", "_rev": rev1, "name": "theirs"})
    replicate(store, other)
    replicate(other, store)
    assert store.get("p1") == other.get("p1")
    assert len(store.get("p1")["_conflicts"]) == 1
    other.close()


def test_stubs_resolve_from_the_stored_ancestor(store: DeviceStore, tmp_path: Path) -> None:
    rev1 = store.put_attachment("v1", None, "photo-1.jpg", "image/jpeg", b"jpeg-bytes")
    target = make(tmp_path, "target.sqlite")
    replicate(store, target)
    doc = store.get("v1")
    rev2 = store.put({**doc, "note": "n"})
    pushed = store.bulk_get([{"id": "v1", "rev": rev2}])[0]
    pushed["_attachments"] = {"photo-1.jpg": {**doc["_attachments"]["photo-1.jpg"]}}  # a stub, as with atts_since
    assert target.bulk_docs_replicated([pushed]) == []
    assert target.get_attachment("v1", "photo-1.jpg") == b"jpeg-bytes"
    assert target.get("v1")["_attachments"] == store.get("v1")["_attachments"]
    orphan = {"_id": "v2", "_revisions": {"start": 2, "ids": ["b" * 32, "a" * 32]},
              "_attachments": {"x.jpg": {"stub": True}}}
    assert target.bulk_docs_replicated([orphan]) == [
        {"id": "v2", "error": "missing_stub", "reason": "Invalid attachment stub in x.jpg"}]
    assert rev1.startswith("1-")
    target.close()


def test_bulk_get_gives_the_winner_latest_leaves_or_a_transient_error(store: DeviceStore) -> None:
    rev1 = store.put({"_id": "a", "n": 1})
    assert store.bulk_get([{"id": "a"}]) == [
        {"_id": "a", "_rev": rev1, "n": 1, "_revisions": {"start": 1, "ids": [rev1[2:]]}}]
    rev2 = store.put({"_id": "a", "_rev": rev1, "n": 2})
    # An edit between changes and bulk_get compacted rev1 away: its leaf comes instead (latest=true).
    assert [doc["_rev"] for doc in store.bulk_get([{"id": "a", "rev": rev1}])] == [rev2]
    with pytest.raises(TransientError):
        store.bulk_get([{"id": "zz"}])


def test_local_checkpoints(store: DeviceStore) -> None:
    assert store.get_local("rep1") is None
    store.put_local("rep1", {"session_id": "s1", "source_last_seq": 4, "history": []})
    store.put_local("rep1", {"session_id": "s2", "source_last_seq": 9, "history": []})
    assert store.get_local("rep1") == {"_id": "_local/rep1", "_rev": "0-2", "session_id": "s2",
                                       "source_last_seq": 9, "history": []}
    assert store.changes(0, 10).results == []
    assert "/" in store.identifier() and store.identifier().endswith("/wasl")


# --- encryption at rest -------------------------------------------------------------------------------

def _file_bytes(path: str) -> bytes:
    """The store file and its -wal (and -shm) as they are on disk now."""
    return b"".join(Path(path + suffix).read_bytes() for suffix in ("", "-wal", "-shm")
                    if os.path.exists(path + suffix))


SECRETS = ["Fatima Zahra", "+212600112233", "HIV positive", "13.7", "Hay Mohammadi", "s3cret-Pa55"]


def test_nothing_personal_on_disk(store: DeviceStore, path: str) -> None:
    rev = store.put({"_id": "3f9c2a40-5d1e-4f7a-9a55-7d0b7e3c1a11", "type": "patient", "names": "Fatima Zahra",
                     "phone": "+212600112233", "chronic_conditions": ["HIV positive"], "address": "Hay Mohammadi"})
    store.put({"_id": "a3d2c1b0-0f1e-4a2b-8c3d-4e5f60718293", "type": "visit", "observations": {"glucose": 13.7},
               "notes": "HIV positive, Fatima Zahra"})
    store.put_attachment("3f9c2a40-5d1e-4f7a-9a55-7d0b7e3c1a11", rev, "note-1.txt", "text/plain",
                         "Fatima Zahra +212600112233".encode("utf-8"))
    store.set_server("https://wasl.example.org", "dev-1", {"username": "chw7", "password": "s3cret-Pa55"})
    store.put_local("rep", {"session_id": "x", "source_last_seq": 3})
    assert os.path.exists(path + "-wal")
    raw = _file_bytes(path)
    for secret in SECRETS:
        for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
            assert secret.encode(encoding) not in raw, (secret, encoding)
    assert store.server()["credentials"]["password"] == "s3cret-Pa55"  # type: ignore[index]
    store.close()
    raw = Path(path).read_bytes()  # after close: everything checkpointed into the one file
    assert not any(secret.encode("utf-8") in raw for secret in SECRETS)


def test_wrong_pin_is_opaque_and_changes_nothing(store: DeviceStore, path: str) -> None:
    store.put({"_id": "a", "n": 1})
    store.close()
    before = Path(path).read_bytes()
    with pytest.raises(crypto.DecryptionError, match="^decryption failed$"):
        DeviceStore.open(path, "999999")
    assert Path(path).read_bytes() == before
    with DeviceStore.open(path, PIN) as reopened:
        assert reopened.get("a")["n"] == 1


def _envelope(path: str, doc_id: str) -> bytes:
    """The stored body envelope of a document's only revision."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT envelope FROM revs WHERE doc_id = ?", (doc_id,)).fetchone()[0]
    finally:
        conn.close()


def test_a_tampered_byte_is_an_opaque_decryption_error(store: DeviceStore, path: str) -> None:
    store.put({"_id": "a", "name": "x" * 40})
    store.put({"_id": "b", "name": "y" * 40})
    store.close()
    envelope = _envelope(path, "a")
    raw = bytearray(Path(path).read_bytes())
    at = raw.find(envelope)
    assert at > 0 and raw.find(envelope, at + 1) == -1
    raw[at + 30] ^= 0x01
    Path(path).write_bytes(bytes(raw))
    with DeviceStore.open(path, PIN) as reopened:
        with pytest.raises(crypto.DecryptionError, match="^decryption failed$"):
            reopened.get("a")
        assert reopened.get("b")["name"] == "y" * 40


def test_a_body_moved_to_another_document_does_not_open(store: DeviceStore, path: str) -> None:
    store.put({"_id": "a", "n": 1})
    store.put({"_id": "b", "n": 2})
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE revs SET envelope = ? WHERE doc_id = 'b'", (_envelope(path, "a"),))
    conn.commit()
    conn.close()
    with DeviceStore.open(path, PIN) as reopened, pytest.raises(crypto.DecryptionError):
        reopened.get("b")


# --- keys ---------------------------------------------------------------------------------------------

def _key_ids(path: str) -> tuple[str, set[str]]:
    """The keyring's key id, and the key ids of every stored envelope."""
    conn = sqlite3.connect(path)
    try:
        ring = json.loads(conn.execute("SELECT value FROM meta WHERE key = 'keyring'").fetchone()[0])
        rows = conn.execute("SELECT envelope FROM revs UNION ALL SELECT envelope FROM attachments"
                            " UNION ALL SELECT value FROM meta WHERE key = 'credentials'").fetchall()
    finally:
        conn.close()
    return ring["key_id"], {crypto.envelope_key_id(row[0]).hex() for row in rows}


def _contents(store: DeviceStore) -> list[Any]:
    """Every document and attachment, decrypted."""
    docs = store.all_docs()
    return docs + [store.get_attachment(d["_id"], name) for d in docs for name in d.get("_attachments", {})]


def test_rotation_interrupted_then_resumed_loses_nothing(store: DeviceStore, path: str) -> None:
    for i in range(30):
        rev = store.put({"_id": f"doc-{i:02}", "i": i})
        if i % 3 == 0:
            store.put_attachment(f"doc-{i:02}", rev, "photo-1.jpg", "image/jpeg", os.urandom(100 + i))
    store.set_server("https://wasl.example.org", "dev-1", {"token": "t"})
    expected = _contents(store)
    old_id, _ = _key_ids(path)
    calls: list[tuple[int, int]] = []

    def crash(done: int, total: int) -> None:
        calls.append((done, total))
        if len(calls) == 2:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        store.rotate_key(PIN, crash, batch_size=7)
    assert calls == [(7, 40), (14, 40)]
    store.close()
    with DeviceStore.open(path, PIN) as reopened:
        assert reopened.rotation_in_progress
        new_id, mixed = _key_ids(path)
        assert mixed == {old_id, new_id}
        assert _contents(reopened) == expected  # readable mid-way: each envelope names its key
        assert reopened.resume_rotation(PIN)
        assert not reopened.rotation_in_progress
    assert _key_ids(path) == (new_id, {new_id})
    with DeviceStore.open(path, PIN) as reopened:
        assert _contents(reopened) == expected
        assert reopened.server()["credentials"] == {"token": "t"}  # type: ignore[index]
        assert not reopened.resume_rotation(PIN)


def test_change_pin_rewraps_only(store: DeviceStore, path: str) -> None:
    store.put_attachment("a", None, "photo-1.jpg", "image/jpeg", b"abc")
    before = _key_ids(path)
    with pytest.raises(crypto.DecryptionError):
        store.change_pin("000000", "777777")
    store.change_pin(PIN, "777777")
    store.close()
    assert _key_ids(path) == before
    with pytest.raises(crypto.DecryptionError):
        DeviceStore.open(path, PIN)
    with DeviceStore.open(path, "777777") as reopened:
        assert reopened.get_attachment("a", "photo-1.jpg") == b"abc"


def test_recovery_export_and_open(tmp_path: Path) -> None:
    pem, public = crypto.generate_recovery_keypair("org passphrase")
    path = str(tmp_path / "r.sqlite")
    with DeviceStore.create(path, PIN, recovery_public_key=public, kdf_params=FAST) as created:
        created.put({"_id": "v1", "unsynced": True})
        export = created.export_recovery()
    assert PIN not in json.dumps(export) and export["keyring"]["recovery"] is not None
    ring = crypto.Keyring.from_json(export["keyring"])
    assert len(crypto.recover_data_key(ring, pem, passphrase="org passphrase")) == 32
    with DeviceStore.open_recovered(path, pem, passphrase="org passphrase") as recovered:
        assert recovered.get("v1")["unsynced"] is True


def test_create_refuses_an_existing_file(store: DeviceStore, path: str) -> None:
    with pytest.raises(FileExistsError):
        DeviceStore.create(path, PIN, kdf_params=FAST)
    with pytest.raises(FileNotFoundError):
        DeviceStore.open(path + ".absent", PIN)
    with pytest.raises(ValueError):
        store.export_recovery()  # created without a recovery key


def test_wipe_overwrites_the_keyring_then_removes_the_files(
        store: DeviceStore, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store.put({"_id": "a", "n": 1})
    store.set_server("https://wasl.example.org", "dev-1", {"token": "t"})
    wrap = base64.b64encode(store._keyring().pin.ciphertext)
    assert wrap in _file_bytes(path)
    store.close()
    unlinked: list[str] = []
    monkeypatch.setattr("sync.device.store.os.unlink", unlinked.append)  # keep the files to look at them
    wipe(path)
    assert wrap not in _file_bytes(path)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT key FROM meta WHERE key IN ('keyring', 'credentials')").fetchall() == []
    conn.close()
    with pytest.raises(ValueError, match="no keyring"):
        DeviceStore.open(path, PIN)
    assert unlinked[0] == path
    monkeypatch.undo()
    wipe(path)
    assert not any(os.path.exists(path + suffix) for suffix in ("", "-wal", "-shm"))
    wipe(path)  # wiping twice is harmless


def test_the_device_side_loads_no_server_framework() -> None:
    code = ("import json, sys, sync.device\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in"
            " ('flask', 'flask_sqlalchemy', 'sqlalchemy', 'models', 'api', 'werkzeug'))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
