"""The keyring: PIN wraps, PIN change, recovery to the organisation's key, data-key rotation with resume."""
from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from crypto import (DecryptionError, KdfParams, Keyring, change_pin, create_keyring, envelope_key_id,
                    finish_rotation, generate_recovery_keypair, key_id, load_recovery_public_key, open_sealed,
                    recover_data_key, reencrypt, retiring_key, rotate_data_key, seal, set_recovery, unlock,
                    wrap_for_recovery)

from . import vectors

V = vectors()
RING = V["keyring"]
PIN = "246810"


def cheap() -> KdfParams:
    """Return fast Argon2id parameters with a fresh salt (tests only; new_params never goes this low)."""
    return KdfParams(memory_kib=64, iterations=1, lanes=1, salt=os.urandom(16))


def reload(ring: Keyring) -> Keyring:
    """Return ``ring`` after a trip through JSON text, as a device store would persist it."""
    return Keyring.from_json(json.loads(json.dumps(ring.to_json())))


def test_stored_keyring_known_answer_unlocks_and_recovers() -> None:
    ring = Keyring.from_json(RING["keyring"])
    assert unlock(ring, RING["pin"]).hex() == RING["data_key"]
    assert recover_data_key(ring, bytes.fromhex(RING["recovery_private_key"])).hex() == RING["data_key"]
    assert ring.to_json() == RING["keyring"]


def test_stored_keyring_follows_the_documented_constructions() -> None:
    ring, data_key = Keyring.from_json(RING["keyring"]), bytes.fromhex(RING["data_key"])
    params = ring.pin.params
    kek = Argon2id(salt=params.salt, length=32, iterations=params.iterations, lanes=params.lanes,
                   memory_cost=params.memory_kib).derive(PIN.encode())
    aad = b"wasl/pin-wrap/v1" + ring.key_id
    assert AESGCM(kek).decrypt(ring.pin.nonce, ring.pin.ciphertext, aad) == data_key
    assert ring.recovery is not None
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    private = X25519PrivateKey.from_private_bytes(bytes.fromhex(RING["recovery_private_key"]))
    assert suite.decrypt(ring.recovery.ciphertext, private, info=b"wasl/recovery-wrap/v1" + ring.key_id) == data_key


def test_stored_rotating_keyring_known_answer() -> None:
    case = RING["rotating"]
    ring = Keyring.from_json(case["keyring"])
    data_key = unlock(ring, PIN)
    assert data_key.hex() == case["data_key"]
    old = retiring_key(ring, data_key)
    assert old is not None and old.hex() == case["retiring_key"] == RING["data_key"]


def test_create_keyring_with_default_costs_unlocks() -> None:
    data_key, ring = create_keyring(PIN)
    assert (ring.pin.params.memory_kib, ring.pin.params.iterations, ring.pin.params.lanes) == (65536, 3, 4)
    assert len(data_key) == 32 and ring.key_id == key_id(data_key)
    assert ring.recovery is None and ring.retiring is None
    assert unlock(reload(ring), PIN) == data_key


def test_create_keyring_makes_a_new_random_key_each_time() -> None:
    first, second = create_keyring(PIN, params=cheap())[0], create_keyring(PIN, params=cheap())[0]
    assert first != second


def test_keyring_json_holds_no_secret() -> None:
    data_key, ring = create_keyring(PIN, params=cheap())
    text = json.dumps(ring.to_json())
    assert data_key.hex() not in text and PIN not in text


@pytest.mark.parametrize("wrong", ["246811", "24681", "2468100", " 246810", "abcdef"])
def test_unlock_refuses_a_wrong_pin(wrong: str) -> None:
    _, ring = create_keyring(PIN, params=cheap())
    with pytest.raises(DecryptionError):
        unlock(ring, wrong)


def flip_b64(value: str) -> str:
    """Return base64 text with one bit of its first byte flipped."""
    raw = bytearray(base64.b64decode(value))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("where", ["pin.ciphertext", "pin.nonce", "pin.kdf.salt", "pin.kdf.iterations", "key_id"])
def test_unlock_refuses_a_tampered_keyring(where: str) -> None:
    _, ring = create_keyring(PIN, params=cheap())
    data = ring.to_json()
    *path, last = where.split(".")
    node = data
    for step in path:
        node = node[step]
    if last == "iterations":
        node[last] += 1
    elif last == "key_id":
        node[last] = "%016x" % (int(node[last], 16) ^ 1)
    else:
        node[last] = flip_b64(node[last])
    with pytest.raises(DecryptionError):
        unlock(Keyring.from_json(data), PIN)


@pytest.mark.parametrize("change", [
    {"version": 2}, {"version": True}, {"version": "1"}, {"key_id": "00"}, {"key_id": "ABCDEF0123456789"},
    {"pin": None}, {"pin": {}}, {"recovery": {"scheme": "rsa"}}, {"retiring": []}, {"extra": 1},
    {"pin": {"kdf": {}, "nonce": "", "ciphertext": ""}},
])
def test_keyring_from_json_refuses_malformed_data(change: dict[str, Any]) -> None:
    _, ring = create_keyring(PIN, params=cheap())
    with pytest.raises(ValueError):
        Keyring.from_json({**ring.to_json(), **change})


def test_change_pin_rewraps_the_same_key_and_the_old_pin_stops_working() -> None:
    recovery_private, recovery_public = generate_recovery_keypair()
    data_key, ring = create_keyring(PIN, recovery_public, params=cheap())
    sealed = seal(data_key, b"visit", db="v", doc_id="d", rev="1-a")
    raised = KdfParams(memory_kib=128, iterations=2, lanes=1, salt=bytes(16))
    changed = reload(change_pin(ring, PIN, "horse battery staple", raised))
    assert unlock(changed, "horse battery staple") == data_key
    assert changed.pin.params == raised and changed.key_id == ring.key_id and changed.recovery == ring.recovery
    assert open_sealed(unlock(changed, "horse battery staple"), sealed, db="v", doc_id="d", rev="1-a") == b"visit"
    assert recover_data_key(changed, recovery_private) == data_key
    with pytest.raises(DecryptionError):
        unlock(changed, PIN)


def test_change_pin_takes_a_fresh_salt_at_default_costs() -> None:
    data_key, ring = create_keyring(PIN, params=cheap())
    changed = change_pin(ring, PIN, "135790")
    assert changed.pin.params.salt != ring.pin.params.salt and changed.pin.params.memory_kib == 65536
    assert unlock(changed, "135790") == data_key


def test_change_pin_refuses_a_wrong_old_pin_or_a_short_new_one() -> None:
    _, ring = create_keyring(PIN, params=cheap())
    with pytest.raises(DecryptionError):
        change_pin(ring, "000000", "135790", cheap())
    with pytest.raises(ValueError):
        change_pin(ring, PIN, "123", cheap())


@pytest.mark.parametrize(("pin", "recovery", "error"), [
    ("123", None, ValueError), ("", None, ValueError), (123456, None, TypeError), (PIN, "key", TypeError),
    (PIN, bytes(31), ValueError), (PIN, bytes(32), ValueError),  # all zeros: a low-order point
])
def test_create_keyring_misuse(pin: Any, recovery: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        create_keyring(pin, recovery, params=cheap())


def test_unlock_misuse() -> None:
    _, ring = create_keyring(PIN, params=cheap())
    with pytest.raises(TypeError):
        unlock(ring.to_json(), PIN)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        unlock(ring, 246810)  # type: ignore[arg-type]


@pytest.mark.parametrize("form", ["raw", "pem", "encrypted-pem"])
def test_recovery_with_the_right_private_key_works(form: str) -> None:
    passphrase = "org recovery passphrase" if form == "encrypted-pem" else None
    private_pem, public_raw = generate_recovery_keypair(passphrase)
    private = serialization.load_pem_private_key(private_pem, None if passphrase is None else passphrase.encode())
    assert isinstance(private, X25519PrivateKey)
    key_material = private.private_bytes_raw() if form == "raw" else private_pem
    data_key, ring = create_keyring(PIN, public_raw, params=cheap())
    assert recover_data_key(reload(ring), key_material, passphrase=passphrase) == data_key


def test_recovery_with_another_private_key_fails() -> None:
    _, public_raw = generate_recovery_keypair()
    other_pem, _ = generate_recovery_keypair()
    _, ring = create_keyring(PIN, public_raw, params=cheap())
    with pytest.raises(DecryptionError):
        recover_data_key(ring, other_pem)


def test_recovery_refuses_a_tampered_wrap_or_key_id() -> None:
    private_pem, public_raw = generate_recovery_keypair()
    _, ring = create_keyring(PIN, public_raw, params=cheap())
    data = ring.to_json()
    for tampered in ({**data, "recovery": {**data["recovery"], "ciphertext": flip_b64(data["recovery"]["ciphertext"])}},
                     {**data, "key_id": "%016x" % (int(data["key_id"], 16) ^ 1)}):
        with pytest.raises(DecryptionError):
            recover_data_key(Keyring.from_json(tampered), private_pem)


def test_recovery_misuse() -> None:
    private_pem, public_raw = generate_recovery_keypair("right")
    _, ring = create_keyring(PIN, public_raw, params=cheap())
    with pytest.raises(ValueError):
        recover_data_key(ring, private_pem, passphrase="wrong")
    with pytest.raises(ValueError):
        recover_data_key(ring, private_pem)  # encrypted PEM without its passphrase
    with pytest.raises(ValueError):
        recover_data_key(create_keyring(PIN, params=cheap())[1], private_pem, passphrase="right")
    ed_pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption())
    with pytest.raises(ValueError):
        recover_data_key(ring, ed_pem)


def test_recovery_public_key_is_read_raw_or_as_pem() -> None:
    private_pem, public_raw = generate_recovery_keypair()
    private = serialization.load_pem_private_key(private_pem, None)
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    assert load_recovery_public_key(public_pem) == load_recovery_public_key(public_raw) == public_raw
    ed_public = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for bad in (ed_public, b"-----BEGIN PUBLIC KEY-----\nnonsense\n-----END PUBLIC KEY-----\n", bytes(33)):
        with pytest.raises(ValueError):
            load_recovery_public_key(bad)


def test_each_recovery_wrap_uses_a_fresh_ephemeral_key() -> None:
    _, public_raw = generate_recovery_keypair()
    data_key = bytes(range(32))
    first, second = wrap_for_recovery(data_key, public_raw), wrap_for_recovery(data_key, public_raw)
    assert first.ciphertext[:32] != second.ciphertext[:32]  # HPKE's enc: the ephemeral public key


def test_set_recovery_adds_replaces_and_drops_the_wrap() -> None:
    first_pem, first_public = generate_recovery_keypair()
    second_pem, second_public = generate_recovery_keypair()
    data_key, ring = create_keyring(PIN, params=cheap())
    ring = set_recovery(ring, data_key, first_public)
    assert recover_data_key(ring, first_pem) == data_key
    ring = set_recovery(ring, data_key, second_public)
    assert recover_data_key(ring, second_pem) == data_key
    with pytest.raises(DecryptionError):
        recover_data_key(ring, first_pem)
    assert set_recovery(ring, data_key, None).recovery is None
    with pytest.raises(ValueError):
        set_recovery(ring, bytes(32), first_public)


DOCS = [(f"doc-{i}", f"{i % 3 + 1}-abc", None if i % 4 else "photo.jpg") for i in range(12)]


def sealed_store(data_key: bytes) -> dict[tuple[str, str, str | None], bytes]:
    """Return a toy device store: (doc id, rev, attachment) -> envelope."""
    return {(doc, rev, part): seal(data_key, f"{doc}:{rev}:{part}".encode(), db="visits", doc_id=doc, rev=rev,
                                   attachment=part) for doc, rev, part in DOCS}


def reencrypt_some(store: dict[tuple[str, str, str | None], bytes], old: bytes, new: bytes, limit: int) -> None:
    """Re-encrypt up to ``limit`` envelopes in place, as an interrupted pass would."""
    for done, ((doc, rev, part), envelope) in enumerate(list(store.items())):
        if done == limit:
            return
        store[(doc, rev, part)] = reencrypt(old, new, envelope, db="visits", doc_id=doc, rev=rev, attachment=part)


def test_rotation_resumes_after_an_interruption() -> None:
    recovery_pem, recovery_public = generate_recovery_keypair()
    first_key, ring = create_keyring(PIN, recovery_public, params=cheap())
    store = sealed_store(first_key)
    old, new, rotating = rotate_data_key(ring, PIN)
    assert old == first_key and new != old and rotating.retiring is not None
    reencrypt_some(store, old, new, limit=5)  # the tablet's battery dies here
    resumed = reload(rotating)
    new_again = unlock(resumed, PIN)
    old_again = retiring_key(resumed, new_again)
    assert (old_again, new_again) == (old, new)
    assert recover_data_key(resumed, recovery_pem) == new  # the recovery wrap follows the new key
    assert old_again is not None
    reencrypt_some(store, old_again, new_again, limit=len(store))
    assert {envelope_key_id(envelope) for envelope in store.values()} == {key_id(new)}
    for (doc, rev, part), envelope in store.items():
        plaintext = open_sealed(new, envelope, db="visits", doc_id=doc, rev=rev, attachment=part)
        assert plaintext == f"{doc}:{rev}:{part}".encode()
    finished = finish_rotation(resumed)
    assert finished.retiring is None and retiring_key(finished, new) is None and unlock(finished, PIN) == new


def test_reencrypt_is_idempotent_and_still_authenticates() -> None:
    old, new = bytes(range(32)), bytes(range(1, 33))
    where = {"db": "visits", "doc_id": "d", "rev": "1-a"}
    once = reencrypt(old, new, seal(old, b"x", **where), **where)
    assert reencrypt(old, new, once, **where) == once
    with pytest.raises(DecryptionError):
        reencrypt(old, new, once, **{**where, "rev": "2-b"})
    with pytest.raises(DecryptionError):
        reencrypt(old, new, seal(bytes(32), b"x", **where), **where)  # a third key: neither old nor new


def test_rotation_refuses_a_second_start_or_a_wrong_pin() -> None:
    _, ring = create_keyring(PIN, params=cheap())
    with pytest.raises(DecryptionError):
        rotate_data_key(ring, "000000")
    _, _, rotating = rotate_data_key(ring, PIN)
    with pytest.raises(ValueError):
        rotate_data_key(rotating, PIN)
    _, _, again = rotate_data_key(finish_rotation(rotating), PIN)
    assert again.retiring is not None
    with pytest.raises(TypeError):
        rotate_data_key(ring.to_json(), PIN)  # type: ignore[arg-type]


def test_retiring_key_refuses_the_wrong_data_key_or_a_tampered_wrap() -> None:
    _, ring = create_keyring(PIN, params=cheap())
    _, new, rotating = rotate_data_key(ring, PIN)
    with pytest.raises(ValueError):
        retiring_key(rotating, bytes(32))
    data = rotating.to_json()
    data["retiring"]["ciphertext"] = flip_b64(data["retiring"]["ciphertext"])
    with pytest.raises(DecryptionError):
        retiring_key(Keyring.from_json(data), new)
