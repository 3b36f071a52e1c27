"""Server-side resolution of conflicting branches (sync.records.resolve), and the supervisor's choice."""
from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from models import db
from models.audit import AuditEntry
from models.conflicts import ConflictRecord, Resolution
from sync.errors import BadRequest, Conflict, CouchError, NotFound
from sync.reads import ReadOptions, get_attachment, get_doc, open_revs
from sync.records.conflicts import choose, list_conflicts
from sync.records.resolve import resolve_all, resolve_document
from sync.revs import new_rev_hash
from sync.revtree import collect_leaves
from sync.rows import doc_by_id
from sync.store import compact_database, create_database, get_database
from sync.writes import put_doc
from tests.conftest import make_app

DB = "records"
PID = "patient-7f3a"
T0, T1, T2, T3 = "2026-03-01T08:00:00Z", "2026-03-02T08:00:00Z", "2026-03-03T08:00:00+03:00", "2026-03-04T08:00:00Z"
BASE = {"type": "patient", "area": "north/district-3/village-12", "household_id": "household-1",
        "given_name": "Amina", "family_name": "Otieno", "sex": "female", "birth_date": "1990-04-02",
        "phone": "+254 700 000001", "consent": {"share_with_partners": False},
        "chronic_conditions": ["hypertension"], "updated_at": T0, "updated_by": "chw0"}
H = {c: c * 32 for c in "0123456789abcdef"}  # rev hashes: a later letter ranks higher


def put(rev_ids: list[str], body: dict[str, Any], *, deleted: bool = False, doc_id: str = PID,
        db_name: str = DB) -> str:
    """Write a revision as a replicator does (new_edits=false): ``rev_ids`` are hashes, newest first."""
    doc = {"_id": doc_id, "_revisions": {"start": len(rev_ids), "ids": rev_ids}, **body}
    if deleted:
        doc["_deleted"] = True
    return put_doc(db_name, doc, new_edits=False)["rev"]


def edited(when: str, by: str, drop: tuple[str, ...] = (), **fields: Any) -> dict[str, Any]:
    """BASE with ``fields`` changed, ``drop`` removed, and the edit's time and author."""
    return {k: v for k, v in {**BASE, **fields, "updated_at": when, "updated_by": by}.items() if k not in drop}


def live_leaves(db_name: str = DB, doc_id: str = PID) -> list[str]:
    """The document's live leaf revs."""
    doc = doc_by_id(get_database(db_name).id, doc_id)
    assert doc is not None
    return [leaf.rev for leaf in collect_leaves(doc.rev_tree) if not leaf.opts.get("deleted")]


def winner(db_name: str = DB, doc_id: str = PID) -> dict[str, Any]:
    """The winning revision as a client reads it, with ``_conflicts``."""
    return get_doc(db_name, doc_id, None, ReadOptions(conflicts=True, deleted_conflicts=True))


def fields(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def conflict_rows(doc_id: str = PID) -> list[ConflictRecord]:
    return list(db.session.scalars(db.select(ConflictRecord).where(ConflictRecord.doc_id == doc_id)
                                   .order_by(ConflictRecord.id)))


def audit(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(db.select(AuditEntry).where(AuditEntry.action == action)))


@pytest.fixture
def records(app: Flask) -> Any:
    """An app context with the records database created and the common ancestor 1-0 written."""
    with app.app_context():
        create_database(DB)
        put([H["0"]], BASE)
        yield app


def test_different_fields_are_merged_into_a_child_of_the_winner(records: Flask) -> None:
    put([H["a"], H["0"]], edited(T1, "chw1", phone="+254 700 000002"))
    put([H["b"], H["0"]], edited(T2, "chw2", given_name="Aminah"))
    merged = edited(T2, "chw2", phone="+254 700 000002", given_name="Aminah")

    rev = resolve_document(DB, PID)

    # The winner 2-b gets the merge as its child, with CouchDB's deterministic hash.
    assert rev == "3-" + new_rev_hash(False, (2, H["b"]), merged, [])
    doc = winner()
    assert doc["_rev"] == rev and fields(doc) == merged and list(doc)[:-1] == ["_id", "_rev", *merged]
    # The tombstone on the other leaf names the merge, so any replica knows it is no user's deletion.
    tombstone = "3-" + new_rev_hash(True, (2, H["a"]), {"resolved_into": rev}, [])
    assert "_conflicts" not in doc and doc["_deleted_conflicts"] == [tombstone]
    assert get_doc(DB, PID, tombstone, ReadOptions()) == {"_id": PID, "_rev": tombstone, "_deleted": True,
                                                          "resolved_into": rev}
    assert live_leaves() == [rev]
    [resolution] = db.session.scalars(db.select(Resolution))
    assert (resolution.doc_id, resolution.merge_rev, resolution.ancestor_rev) == (PID, rev, "1-" + H["0"])
    assert resolution.merged_revs == {"leaves": ["2-" + H["b"], "2-" + H["a"]],
                                      "tombstones": doc["_deleted_conflicts"]}
    assert conflict_rows() == [] and len(audit("conflict.resolve")) == 1
    assert resolve_document(DB, PID) is None  # nothing left to resolve
    assert len(db.session.scalars(db.select(Resolution)).all()) == 1


def test_compaction_keeps_the_ancestor_the_merge_needs(records: Flask) -> None:
    put([H["c"], H["a"], H["0"]], edited(T1, "chw1", phone="+254 700 000002"))
    put([H["b"], H["0"]], edited(T2, "chw2", given_name="Aminah"))
    compact_database(DB)
    with pytest.raises(NotFound):
        get_doc(DB, PID, "2-" + H["a"], ReadOptions())  # a compacted ancestor that is no branch point
    rev = resolve_document(DB, PID)
    assert fields(winner()) == edited(T2, "chw2", phone="+254 700 000002", given_name="Aminah")
    [resolution] = db.session.scalars(db.select(Resolution))
    assert (resolution.merge_rev, resolution.ancestor_rev) == (rev, "1-" + H["0"]) and conflict_rows() == []


def test_without_a_common_ancestor_differing_fields_conflict(records: Flask) -> None:
    # Two tablets registered the same household id independently: two roots, no shared body.
    first = {"type": "household", "area": "north/district-3", "name": "Otieno", "landmark": "by the well",
             "updated_at": T1, "updated_by": "chw1"}
    second = {"type": "household", "area": "north/district-3", "name": "Otieno family",
              "gps": {"lat": -1.2, "lon": 36.8}, "updated_at": T2, "updated_by": "chw2"}
    put([H["a"]], first, doc_id="household-9")
    picked = put([H["b"]], second, doc_id="household-9")
    rev = resolve_document(DB, "household-9")
    merged = {**second, "landmark": "by the well"}  # the winner's keys first, in its order
    assert rev == "2-" + new_rev_hash(False, (1, H["b"]), merged, [])
    assert fields(winner(doc_id="household-9")) == merged
    assert [(c.field, c.picked_rev) for c in conflict_rows("household-9")] == [("name", picked)]


def test_same_field_later_edit_wins_and_the_supervisor_can_reverse_it(records: Flask) -> None:
    early = put([H["f"], H["0"]], edited(T1, "chw1", phone="+254 700 000002"))  # higher hash, earlier edit
    late = put([H["1"], H["0"]], edited(T3, "chw2", phone="+254 700 000003"))
    rev = resolve_document(DB, PID)
    assert rev is not None and rev.startswith("3-") and winner()["phone"] == "+254 700 000003"
    [conflict] = list_conflicts(DB)
    assert (conflict.field, conflict.kind, conflict.picked_rev, conflict.resolution_rev, conflict.state) == \
        ("phone", "field", late, rev, "open")
    assert sorted((v["rev"], v["value"], v["updated_at"], v["updated_by"]) for v in conflict.values) == sorted([
        (early, "+254 700 000002", T1, "chw1"), (late, "+254 700 000003", T3, "chw2")])

    # Bad choices change nothing.
    for bad_id, bad_rev, error in [(conflict.id + 99, early, NotFound), (conflict.id, "2-" + H["9"], BadRequest)]:
        with pytest.raises(error):
            choose(bad_id, bad_rev, "sup")
    assert winner()["_rev"] == rev and conflict_rows()[0].state == "open"

    new_rev = choose(conflict.id, early, "sup")
    doc = winner()
    assert doc["_rev"] == new_rev and new_rev.startswith("4-") and "_conflicts" not in doc
    assert fields(doc) == {**fields(get_doc(DB, PID, rev, ReadOptions())), "phone": "+254 700 000002",
                           "updated_by": "sup", "updated_at": doc["updated_at"]}
    decided = conflict_rows()[0]
    assert (decided.state, decided.decided_by) == ("changed", "sup") and decided.decided_at is not None
    [entry] = audit("conflict.choose")
    assert entry.actor == "sup" and entry.detail["new_rev"] == new_rev and entry.detail["state"] == "changed"

    with pytest.raises(Conflict, match="already decided"):
        choose(conflict.id, late, "sup2")
    assert winner()["_rev"] == new_rev and conflict_rows()[0].decided_by == "sup"


def test_keeping_the_pick_writes_nothing(records: Flask) -> None:
    put([H["a"], H["0"]], edited(T1, "chw1", drop=("phone",)))
    late = put([H["b"], H["0"]], edited(T2, "chw2", phone="+254 700 000009"))
    rev = resolve_document(DB, PID)
    [conflict] = list_conflicts(DB)
    assert [v.get("removed", False) for v in conflict.values] == [False, True]
    assert choose(conflict.id, late, "sup") is None
    assert winner()["_rev"] == rev and conflict_rows()[0].state == "kept"
    assert list_conflicts(DB) == [] and [c.id for c in list_conflicts(DB, "kept")] == [conflict.id]


def test_three_branches(records: Flask) -> None:
    put([H["a"], H["0"]], edited(T1, "chw1", phone="+254 700 000002", chronic_conditions=["hypertension", "hiv"]))
    put([H["c"], H["b"], H["0"]], edited(T2, "chw2", phone="+254 700 000003", family_name="Odhiambo"))
    put([H["d"], H["0"]], edited(T3, "chw3", consent={"share_with_partners": True}, chronic_conditions=[]))
    rev = resolve_document(DB, PID)
    assert rev is not None and rev.startswith("4-")  # the longest branch wins and carries the merge
    assert fields(winner()) == edited(T3, "chw3", phone="+254 700 000003", family_name="Odhiambo",
                                      consent={"share_with_partners": True}, chronic_conditions=["hiv"])
    assert live_leaves() == [rev] and len(winner()["_deleted_conflicts"]) == 2
    assert [(c.field, c.picked_rev) for c in conflict_rows()] == [("phone", "3-" + H["c"])]


def test_delete_against_edit_is_recorded_once_and_the_supervisor_can_delete(records: Flask) -> None:
    gone = put([H["a"], H["0"]], {}, deleted=True)
    kept = put([H["b"], H["0"]], edited(T1, "chw1", phone="+254 700 000002"))
    assert resolve_document(DB, PID) is None and resolve_document(DB, PID) is None
    assert winner()["_rev"] == kept  # CouchDB's rule: the live edit wins
    [conflict] = conflict_rows()
    assert (conflict.kind, conflict.picked_rev, conflict.resolution_rev) == ("delete_vs_edit", kept, None)
    assert [(v["rev"], v["deleted"]) for v in conflict.values] == [(gone, True), (kept, False)]
    assert conflict.values[1]["value"]["phone"] == "+254 700 000002"

    tombstone = choose(conflict.id, gone, "sup")
    assert tombstone is not None and tombstone.startswith("3-")
    with pytest.raises(NotFound, match="deleted"):
        winner()
    assert conflict_rows()[0].state == "changed" and resolve_document(DB, PID) is None
    assert len(conflict_rows()) == 1


def test_two_resolvers_racing_write_one_merge(records: Flask) -> None:
    put([H["a"], H["0"]], edited(T1, "chw1", phone="+254 700 000002"))
    put([H["b"], H["0"]], edited(T2, "chw2", given_name="Aminah"))
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def resolver() -> None:
        with records.app_context():
            barrier.wait()
            try:
                results.append(resolve_document(DB, PID))
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                results.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=resolver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    merged = [r for r in results if r is not None]
    assert len(results) == 2 and len(merged) == 1 and isinstance(merged[0], str), results
    db.session.commit()  # a fresh snapshot
    assert live_leaves() == merged
    assert len(db.session.scalars(db.select(Resolution)).all()) == 1
    assert len(winner()["_deleted_conflicts"]) == 1


def copy_all(source: Flask, target: Flask, doc_id: str = PID) -> None:
    """Copy every leaf of ``doc_id`` with its ``_revisions`` (what a replicator does)."""
    with source.app_context():
        docs = [item["ok"] for item in open_revs(DB, doc_id, None, False, ReadOptions(revs=True))]
    with target.app_context():
        for doc in docs:
            put_doc(DB, doc, new_edits=False)


def test_two_servers_resolve_alike_and_converge_after_replication(records: Flask, tmp_path: Path) -> None:
    other = make_app(f"sqlite:///{tmp_path}/other.sqlite")
    branches = [([H["a"], H["0"]], edited(T1, "chw1", phone="+254 700 000002", given_name="Aminah")),
                ([H["b"], H["0"]], edited(T2, "chw2", phone="+254 700 000003", sex="unknown"))]
    for rev_ids, body in branches:
        put(rev_ids, body)
    with other.app_context():
        create_database(DB)
        put([H["0"]], BASE)
        for rev_ids, body in branches:
            put(rev_ids, body)
        there = resolve_document(DB, PID)
    here = resolve_document(DB, PID)
    assert here is not None and here == there  # same leaves, same ancestor: the same revisions

    copy_all(records, other)
    copy_all(other, records)
    with other.app_context():
        assert live_leaves() == [here] and resolve_document(DB, PID) is None
        other_doc, other_conflicts = winner(), len(conflict_rows())
        db.session.remove()
        db.engine.dispose()
    assert live_leaves() == [here] and resolve_document(DB, PID) is None
    assert winner() == other_doc and len(conflict_rows()) == other_conflicts == 1


def test_a_replica_that_received_a_resolution_knows_its_tombstones_and_merge_parents(
        records: Flask, tmp_path: Path) -> None:
    other = make_app(f"sqlite:///{tmp_path}/other.sqlite")
    branches = [([H["1"], H["0"]], edited(T1, "chw1", phone="+254 700 000002")),
                ([H["b"], H["0"]], edited(T2, "chw2", phone="+254 700 000003"))]
    for rev_ids, body in branches:
        put(rev_ids, body)
    with other.app_context():  # the replica holds the same branches but does not resolve them itself
        create_database(DB)
        put([H["0"]], BASE)
        for rev_ids, body in branches:
            put(rev_ids, body)
    merge_rev = resolve_document(DB, PID)
    copy_all(records, other)
    with other.app_context():
        assert live_leaves() == [merge_rev]
        assert resolve_document(DB, PID) is None
        assert conflict_rows() == []  # the merge's tombstone is not taken for a user's deletion
        # chw1's tablet, synced with the replica only, edits another field on its old branch.
        put([H["c"], H["1"], H["0"]], edited(T3, "chw1", phone="+254 700 000002", national_id="ID-77"))
        second = resolve_document(DB, PID)
        doc = winner()
        resolution = db.session.scalars(db.select(Resolution)).one()
        db.session.remove()
        db.engine.dispose()
    assert second is not None and doc["national_id"] == "ID-77"
    assert doc["phone"] == "+254 700 000003"  # the first server's pick stands
    assert resolution.ancestor_rev == "2-" + H["1"]  # the merged leaf, learnt from the tombstone


def test_a_branch_edited_after_its_merge_keeps_the_earlier_pick(records: Flask) -> None:
    loser = put([H["1"], H["0"]], edited(T1, "chw1", phone="+254 700 000002"))
    put([H["b"], H["0"]], edited(T2, "chw2", phone="+254 700 000003"))
    first = resolve_document(DB, PID)
    assert winner()["phone"] == "+254 700 000003"

    # chw1's tablet had not pulled: it edits another field on its old branch, later than everything.
    put([H["c"], H["1"], H["0"]], edited(T3, "chw1", phone="+254 700 000002", national_id="ID-77"))
    second = resolve_document(DB, PID)
    assert second is not None and second != first
    doc = winner()
    assert doc["phone"] == "+254 700 000003" and doc["national_id"] == "ID-77" and doc["updated_by"] == "chw1"
    resolutions = db.session.scalars(db.select(Resolution).order_by(Resolution.id)).all()
    assert [r.ancestor_rev for r in resolutions] == ["1-" + H["0"], loser]  # the merged leaf is the ancestor
    assert len(conflict_rows()) == 1  # no new conflict, no delete_vs_edit for the merge's tombstone
    assert live_leaves() == [second]


def test_attachments_of_a_merged_away_branch_are_kept(records: Flask) -> None:
    photo = b"\xff\xd8\xff\xe0 not really a jpeg"
    with_photo = {**edited(T1, "chw1", phone="+254 700 000002"),
                  "_attachments": {"face.jpg": {"content_type": "image/jpeg",
                                                "data": base64.b64encode(photo).decode()}}}
    put([H["1"], H["0"]], with_photo)
    put([H["b"], H["0"]], edited(T2, "chw2", given_name="Aminah"))
    rev = resolve_document(DB, PID)
    meta, data = get_attachment(DB, PID, "face.jpg", None)
    assert data == photo and meta["revpos"] == 3 and winner()["_rev"] == rev


def test_an_attachment_conflict_can_be_chosen_back(records: Flask) -> None:
    def photo(data: bytes) -> dict[str, Any]:
        return {"face.jpg": {"content_type": "image/jpeg", "data": base64.b64encode(data).decode()}}
    older = put([H["f"], H["0"]], {**edited(T1, "chw1"), "_attachments": photo(b"older photo")})
    put([H["1"], H["0"]], {**edited(T2, "chw2"), "_attachments": photo(b"newer photo")})
    resolve_document(DB, PID)
    assert get_attachment(DB, PID, "face.jpg", None)[1] == b"newer photo"
    [conflict] = conflict_rows()
    assert conflict.field == "_attachments.face.jpg" and conflict.path == ["_attachments", "face.jpg"]
    new_rev = choose(conflict.id, older, "sup")
    meta, data = get_attachment(DB, PID, "face.jpg", None)
    assert data == b"older photo" and meta["revpos"] == 4 and winner()["_rev"] == new_rev


def test_resolve_all_resolves_what_needs_it_once(records: Flask) -> None:
    for doc_id in ("p1", "p2", "p3", "p4"):
        put([H["0"]], BASE, doc_id=doc_id)
    for doc_id in ("p1", "p2"):
        put([H["a"], H["0"]], edited(T1, "chw1", phone="+254 700 000002"), doc_id=doc_id)
        put([H["b"], H["0"]], edited(T2, "chw2", given_name="Aminah"), doc_id=doc_id)
    put([H["a"], H["0"]], {}, deleted=True, doc_id="p4")
    put([H["b"], H["0"]], edited(T1, "chw1", sex="unknown"), doc_id="p4")
    seen: list[tuple[int, int]] = []
    assert resolve_all(DB, lambda done, total: seen.append((done, total))) == 2
    assert seen[-1] == (5, 5) and [done for done, _ in seen] == [1, 2, 3, 4, 5]
    assert [live_leaves(doc_id=d) for d in ("p1", "p2")] == [[winner(doc_id=d)["_rev"]] for d in ("p1", "p2")]
    assert [(c.doc_id, c.kind) for c in list_conflicts(DB)] == [("p4", "delete_vs_edit")]
    assert resolve_all(DB) == 0 and len(list_conflicts(DB)) == 1 and len(audit("conflict.resolve")) == 2
    with pytest.raises(CouchError, match="Database does not exist"):
        resolve_all("nowhere")


def test_cli_resolves_lists_and_chooses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wasl_cli import main
    url = f"sqlite:///{tmp_path}/cli.sqlite"
    app = make_app(url)
    with app.app_context():
        create_database(DB)
        for doc_id in ("p1", "p2"):
            put([H["0"]], BASE, doc_id=doc_id)
        early = put([H["a"], H["0"]], edited(T1, "chw1", phone="+254 700 000002"), doc_id="p1")
        put([H["b"], H["0"]], edited(T2, "chw2", phone="+254 700 000003"), doc_id="p1")
        db.session.remove()
        db.engine.dispose()
    monkeypatch.setenv("WASL_DATABASE_URL", url)
    monkeypatch.setenv("WASL_INSTANCE", str(tmp_path / "instance"))
    monkeypatch.setenv("WASL_RECORDS_DB", DB)
    runner = CliRunner()

    resolved = runner.invoke(main, ["resolve"])
    assert resolved.exit_code == 0, resolved.output
    assert "1 document(s) merged in 'records'; 1 conflict(s) open" in resolved.output
    listed = runner.invoke(main, ["conflicts", "list"])
    assert listed.exit_code == 0 and "p1  phone  open" in listed.output, listed.output
    assert f"* 2-{H['b']}" in listed.output and f"  {early}  \"+254 700 000002\"  (chw1, {T1})" in listed.output
    with app.app_context():
        conflict_id = list_conflicts(DB)[0].id
    chosen = runner.invoke(main, ["conflicts", "choose", str(conflict_id), early, "--by", "sup"])
    assert chosen.exit_code == 0 and "new revision 4-" in chosen.output, chosen.output

    again = runner.invoke(main, ["conflicts", "choose", str(conflict_id), early, "--by", "sup"])
    assert again.exit_code == 1
    assert again.output.strip() == f"Error: Conflict {conflict_id} was already decided (changed)"
    missing = runner.invoke(main, ["resolve", "--db", "nowhere"])
    assert missing.exit_code == 1 and missing.output.strip() == "Error: Database does not exist."
    with app.app_context():
        assert winner(doc_id="p1")["phone"] == "+254 700 000002"
        assert list_conflicts(DB, "changed")[0].decided_by == "sup"
        db.session.remove()
        db.engine.dispose()


def test_a_branch_pushed_while_the_worker_resolves_is_resolved_in_the_same_run(
        records: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tablet's push lands between the worker's resolution and its next read of the feed.

    The worker must resolve the document again (it has a new seq), not project the conflict
    and move its checkpoint past it: nothing would bring the document back until it changed.
    """
    from models.health import Patient
    from sync.records import worker

    put([H["a"], H["0"]], edited(T1, "chw1", phone="+254 700 000002"))
    put([H["b"], H["0"]], edited(T2, "chw2", given_name="Aminah"))
    real, calls = worker.resolve.resolve_document, []

    def resolve_then_a_push_arrives(db_name: str, doc_id: str, **kw: Any) -> str | None:
        merged = real(db_name, doc_id, **kw)
        calls.append(merged)
        if len(calls) == 1:  # a third tablet's offline edit of the ancestor, pushed just now
            put([H["c"], H["0"]], edited(T3, "chw3", family_name="Otieno-Wanjiru"))
        return merged

    monkeypatch.setattr(worker.resolve, "resolve_document", resolve_then_a_push_arrives)
    worker.run_once(DB)
    assert len(calls) == 2 and all(calls)
    assert live_leaves() == [winner()["_rev"]]
    assert fields(winner())["family_name"] == "Otieno-Wanjiru" and fields(winner())["given_name"] == "Aminah"
    row = db.session.scalar(db.select(Patient).where(Patient.db_name == DB, Patient.doc_id == PID))
    assert row is not None and row.rev == winner()["_rev"]
    assert worker.run_once(DB) == 0 and len(calls) == 2
