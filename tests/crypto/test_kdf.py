"""Argon2id key derivation: known answers, parameters in JSON, normalisation of PINs, misuse."""
from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from crypto import KdfParams, derive_key, new_params
from crypto.kdf import MIN_ITERATIONS, MIN_MEMORY_KIB

from . import vectors

V = vectors()
SALT = bytes(range(16))
CHEAP = KdfParams(memory_kib=64, iterations=1, lanes=1, salt=SALT)  # tests only; new_params never goes this low


def test_library_argon2id_matches_rfc9106_vector() -> None:
    case = V["rfc9106_argon2id"]
    kdf = Argon2id(salt=bytes.fromhex(case["salt"]), length=32, iterations=case["iterations"], lanes=case["lanes"],
                   memory_cost=case["memory_kib"], secret=bytes.fromhex(case["secret"]), ad=bytes.fromhex(case["ad"]))
    assert kdf.derive(bytes.fromhex(case["password"])).hex() == case["tag"]


@pytest.mark.parametrize("case", V["argon2id"], ids=lambda c: f"{c['kdf']['memory_kib']}KiB")
def test_derive_key_matches_known_answer(case: dict[str, Any]) -> None:
    params = KdfParams.from_json(case["kdf"])
    key = derive_key(case["secret"], params)
    assert key.hex() == case["key"]
    direct = Argon2id(salt=params.salt, length=32, iterations=params.iterations, lanes=params.lanes,
                      memory_cost=params.memory_kib).derive(case["secret"].encode())
    assert key == direct


def test_new_params_are_rfc9106_second_option_with_a_fresh_salt() -> None:
    first, second = new_params(), new_params()
    assert (first.name, first.memory_kib, first.iterations, first.lanes) == ("argon2id", 65536, 3, 4)
    assert len(first.salt) == 16 and first.salt != second.salt


def test_new_params_can_raise_costs() -> None:
    raised = new_params(memory_kib=128 * 1024, iterations=4, lanes=2)
    assert (raised.memory_kib, raised.iterations, raised.lanes) == (131072, 4, 2)


@pytest.mark.parametrize(("costs", "error"), [
    ({"memory_kib": MIN_MEMORY_KIB - 1}, ValueError), ({"iterations": MIN_ITERATIONS - 1}, ValueError),
    ({"lanes": 0}, ValueError), ({"memory_kib": 2 * 1024 * 1024}, ValueError), ({"memory_kib": "65536"}, TypeError),
    ({"iterations": True}, TypeError),
])
def test_new_params_refuses_low_costs_or_wrong_types(costs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        new_params(**costs)


def test_params_round_trip_through_json() -> None:
    params = new_params()
    assert KdfParams.from_json(params.to_json()) == params
    assert params.to_json()["name"] == "argon2id"


@pytest.mark.parametrize("change", [
    {"name": "scrypt"}, {"memory_kib": 4 * 1024 * 1024}, {"iterations": 0}, {"lanes": 0}, {"iterations": 1000},
    {"memory_kib": "64"}, {"lanes": True}, {"salt": "not base64!"}, {"salt": "AAAA"}, {"salt": 5},
    {"extra": 1}, {"memory_kib": None},
])
def test_params_from_json_refuses_malformed_or_hostile_values(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        KdfParams.from_json({**CHEAP.to_json(), **change})


def test_params_from_json_refuses_missing_keys() -> None:
    data = CHEAP.to_json()
    del data["salt"]
    with pytest.raises(ValueError):
        KdfParams.from_json(data)
    with pytest.raises(ValueError):
        KdfParams.from_json(["argon2id"])  # type: ignore[arg-type]


@pytest.mark.parametrize(("fields", "error"), [
    ({"salt": "s" * 16}, TypeError), ({"salt": bytes(8)}, ValueError), ({"salt": bytes(65)}, ValueError),
    ({"memory_kib": 7}, ValueError), ({"memory_kib": 16, "lanes": 4}, ValueError), ({"iterations": 2.0}, TypeError),
    ({"name": "argon2i"}, ValueError),
])
def test_params_constructor_misuse(fields: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        KdfParams(**{"memory_kib": 64, "iterations": 1, "lanes": 1, "salt": SALT, **fields})


def test_params_are_immutable_and_keep_bytes() -> None:
    params = KdfParams(memory_kib=64, iterations=1, lanes=1, salt=bytearray(SALT))
    assert type(params.salt) is bytes
    with pytest.raises(AttributeError):
        params.iterations = 9  # type: ignore[misc]


def test_derive_key_depends_on_secret_salt_and_every_cost() -> None:
    base = derive_key("246810", CHEAP)
    assert len(base) == 32
    others = [derive_key("246811", CHEAP), derive_key("246810", KdfParams(64, 1, 1, bytes(16))),
              derive_key("246810", KdfParams(72, 1, 1, SALT)), derive_key("246810", KdfParams(64, 2, 1, SALT)),
              derive_key("246810", KdfParams(64, 1, 2, SALT))]
    assert base not in others and len(set(others)) == len(others)


def test_derive_key_reads_a_pin_typed_with_any_digits_the_same() -> None:
    ascii_pin = derive_key("246810", CHEAP)
    assert derive_key("\u0662\u0664\u0666\u0668\u0661\u0660", CHEAP) == ascii_pin  # Arabic-Indic digits
    assert derive_key("\u06f2\u06f4\u06f6\u06f8\u06f1\u06f0", CHEAP) == ascii_pin  # Persian digits


def test_derive_key_reads_composed_and_decomposed_passphrases_the_same() -> None:
    composed = "caf\u00e9 \u0625\u0644\u0649"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    assert derive_key(composed, CHEAP) == derive_key(decomposed, CHEAP)


@pytest.mark.parametrize(("secret", "params", "error"), [
    (b"246810", CHEAP, TypeError), ("", CHEAP, ValueError), (246810, CHEAP, TypeError),
    ("246810", CHEAP.to_json(), TypeError), ("x" * 1025, CHEAP, ValueError), ("\ud800", CHEAP, ValueError),
])
def test_derive_key_misuse(secret: Any, params: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        derive_key(secret, params)
