"""A winner written around its stored text is the same JSON ``build_doc`` makes, or is left to it."""
from __future__ import annotations

import json

import pytest

from sync import jsoncodec
from sync.docview import ReadOptions, build_doc, spliced_winner
from sync.rows import DocRow


def linear(*hashes: str, pos: int = 1) -> list:
    node: list = [hashes[-1], {}, []]
    for rev_hash in reversed(hashes[:-1]):
        node = [rev_hash, {}, [node]]
    return [{"pos": pos, "ids": node}]


def row(tree: list, winner: str, deleted: bool = False) -> DocRow:
    return DocRow(id=7, doc_id="visit/ä 1", rev_tree=tree, winning_rev=winner, deleted=deleted, seq=42)


BODIES = {
    "fields": {"type": "visit", "muac_mm": 118, "danger_signs": ["fever"], "notes": "ORS given"},
    "empty": {},
    "nested and non-ASCII": {"obs": {"t": 38.5, "ok": True, "none": None}, "name": "Chikondi Ñ 诊所"},
}
OPTIONS = {
    "plain": ReadOptions(),
    "revs": ReadOptions(revs=True),
    "revs, conflicts, deleted_conflicts": ReadOptions(revs=True, conflicts=True, deleted_conflicts=True),
    "attachments asked, none held": ReadOptions(revs=True, attachments=True),
}


@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
@pytest.mark.parametrize("opts", OPTIONS.values(), ids=OPTIONS.keys())
@pytest.mark.parametrize("tree,winner", [(linear("aa"), "1-aa"), (linear("aa", "bb", "cc", pos=4), "6-cc")],
                         ids=["one revision", "stemmed chain"])
def test_the_spliced_winner_is_the_document_build_doc_makes(body: dict, opts: ReadOptions, tree: list,
                                                            winner: str) -> None:
    doc = row(tree, winner)
    text = jsoncodec.dumps(body)
    spliced = spliced_winner(doc, text, opts)
    assert spliced is not None
    assert (spliced.doc_id, spliced.rev) == (doc.doc_id, winner)
    assert json.loads(spliced.text) == build_doc(doc, winner, body, opts)


BRANCHED = [{"pos": 1, "ids": ["aa", {}, [["bb", {}, []], ["cc", {}, []]]]}]
LEFT_TO_BUILD_DOC = {
    "deleted winner": (row(linear("aa", "bb"), "2-bb", deleted=True), {"a": 1}, ReadOptions(revs=True)),
    "branched tree": (row(BRANCHED, "2-cc"), {"a": 1}, ReadOptions(revs=True, conflicts=True)),
    "attachments": (row(linear("aa"), "1-aa"), {"_attachments": {"p": {"stub": True}}}, ReadOptions()),
    "underscore in a value": (row(linear("aa"), "1-aa"), {"note": "_x"}, ReadOptions()),
    "revs_info": (row(linear("aa"), "1-aa"), {"a": 1}, ReadOptions(revs_info=True)),
    "local_seq": (row(linear("aa"), "1-aa"), {"a": 1}, ReadOptions(local_seq=True)),
}


@pytest.mark.parametrize("doc,body,opts", LEFT_TO_BUILD_DOC.values(), ids=LEFT_TO_BUILD_DOC.keys())
def test_documents_splicing_cannot_write_are_left_to_build_doc(doc: DocRow, body: dict, opts: ReadOptions) -> None:
    assert spliced_winner(doc, jsoncodec.dumps(body), opts) is None


def test_a_reply_carries_spliced_text_as_is_even_when_the_standard_library_writes_it() -> None:
    spliced = spliced_winner(row(linear("aa"), "1-aa"), '{"n":1}', ReadOptions())
    assert spliced is not None
    fast = {"results": [{"docs": [{"ok": spliced}]}]}
    assert json.loads(jsoncodec.dumpb(fast)) == {"results": [{"docs": [{"ok": {"_id": "visit/ä 1", "_rev": "1-aa",
                                                                               "n": 1}}]}]}
    # An integer beyond 64 bits elsewhere in the reply sends the whole reply to the standard library.
    slow = {"results": [{"docs": [{"ok": spliced}, {"ok": {"big": 2**70}}]}]}
    assert json.loads(jsoncodec.dumpb(slow))["results"][0]["docs"] == [
        {"ok": {"_id": "visit/ä 1", "_rev": "1-aa", "n": 1}}, {"ok": {"big": 2**70}}]
    with pytest.raises(TypeError):
        jsoncodec.dumpb({"not json": object()})
