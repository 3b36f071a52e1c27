"""AES-256-GCM envelopes: known answers, round trips, every tampered byte, moved ciphertexts, misuse."""
from __future__ import annotations

import hashlib
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crypto import DecryptionError, envelope_key_id, key_id, open_sealed, seal
from crypto.envelope import associated_data

from . import vectors

V = vectors()
KEY = bytes(range(32))
OTHER_KEY = bytes(32)
WHERE = {"db": "visits", "doc_id": "6f1c1d0e-5b7a-4c4e-9a51-0d6a2b9f3e11", "rev": "1-967a00dff5e02add41819138abb3284d"}
SAMPLE = seal(KEY, b"bp=120/80", **WHERE, _nonce=bytes(12))


def spec_aad(key: bytes, case: dict[str, Any]) -> bytes:
    """Build the associated data from the format's description, independently of crypto.envelope."""
    parts = [case["db"], case["doc_id"], case["rev"]] + ([case["attachment"]] if case["attachment"] else [])
    out = b"WSE\x01" + key_id(key) + (b"\x01" if case["attachment"] else b"\x00")
    for part in parts:
        out += struct.pack(">I", len(part.encode())) + part.encode()
    return out


@pytest.mark.parametrize("case", V["key_id"], ids=lambda c: c["key"][:8])
def test_key_id_matches_known_answer_and_its_recipe(case: dict[str, str]) -> None:
    key = bytes.fromhex(case["key"])
    ident = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"wasl/key-id/v1").derive(key)
    assert key_id(key).hex() == case["key_id"] == hashlib.sha256(ident).digest()[:8].hex()
    assert key_id(key) != hashlib.sha256(key).digest()[:8]  # never a hash of the key itself


@pytest.mark.parametrize("case", V["envelope"], ids=lambda c: c["name"])
def test_seal_matches_known_answer(case: dict[str, Any]) -> None:
    key, nonce, plaintext = bytes.fromhex(case["key"]), bytes.fromhex(case["nonce"]), bytes.fromhex(case["plaintext"])
    where = {"db": case["db"], "doc_id": case["doc_id"], "rev": case["rev"], "attachment": case["attachment"]}
    sealed = seal(key, plaintext, **where, _nonce=nonce)
    assert sealed.hex() == case["envelope"]
    assert spec_aad(key, case).hex() == case["aad"]
    # Cross-check against cryptography's AESGCM directly: header, nonce, then GCM over the AAD above.
    direct = b"WSE\x01" + key_id(key) + nonce + AESGCM(key).encrypt(nonce, plaintext, spec_aad(key, case))
    assert sealed == direct
    assert open_sealed(key, bytes.fromhex(case["envelope"]), **where) == plaintext


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 4096, 1 << 20])
def test_seal_round_trips_any_size(size: int) -> None:
    plaintext = bytes(i % 251 for i in range(size))
    sealed = seal(KEY, plaintext, **WHERE)
    assert len(sealed) == size + 40
    assert open_sealed(KEY, sealed, **WHERE) == plaintext


def test_seal_takes_a_fresh_nonce_each_time() -> None:
    first, second = seal(KEY, b"same", **WHERE), seal(KEY, b"same", **WHERE)
    assert first[12:24] != second[12:24] and first != second


def test_seal_and_open_accept_bytes_like_values() -> None:
    sealed = seal(bytearray(KEY), memoryview(b"abc"), **WHERE)
    assert open_sealed(memoryview(KEY), bytearray(sealed), **WHERE) == b"abc"


@pytest.mark.parametrize("position", range(len(SAMPLE)))
def test_open_sealed_refuses_every_flipped_byte(position: int) -> None:
    tampered = bytearray(SAMPLE)
    tampered[position] ^= 0x01
    with pytest.raises(DecryptionError):
        open_sealed(KEY, bytes(tampered), **WHERE)


@pytest.mark.parametrize("length", [*range(len(SAMPLE)), len(SAMPLE) + 1])
def test_open_sealed_refuses_truncated_or_extended_envelopes(length: int) -> None:
    cut = (SAMPLE + b"\x00")[:length]
    with pytest.raises(DecryptionError):
        open_sealed(KEY, cut, **WHERE)


@pytest.mark.parametrize("moved", [
    {"db": "referrals"}, {"doc_id": "6f1c1d0e-5b7a-4c4e-9a51-0d6a2b9f3e12"},
    {"rev": "2-967a00dff5e02add41819138abb3284d"}, {"attachment": "photo-1.jpg"},
], ids=["other-db", "other-doc", "other-rev", "as-attachment"])
def test_open_sealed_refuses_a_moved_ciphertext(moved: dict[str, str]) -> None:
    with pytest.raises(DecryptionError):
        open_sealed(KEY, SAMPLE, **{**WHERE, **moved})


def test_open_sealed_refuses_an_attachment_read_as_another_or_as_the_body() -> None:
    photo = seal(KEY, b"jpeg", **WHERE, attachment="a.jpg")
    for attachment in ("b.jpg", None):
        with pytest.raises(DecryptionError):
            open_sealed(KEY, photo, **WHERE, attachment=attachment)


@pytest.mark.parametrize(("sealed_as", "opened_as"), [
    (("a/b", "c", "1-x"), ("a", "b/c", "1-x")),
    (("a", "b/c", "1-x"), ("a", "b", "c/1-x")),
    (("visits", "ab", "1-x"), ("visitsa", "b", "1-x")),
    (("a\x00", "b", "1-x"), ("a", "\x00b", "1-x")),
], ids=["slash-db-doc", "slash-doc-rev", "shifted-boundary", "nul-boundary"])
def test_associated_data_is_unambiguous(sealed_as: tuple[str, str, str], opened_as: tuple[str, str, str]) -> None:
    header = b"WSE\x01" + key_id(KEY)
    first = dict(zip(("db", "doc_id", "rev"), sealed_as))
    second = dict(zip(("db", "doc_id", "rev"), opened_as))
    assert associated_data(header, **first) != associated_data(header, **second)
    with pytest.raises(DecryptionError):
        open_sealed(KEY, seal(KEY, b"x", **first), **second)


def test_open_sealed_refuses_another_key() -> None:
    with pytest.raises(DecryptionError):
        open_sealed(OTHER_KEY, SAMPLE, **WHERE)


def test_open_sealed_refuses_another_keys_envelope_with_this_keys_id() -> None:
    forged = SAMPLE[:4] + key_id(OTHER_KEY) + SAMPLE[12:]  # header claims the other key; the tag says no
    with pytest.raises(DecryptionError):
        open_sealed(OTHER_KEY, forged, **WHERE)


def test_decryption_error_is_one_opaque_error() -> None:
    failures = []
    for key, envelope, where in [(OTHER_KEY, SAMPLE, WHERE), (KEY, SAMPLE[:-1], WHERE),
                                 (KEY, b"XSE" + SAMPLE[3:], WHERE), (KEY, SAMPLE, {**WHERE, "rev": "9-z"})]:
        with pytest.raises(DecryptionError) as caught:
            open_sealed(key, envelope, **where)
        failures.append(caught.value)
    assert {str(error) for error in failures} == {"decryption failed"}
    assert all(error.__cause__ is None and error.__suppress_context__ for error in failures if error.__context__)


def test_envelope_key_id_reads_the_header_without_a_secret() -> None:
    assert envelope_key_id(SAMPLE) == key_id(KEY)
    for junk in (b"", b"WSE\x02" + SAMPLE[4:], SAMPLE[:39]):
        with pytest.raises(DecryptionError):
            envelope_key_id(junk)


@pytest.mark.parametrize(("change", "error"), [
    ({"key": "k" * 32}, TypeError), ({"key": bytes(16)}, ValueError), ({"key": bytes(33)}, ValueError),
    ({"plaintext": "text"}, TypeError), ({"db": ""}, ValueError), ({"doc_id": None}, TypeError),
    ({"rev": 1}, TypeError), ({"attachment": ""}, ValueError), ({"_nonce": bytes(8)}, ValueError),
    ({"_nonce": "n" * 12}, TypeError), ({"doc_id": "\ud800"}, ValueError),
])
def test_seal_misuse_raises_type_or_value_error(change: dict[str, Any], error: type[Exception]) -> None:
    arguments = {"key": KEY, "plaintext": b"x", **WHERE, **change}
    with pytest.raises(error):
        seal(**arguments)


@pytest.mark.parametrize(("change", "error"), [
    ({"key": None}, TypeError), ({"key": bytes(31)}, ValueError), ({"envelope": SAMPLE.hex()}, TypeError),
    ({"db": ""}, ValueError), ({"rev": b"1-x"}, TypeError),
])
def test_open_sealed_misuse_raises_type_or_value_error(change: dict[str, Any], error: type[Exception]) -> None:
    arguments = {"key": KEY, "envelope": SAMPLE, **WHERE, **change}
    with pytest.raises(error):
        open_sealed(**arguments)
