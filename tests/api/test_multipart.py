"""CouchDB multipart bodies: parsing multipart/related uploads, building related and mixed replies."""
from __future__ import annotations

import email.policy
import gzip
import json
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import Any

import pytest

from api.couch.multipart import (Part, build_mixed, build_related, decode_follows, media_type, parse_related,
                                 split_parts)
from sync.errors import BadContentType, BadRequest

BINARY = bytes(range(256)) + b"\r\n--\r\n\r\n--not-a-boundary\r\n"

# What CouchDB 3's replicator PUTs to /target/visit-1?new_edits=false (couch_replicator_api_wrap:update_doc
# -> couch_doc:doc_to_multi_part_stream with SendEncodedAtts=true): the doc JSON as to_json_obj writes it
# with [revs, attachments, follows, att_encoding_info], a stub for an attachment the target already has
# (atts_since), a text attachment stored gzip-compressed and sent as stored, then a binary one.
COUCH_BOUNDARY = "6a4b1bd0e7a2bd9b2ef4e2c7e13f5f07"
COUCH_CONTENT_TYPE = f'multipart/related; boundary="{COUCH_BOUNDARY}"'
NOTES = b"Visit notes: BP 140/90, referred to clinic. " * 4
NOTES_GZIP = bytes.fromhex(
    "1f8b08000000000002030bcb2cce2c51c8cb2f492db652700a50303431d0b734d051284a4d4b2d2a4a4d5128c957"
    "48cec9cccb4cd653081b046a0127b1ba2eb0000000")
PHOTO = bytes(range(64))
COUCH_DOC_JSON = (
    b'{"_id":"visit-1","_rev":"2-7b1ae1b5a1a59b2e1f0e1f1b6e6f3a10","type":"visit","patient":"p-7",'
    b'"_revisions":{"start":2,"ids":["7b1ae1b5a1a59b2e1f0e1f1b6e6f3a10","967a00dff5e02add41819138abb3284d"]},'
    b'"_attachments":{'
    b'"consent.pdf":{"content_type":"application/pdf","revpos":1,"digest":"md5-1B2M2Y8AsgTpgAmY7PhCfg==",'
    b'"length":0,"stub":true},'
    b'"notes.txt":{"content_type":"text/plain","revpos":2,"digest":"md5-cO5urFZRcavg8WM1ihTTFA==",'
    b'"length":176,"follows":true,"encoding":"gzip","encoded_length":67},'
    b'"photo.bin":{"content_type":"application/octet-stream","revpos":1,'
    b'"digest":"md5-stP1a8GX/ZhdWWUHm15xSA==","length":64,"follows":true}}}')
COUCH_PUT_BODY = (
    b"--" + COUCH_BOUNDARY.encode() + b"\r\n"
    b"Content-Type: application/json\r\n"
    b"\r\n"
    + COUCH_DOC_JSON + b"\r\n"
    b"--" + COUCH_BOUNDARY.encode() + b"\r\n"
    b'Content-Disposition: attachment; filename="notes.txt"\r\n'
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 67\r\n"
    b"Content-Encoding: gzip\r\n"
    b"\r\n"
    + NOTES_GZIP + b"\r\n"
    b"--" + COUCH_BOUNDARY.encode() + b"\r\n"
    b'Content-Disposition: attachment; filename="photo.bin"\r\n'
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Length: 64\r\n"
    b"\r\n"
    + PHOTO + b"\r\n"
    b"--" + COUCH_BOUNDARY.encode() + b"--")


def related(parts: list[bytes], boundary: str = "B0undary") -> bytes:
    """A multipart/related body from already-formatted parts (headers, blank line, body)."""
    dash = b"--" + boundary.encode()
    return dash + b"".join(b"\r\n" + p + b"\r\n" + dash for p in parts) + b"--"


def doc_part(doc: dict[str, Any]) -> bytes:
    return b"Content-Type: application/json\r\n\r\n" + json.dumps(doc).encode()


def follows(length: int, **extra: Any) -> dict[str, Any]:
    return {"content_type": "text/plain", "length": length, "follows": True, **extra}


ONE_FOLLOWS = {"_id": "d", "_rev": "1-a", "_attachments": {"a.txt": follows(5)}}
RELATED_CT = 'multipart/related; boundary="B0undary"'


# ---------------------------------------------------------------------------- CouchDB's own bodies


def test_sample_matches_the_gzip_member_it_declares() -> None:
    assert gzip.decompress(NOTES_GZIP) == NOTES
    assert (len(NOTES), len(NOTES_GZIP)) == (176, 67)


def test_parse_couchdb_replicator_put() -> None:
    doc, bodies = parse_related(COUCH_PUT_BODY, COUCH_CONTENT_TYPE)
    assert doc == json.loads(COUCH_DOC_JSON)
    assert bodies == [NOTES_GZIP, PHOTO]  # as sent: still gzip-compressed


def test_decode_couchdb_replicator_put_gunzips() -> None:
    doc, bodies = parse_related(COUCH_PUT_BODY, COUCH_CONTENT_TYPE)
    decoded = decode_follows(doc, bodies)
    assert decoded == {"notes.txt": NOTES, "photo.bin": PHOTO}
    assert list(decoded) == ["notes.txt", "photo.bin"]


def test_unquoted_boundary_and_parameter_case() -> None:
    content_type = f"Multipart/Related; Boundary={COUCH_BOUNDARY}; type=application/json"
    doc, bodies = parse_related(COUCH_PUT_BODY, content_type)
    assert bodies == [NOTES_GZIP, PHOTO]
    assert doc["_id"] == "visit-1"


def test_parts_without_headers_preamble_epilogue_and_padding() -> None:
    body = (b"preamble to ignore\r\n--B0undary  \r\n\r\n" + json.dumps(ONE_FOLLOWS).encode()
            + b"\r\n--B0undary\t\r\n\r\nhello\r\n--B0undary--\r\nepilogue")
    assert parse_related(body, RELATED_CT) == (ONE_FOLLOWS, [b"hello"])


def test_boundary_with_special_characters() -> None:
    boundary = "a'()+_,-./:=? b"
    body = related([doc_part(ONE_FOLLOWS), b"\r\nhello"], boundary)
    assert parse_related(body, f'multipart/related; boundary="{boundary}"')[1] == [b"hello"]


def test_folded_header_line_is_accepted() -> None:
    part = b'Content-Disposition: attachment;\r\n filename="a.txt"\r\nContent-Length: 5\r\n\r\nhello'
    assert parse_related(related([doc_part(ONE_FOLLOWS), part]), RELATED_CT)[1] == [b"hello"]


def test_doc_without_attachments() -> None:
    doc = {"_id": "d", "_rev": "1-a", "v": 1}
    assert parse_related(related([doc_part(doc)]), RELATED_CT) == (doc, [])


def test_stubs_and_inline_data_do_not_follow() -> None:
    doc = {"_id": "d", "_attachments": {"s": {"stub": True, "length": 3}, "i": {"data": "aGk="},
                                        "f": follows(2)}}
    parsed, bodies = parse_related(related([doc_part(doc), b"\r\nhi"]), RELATED_CT)
    assert bodies == [b"hi"]
    assert decode_follows(parsed, bodies) == {"f": b"hi"}


# ---------------------------------------------------------------------------- malformed uploads


MALFORMED: dict[str, tuple[bytes, str]] = {
    "no boundary parameter": (related([doc_part(ONE_FOLLOWS), b"\r\nhello"]), "multipart/related"),
    "empty boundary": (related([doc_part(ONE_FOLLOWS), b"\r\nhello"]), 'multipart/related; boundary=""'),
    "not multipart/related": (related([doc_part(ONE_FOLLOWS), b"\r\nhello"]),
                              'multipart/mixed; boundary="B0undary"'),
    "boundary absent from body": (doc_part(ONE_FOLLOWS), RELATED_CT),
    "empty body": (b"", RELATED_CT),
    "missing closing delimiter": (related([doc_part(ONE_FOLLOWS), b"\r\nhello"])[:-len("\r\n--B0undary--")],
                                  RELATED_CT),
    "truncated after last delimiter": (related([doc_part(ONE_FOLLOWS), b"\r\nhello"])[:-2], RELATED_CT),
    "truncated inside an attachment": (related([doc_part({"_attachments": {"a": follows(40)}}),
                                                b"\r\n" + b"x" * 40])[:-20], RELATED_CT),
    "no parts at all": (b"--B0undary--", RELATED_CT),
    "bad JSON": (related([b"Content-Type: application/json\r\n\r\n{\"_id\": ", b"\r\nhello"]), RELATED_CT),
    "JSON not an object": (related([b"Content-Type: application/json\r\n\r\n[1, 2]"]), RELATED_CT),
    "JSON not UTF-8": (related([b"Content-Type: application/json\r\n\r\n{\"a\": \"\xff\"}"]), RELATED_CT),
    "fewer parts than follows": (related([doc_part({"_attachments": {"a": follows(1), "b": follows(1)}}),
                                          b"\r\na"]), RELATED_CT),
    "no parts for follows": (related([doc_part(ONE_FOLLOWS)]), RELATED_CT),
    "more parts than follows": (related([doc_part(ONE_FOLLOWS), b"\r\nhello", b"\r\nextra"]), RELATED_CT),
    "_attachments not an object": (related([doc_part({"_attachments": ["a"]})]), RELATED_CT),
    "header line without colon": (related([doc_part(ONE_FOLLOWS), b"Content-Length 5\r\n\r\nhello"]),
                                  RELATED_CT),
    "headers never end": (b"--B0undary\r\nContent-Type: application/json\r\n{}\r\n--B0undary--", RELATED_CT),
    "part Content-Length disagrees": (related([doc_part(ONE_FOLLOWS), b"Content-Length: 4\r\n\r\nhello"]),
                                      RELATED_CT),
    "delimiter not followed by CRLF": (b"--B0undaryX\r\n\r\n{}\r\n--B0undary--", RELATED_CT),
}


@pytest.mark.parametrize(("body", "content_type"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_upload_is_bad_request(body: bytes, content_type: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_related(body, content_type)
    assert info.value.status == 400 and info.value.error == "bad_request"
    assert info.value.reason and info.value.reason != BadRequest.reason


def test_doc_part_of_another_type_is_415_like_couchdb() -> None:
    body = related([b"Content-Type: text/plain\r\n\r\n{}"])
    with pytest.raises(BadContentType) as info:
        parse_related(body, RELATED_CT)
    assert info.value.status == 415
    assert info.value.to_json() == {"error": "bad_content_type",
                                    "reason": "Content-Type must be application/json"}


def test_doc_part_content_type_may_carry_parameters() -> None:
    body = related([b"Content-Type: application/json; charset=utf-8\r\n\r\n{\"a\":1}"])
    assert parse_related(body, RELATED_CT) == ({"a": 1}, [])


# ---------------------------------------------------------------------------- decode_follows checks


BAD_FOLLOWS: dict[str, tuple[dict[str, Any], list[bytes]]] = {
    "identity length too long": ({"a": follows(6)}, [b"hello"]),
    "identity length too short": ({"a": follows(4)}, [b"hello"]),
    "no length": ({"a": {"follows": True}}, [b"hello"]),
    "length not an integer": ({"a": follows("5")}, [b"hello"]),  # type: ignore[arg-type]
    "length is a boolean": ({"a": follows(True)}, [b"h"]),
    "negative length": ({"a": follows(-1)}, [b""]),
    "gzip encoded_length mismatch": ({"a": follows(176, encoding="gzip", encoded_length=66)}, [NOTES_GZIP]),
    "gzip decoded length mismatch": ({"a": follows(175, encoding="gzip", encoded_length=67)}, [NOTES_GZIP]),
    "gzip without encoded_length defaults to length": ({"a": follows(176, encoding="gzip")}, [NOTES_GZIP]),
    "not gzip": ({"a": follows(5, encoding="gzip", encoded_length=5)}, [b"hello"]),
    "truncated gzip": ({"a": follows(176, encoding="gzip", encoded_length=60)}, [NOTES_GZIP[:60]]),
    "unsupported encoding": ({"a": follows(5, encoding="br", encoded_length=5)}, [b"hello"]),
    "fewer bodies": ({"a": follows(5), "b": follows(5)}, [b"hello"]),
    "more bodies": ({"a": follows(5)}, [b"hello", b"hello"]),
}


@pytest.mark.parametrize(("atts", "bodies"), BAD_FOLLOWS.values(), ids=BAD_FOLLOWS.keys())
def test_decode_follows_rejects_size_mismatches(atts: dict[str, Any], bodies: list[bytes]) -> None:
    with pytest.raises(BadRequest):
        decode_follows({"_id": "d", "_attachments": atts}, bodies)


def test_decode_follows_identity_encoding_and_empty_body() -> None:
    doc = {"_attachments": {"a": follows(5, encoding="identity"), "e": follows(0)}}
    assert decode_follows(doc, [b"hello", b""]) == {"a": b"hello", "e": b""}


# ---------------------------------------------------------------------------- build_related


def test_build_related_round_trip() -> None:
    doc: dict[str, Any] = {"_id": "d", "_rev": "2-b", "v": "ü", "_attachments": {
        "old.txt": {"stub": True, "content_type": "text/plain", "digest": "md5-x", "length": 3, "revpos": 1},
        "photo.bin": {"content_type": "image/png", "digest": "md5-y", "revpos": 2, "stub": True,
                      "length": 1}}}
    body, content_type = build_related(doc, [("photo.bin", "application/octet-stream", BINARY),
                                             ("näme \"q\".txt", "text/plain", b"hello")])
    assert content_type.startswith('multipart/related; boundary="')
    parsed, bodies = parse_related(body, content_type)
    assert bodies == [BINARY, b"hello"]
    assert decode_follows(parsed, bodies) == {"photo.bin": BINARY, "näme \"q\".txt": b"hello"}
    assert parsed["_attachments"] == {
        "old.txt": doc["_attachments"]["old.txt"],
        "photo.bin": {"content_type": "application/octet-stream", "digest": "md5-y", "revpos": 2,
                      "length": len(BINARY), "follows": True},
        "näme \"q\".txt": {"content_type": "text/plain", "length": 5, "follows": True}}
    assert doc["_attachments"]["photo.bin"]["stub"] is True  # the caller's doc is left alone


def test_build_related_matches_couchdb_bytes() -> None:
    doc = {"_id": "d", "_rev": "1-a", "_attachments": {"a.txt": {"content_type": "text/plain", "revpos": 1,
                                                                 "digest": "md5-XUFAKrxLKna5cZ2REBfFkg==",
                                                                 "length": 5, "stub": True}}}
    body, content_type = build_related(doc, [("a.txt", "text/plain", b"hello")])
    boundary = media_type(content_type)[1]["boundary"]
    assert len(boundary) == 32
    assert body.replace(boundary.encode(), b"B") == (
        b'--B\r\nContent-Type: application/json\r\n\r\n'
        b'{"_id":"d","_rev":"1-a","_attachments":{"a.txt":{"content_type":"text/plain","revpos":1,'
        b'"digest":"md5-XUFAKrxLKna5cZ2REBfFkg==","length":5,"follows":true}}}'
        b'\r\n--B\r\nContent-Disposition: attachment; filename="a.txt"\r\nContent-Type: text/plain'
        b'\r\nContent-Length: 5\r\n\r\nhello\r\n--B--')


def test_build_related_sends_parts_in_attachments_order() -> None:
    doc = {"_attachments": {"z": {"stub": True}, "a": {"stub": True}}}
    body, content_type = build_related(doc, [("a", "text/plain", b"A"), ("z", "text/plain", b"Z")])
    parsed, bodies = parse_related(body, content_type)
    assert list(parsed["_attachments"]) == ["z", "a"] and bodies == [b"Z", b"A"]


def test_build_related_drops_stored_encoding_and_inline_data() -> None:
    doc = {"_attachments": {"a": {"content_type": "text/plain", "encoding": "gzip", "encoded_length": 9,
                                  "data": "aGVsbG8=", "length": 5}}}
    body, content_type = build_related(doc, [("a", "text/plain", b"hello")])
    assert parse_related(body, content_type)[0]["_attachments"]["a"] == follows(5)


def test_build_related_without_attachments_is_json() -> None:
    doc = {"_id": "d", "_attachments": {"a": {"stub": True, "length": 1}}}
    assert build_related(doc, []) == (json.dumps(doc, separators=(",", ":")).encode(), "application/json")


def test_build_related_neutralises_header_injection() -> None:
    body, content_type = build_related({}, [("evil\r\nX-Injected: 1", "text/plain\r\nX-Too: 1", b"x")])
    heads = [head for head, _ in split_parts(body, media_type(content_type)[1]["boundary"].encode())]
    assert b"\r\nX-Injected" not in heads[1] and b"\r\nX-Too" not in heads[1]


@pytest.mark.parametrize("attachments", [
    [("a", "text/plain", b"1"), ("a", "text/plain", b"2")],
    [("b", "text/plain", b"1")],
])
def test_build_related_rejects_inconsistent_input(attachments: list[tuple[str, str, bytes]]) -> None:
    doc = {"_attachments": {"a": follows(1)}}  # "a" follows: it needs exactly one body
    with pytest.raises(ValueError):
        build_related(doc, attachments)


# ---------------------------------------------------------------------------- build_mixed


def payload(part: Message) -> bytes:
    """The decoded body of a non-multipart MIME part."""
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    return data


def email_parse(body: bytes, content_type: str) -> EmailMessage:
    """Parse an HTTP multipart body with the stdlib MIME parser."""
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    assert isinstance(message, EmailMessage)
    return message


MIXED_DOC: dict[str, Any] = {
    "_id": "d", "_rev": "3-c", "v": 3, "_revisions": {"start": 3, "ids": ["c", "b", "a"]},
    "_attachments": {
        "notes.txt": {"content_type": "text/plain", "revpos": 3, "digest": "md5-n", "length": 11, "stub": True},
        "old.bin": {"content_type": "image/png", "revpos": 1, "digest": "md5-o", "length": 4, "stub": True}}}
PLAIN_DOC = {"_id": "d", "_rev": "2-b", "v": 2, "_revisions": {"start": 2, "ids": ["b", "a"]}}


def mixed_sample() -> tuple[bytes, str]:
    return build_mixed([Part.found(MIXED_DOC, [("notes.txt", "text/plain", b"hello world")]),
                        Part.not_found("9-zzz"),
                        Part.found(PLAIN_DOC)])


def test_build_mixed_structure_with_email_parser() -> None:
    message = email_parse(*mixed_sample())
    assert message.get_content_type() == "multipart/mixed" and not message.defects
    related_part, error_part, json_part = message.iter_parts()

    assert related_part.get_content_type() == "multipart/related" and not related_part.defects
    doc_part, att_part = related_part.iter_parts()
    assert doc_part.get_content_type() == "application/json"
    doc = json.loads(payload(doc_part))
    assert doc["_attachments"]["notes.txt"] == {"content_type": "text/plain", "revpos": 3, "digest": "md5-n",
                                                "length": 11, "follows": True}
    assert doc["_attachments"]["old.bin"]["stub"] is True
    assert doc["_revisions"] == MIXED_DOC["_revisions"]
    assert att_part.get_content_disposition() == "attachment"
    assert att_part.get_filename() == "notes.txt"
    assert att_part["Content-Type"] == "text/plain" and att_part["Content-Length"] == "11"
    assert payload(att_part) == b"hello world"

    assert error_part.get_content_type() == "application/json"
    assert error_part.get_param("error") == "true"
    assert json.loads(payload(error_part)) == {"missing": "9-zzz"}

    assert json_part["Content-Type"] == "application/json"  # exactly: the replicator matches no params
    assert json.loads(payload(json_part)) == PLAIN_DOC


def test_build_mixed_matches_couchdb_bytes() -> None:
    body, content_type = mixed_sample()
    outer = media_type(content_type)[1]["boundary"]
    inner = body.split(b'multipart/related; boundary="', 1)[1].split(b'"', 1)[0].decode()
    assert outer != inner and len(outer) == len(inner) == 32
    doc = {**MIXED_DOC, "_attachments": {
        "notes.txt": {"content_type": "text/plain", "revpos": 3, "digest": "md5-n", "length": 11, "follows": True},
        "old.bin": MIXED_DOC["_attachments"]["old.bin"]}}
    assert body.replace(outer.encode(), b"OUT").replace(inner.encode(), b"IN") == (
        b'--OUT\r\nContent-Type: multipart/related; boundary="IN"\r\n\r\n'
        b"--IN\r\nContent-Type: application/json\r\n\r\n" + json.dumps(doc, separators=(",", ":")).encode()
        + b'\r\n--IN\r\nContent-Disposition: attachment; filename="notes.txt"\r\nContent-Type: text/plain'
        b"\r\nContent-Length: 11\r\n\r\nhello world\r\n--IN--"
        b'\r\n--OUT\r\nContent-Type: application/json; error="true"\r\n\r\n{"missing":"9-zzz"}'
        b"\r\n--OUT\r\nContent-Type: application/json\r\n\r\n"
        + json.dumps(PLAIN_DOC, separators=(",", ":")).encode() + b"\r\n--OUT--")


def test_build_mixed_nested_part_round_trips_binary() -> None:
    body, content_type = build_mixed([Part.found(PLAIN_DOC, [("b.bin", "application/octet-stream", BINARY),
                                                             ("c.txt", "text/plain", b"")])])
    [(head, inner_body)] = split_parts(body, media_type(content_type)[1]["boundary"].encode())
    inner_type = head.decode().strip().partition(":")[2].strip()
    doc, bodies = parse_related(inner_body, inner_type)
    assert decode_follows(doc, bodies) == {"b.bin": BINARY, "c.txt": b""}
    assert {k: v for k, v in doc.items() if k != "_attachments"} == PLAIN_DOC


def test_build_mixed_doc_with_only_stubs_is_a_json_part() -> None:
    body, content_type = build_mixed([Part.found(MIXED_DOC)])
    [part] = email_parse(body, content_type).iter_parts()
    assert part["Content-Type"] == "application/json"
    assert json.loads(payload(part)) == MIXED_DOC


def test_part_needs_a_doc_or_a_missing_rev() -> None:
    with pytest.raises(ValueError):
        Part()
    with pytest.raises(ValueError):
        Part(doc={}, missing="1-a")
    with pytest.raises(ValueError):
        Part(missing="1-a", attachments=[("a", "text/plain", b"")])
