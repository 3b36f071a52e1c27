"""CouchDB-Python (the ``couchdb`` package) drives the server unmodified."""
from __future__ import annotations

import couchdb
import pytest


@pytest.fixture
def server(couch_url: str) -> couchdb.Server:
    return couchdb.Server(couch_url + "/")


def test_create_save_update_changes_revisions_delete(server: couchdb.Server) -> None:
    assert server.version() == "3.3.3"
    database = server.create("couchdb-python/1")  # a name with a slash travels as %2F
    assert "couchdb-python/1" in server and len(server) == 1

    doc_id, rev1 = database.save({"type": "patient", "given": "Amina"})
    doc = database[doc_id]
    doc["given"] = "Aminata"
    database.save(doc)
    rev2 = doc["_rev"]
    assert rev2.startswith("2-") and database[doc_id]["given"] == "Aminata"

    # Replicated writes: kept as given, answered with only the errors.
    assert database.update([{"_id": "visit-1", "_rev": "1-abc", "bp": [150, 95]}], new_edits=False) == []
    assert database["visit-1"].rev == "1-abc"

    changes = database.changes()
    assert [row["id"] for row in changes["results"]] == [doc_id, "visit-1"]
    assert changes["last_seq"] == 3

    assert [d.rev for d in database.revisions(doc_id)] == [rev2, rev1]

    database.delete(database[doc_id])
    assert doc_id not in database
    assert database.info()["doc_del_count"] == 1

    database.put_attachment(database["visit-1"], b"\x89PNG", "photo.png", "image/png")
    assert database.get_attachment("visit-1", "photo.png").read() == b"\x89PNG"

    del server["couchdb-python/1"]
    assert "couchdb-python/1" not in server


def test_errors_reach_couchdb_python_as_its_exceptions(server: couchdb.Server) -> None:
    database = server.create("errors")
    database.save({"_id": "a", "v": 1})
    with pytest.raises(couchdb.http.ResourceConflict):
        database.save({"_id": "a", "v": 2})
    with pytest.raises(couchdb.http.ResourceNotFound):
        database.resource.get_json("missing")
    with pytest.raises(couchdb.http.PreconditionFailed):
        server.create("errors")
