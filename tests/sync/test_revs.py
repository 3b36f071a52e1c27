"""sync.revs: rev parsing/formatting, Erlang term encoding, CouchDB's deterministic rev hash."""
from __future__ import annotations

import hashlib
import re

import pytest

from sync.errors import BadRequest, InvalidRev
from sync.revs import Atom, format_rev, new_rev_hash, parse_rev, rev_id_bytes, term_to_binary

HEX32 = "47f3268e7546965196b57572099f4372"


@pytest.mark.parametrize("rev, expected", [
    ("1-abc", (1, "abc")),
    ("10-x", (10, "x")),
    ("1000-a", (1000, "a")),
    (f"3-{HEX32}", (3, HEX32)),
    (f"3-{HEX32.upper()}", (3, HEX32.upper())),
    ("2-abc-def", (2, "abc-def")),          # CouchDB splits at the first "-"
    ("2-bbbb", (2, "bbbb")),
    ("7-" + "f" * 33, (7, "f" * 33)),       # only exactly 32 characters must be hex
    ("7-" + "z" * 31, (7, "z" * 31)),
])
def test_parse_rev_accepts(rev: str, expected: tuple[int, str]) -> None:
    assert parse_rev(rev) == expected
    assert format_rev(*parse_rev(rev)) == rev


@pytest.mark.parametrize("rev", [
    "", "1", "1-", "-abc", "-1-abc", "+1-abc", "0-abc", "00-abc", "01-abc", " 1-abc", "1 -abc",
    "a-abc", "1.0-abc", "1e3-abc", "\u0661-abc", "\u00b9-abc", "1_0-abc",
    "1-" + "g" * 32, "1-" + "0" * 31 + "x",
    None, 1, 1.5, True, b"1-abc", ["1-abc"], {"rev": "1-abc"},
])
def test_parse_rev_rejects(rev: object) -> None:
    with pytest.raises(InvalidRev) as excinfo:
        parse_rev(rev)
    assert excinfo.value.to_json() == {"error": "bad_request", "reason": "Invalid rev format"}
    assert isinstance(excinfo.value, BadRequest) and excinfo.value.status == 400


@pytest.mark.parametrize("pos, rev_hash, expected", [
    (1, "abc", "1-abc"), (12, HEX32, f"12-{HEX32}"), (3, "a-b", "3-a-b"),
])
def test_format_rev(pos: int, rev_hash: str, expected: str) -> None:
    assert format_rev(pos, rev_hash) == expected


def test_rev_id_bytes() -> None:
    assert rev_id_bytes(HEX32) == bytes.fromhex(HEX32)
    assert len(rev_id_bytes(HEX32.upper())) == 16
    assert rev_id_bytes("abc") == b"abc"
    assert rev_id_bytes("0" * 33) == b"0" * 33


# Bytes that Erlang/OTP's term_to_binary(Term, [{minor_version, 1}]) produces.
@pytest.mark.parametrize("term, expected", [
    (True, [131, 100, 0, 4, *b"true"]),
    (False, [131, 100, 0, 5, *b"false"]),
    (None, [131, 100, 0, 4, *b"null"]),
    (Atom("ok"), [131, 100, 0, 2, *b"ok"]),
    (0, [131, 97, 0]),
    (255, [131, 97, 255]),
    (256, [131, 98, 0, 0, 1, 0]),
    (-1, [131, 98, 255, 255, 255, 255]),
    (2 ** 31 - 1, [131, 98, 127, 255, 255, 255]),
    (-(2 ** 31), [131, 98, 128, 0, 0, 0]),
    (2 ** 31, [131, 110, 4, 0, 0, 0, 0, 128]),
    (-(2 ** 31) - 1, [131, 110, 4, 1, 1, 0, 0, 128]),
    (2 ** 64, [131, 110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
    (1.5, [131, 70, 63, 248, 0, 0, 0, 0, 0, 0]),
    (-0.25, [131, 70, 191, 208, 0, 0, 0, 0, 0, 0]),
    ("ab", [131, 109, 0, 0, 0, 2, 97, 98]),
    ("\u00e9", [131, 109, 0, 0, 0, 2, 0xC3, 0xA9]),
    (b"\x00\xff", [131, 109, 0, 0, 0, 2, 0, 255]),
    ([], [131, 106]),
    ([1, 2, 3], [131, 107, 0, 3, 1, 2, 3]),                     # STRING_EXT
    ([256], [131, 108, 0, 0, 0, 1, 98, 0, 0, 1, 0, 106]),
    ([True], [131, 108, 0, 0, 0, 1, 100, 0, 4, *b"true", 106]),  # bools are atoms, not bytes
    ([1, "a"], [131, 108, 0, 0, 0, 2, 97, 1, 109, 0, 0, 0, 1, 97, 106]),
    ((1, 2), [131, 104, 2, 97, 1, 97, 2]),
    ((), [131, 104, 0]),
    ({}, [131, 104, 1, 106]),
    ({"a": 1}, [131, 104, 1, 108, 0, 0, 0, 1, 104, 2, 109, 0, 0, 0, 1, 97, 97, 1, 106]),
])
def test_term_to_binary(term: object, expected: list[int]) -> None:
    assert term_to_binary(term) == bytes(expected)


def test_term_to_binary_large_terms() -> None:
    big = term_to_binary(2 ** 2040)      # 256 bytes of digits: LARGE_BIG_EXT
    assert big[:7] == bytes([131, 111, 0, 0, 1, 0, 0]) and big[-1] == 1 and len(big) == 7 + 256
    assert term_to_binary(-(2 ** 2040))[6] == 1
    long_string = term_to_binary([7] * 65535)
    assert long_string[:4] == bytes([131, 107, 255, 255]) and len(long_string) == 4 + 65535
    too_long = term_to_binary([7] * 65536)   # beyond STRING_EXT's 16-bit length: LIST_EXT
    assert too_long[:6] == bytes([131, 108, 0, 1, 0, 0]) and too_long[-1] == 106


@pytest.mark.parametrize("term", [object(), {1, 2}, tuple(range(256))])
def test_term_to_binary_rejects(term: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        term_to_binary(term)


# Revisions published by CouchDB, with the bodies that produced them.
@pytest.mark.parametrize("body, expected", [
    ({}, "967a00dff5e02add41819138abb3284d"),                       # docs: api/database/bulk-api
    ({"a": 1}, "23202479633c2b380f79507a776743d5"),                 # docs: api/database/bulk-api
    ({"val": "r0"}, "47f3268e7546965196b57572099f4372"),            # test/elixir conflicts_test
    ({"views": {}}, "0b24e44a44af45e51e562fd124ce3007"),            # couch_mrview_design_docs_tests
    ({"val": 1}, "08d53a5760b95fce6df2e2c5b008be39"),               # couch_mrview_all_docs_tests
    ({"val": 2}, "b57c77a9e6f7574ca6469f0d6dcd78bb"),
    ({"val": 3}, "7fbf84d56f8017880974402d60f5acd6"),
    ({"val": 4}, "fcaf5852c08ffb239ac8ce16c409f253"),
    ({"val": 5}, "aaac5d460fd40f9286e57b9bf12e23d2"),
    ({"val": 6}, "aca21c2e7bc5f8951424fcfc5d1209d8"),
    ({"val": 7}, "4374aeec17590d82f16e70f318116ad9"),
    ({"val": 8}, "55b9a29311341e07ec0a7ca13bc1b59f"),
    ({"val": 9}, "558c8487d9aee25399a91b5d31d90fe2"),
    ({"val": 10}, "a05b6ea2bc0243949f103d5b4f15f71e"),
    ({"views": {                                                    # couch_mrview_test_util ddoc(map)
        "baz": {"map": "function(doc) {emit(doc.val, doc.val);}"},
        "bing": {"map": "function(doc) {}"},
        "zing": {"map": "function(doc) {\n  if(doc.foo !== undefined)\n    emit(doc.foo, 0);\n}"},
    }}, "a44e1dd1994a7717bf89c894ebd1f081"),
])
def test_new_rev_hash_matches_couchdb(body: dict, expected: str) -> None:
    assert new_rev_hash(False, None, body, []) == expected


def test_new_rev_hash_chain_from_conflicts_test() -> None:
    # test/elixir/test/conflicts_test.exs: r0, then r1 on r0's rev, then r2 on r1's rev.
    rev1 = new_rev_hash(False, None, {"_id": "doc", "val": "r0"}, [])
    rev2 = new_rev_hash(False, (1, rev1), {"_id": "doc", "val": "r1", "_rev": f"1-{rev1}"}, [])
    rev3 = new_rev_hash(False, (2, rev2), {"_id": "doc", "val": "r2", "_rev": f"2-{rev2}"}, [])
    assert [f"1-{rev1}", f"2-{rev2}", f"3-{rev3}"] == [
        "1-47f3268e7546965196b57572099f4372",
        "2-1d8171ab3a91475cfece749291e6f897",
        "3-3fb0a342d2ce092fdcc77856dbe8a2ef",
    ]


def _md5(term: object) -> str:
    return hashlib.md5(term_to_binary(term)).hexdigest()


def test_new_rev_hash_term_layout() -> None:
    """Cases without a published vector: pin the term that is hashed."""
    body = {"_id": "x", "_deleted": True, "k": [1, 2.5, None, {"n": "v"}]}
    fields = {"k": [1, 2.5, None, {"n": "v"}]}
    assert new_rev_hash(True, None, body, []) == _md5([True, 0, 0, fields, []])
    assert new_rev_hash(False, (2, HEX32), body, []) == _md5([False, 2, bytes.fromhex(HEX32), fields, []])
    assert new_rev_hash(False, (2, "bbbb"), body, []) == _md5([False, 2, b"bbbb", fields, []])
    atts = [("a.txt", "text/plain", b"\x01" * 16), ("b.bin", "application/octet-stream", b"\x02" * 16)]
    # couch_db:new_revid's foldl reverses the attachment list.
    assert new_rev_hash(False, None, {}, atts) == _md5([False, 0, 0, {}, [tuple(a) for a in atts[::-1]]])


def test_new_rev_hash_is_sensitive_to_each_input() -> None:
    base = new_rev_hash(False, (1, HEX32), {"a": 1, "b": 2}, [])
    variants = {
        new_rev_hash(True, (1, HEX32), {"a": 1, "b": 2}, []),
        new_rev_hash(False, (2, HEX32), {"a": 1, "b": 2}, []),
        new_rev_hash(False, None, {"a": 1, "b": 2}, []),
        new_rev_hash(False, (1, HEX32), {"b": 2, "a": 1}, []),       # key order matters
        new_rev_hash(False, (1, HEX32), {"a": 1.0, "b": 2}, []),     # 1.0 is a float term
        new_rev_hash(False, (1, HEX32), {"a": 1, "b": 2}, [("f", "t", b"\x00" * 16)]),
    }
    assert base not in variants and len(variants) == 6
    assert new_rev_hash(False, (1, HEX32), {"a": 1, "b": 2, "_x": 0}, []) == base


def test_new_rev_hash_without_attachment_md5_is_random() -> None:
    atts = [("a", "text/plain", b"\x01" * 16), ("b", "text/plain", b"")]
    first, second = new_rev_hash(False, None, {}, atts), new_rev_hash(False, None, {}, atts)
    assert re.fullmatch(r"[0-9a-f]{32}", first) and re.fullmatch(r"[0-9a-f]{32}", second)
    assert first != second


def test_new_rev_hash_does_not_mutate_inputs() -> None:
    body = {"_id": "d", "a": [1, {"b": 2}]}
    atts = [("a", "t", b"\x01" * 16), ("b", "t", b"\x02" * 16)]
    new_rev_hash(False, None, body, atts)
    assert body == {"_id": "d", "a": [1, {"b": 2}]}
    assert atts == [("a", "t", b"\x01" * 16), ("b", "t", b"\x02" * 16)]
