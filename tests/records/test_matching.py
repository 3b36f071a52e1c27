"""Duplicate-patient scoring (sync.records.matching): names across transliterations, each field's effect."""
from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.records.matching import (NAME_NEUTRAL, SAME_NAME, THRESHOLD, WEIGHTS, blocking_keys, name_similarity,
                                   name_tokens, phone_digits, score)

TODAY = date(2026, 6, 1)
BASE = {"type": "patient", "given_name": "Mohammed", "family_name": "Hassan", "sex": "male",
        "birth_date": "1980-03-04", "updated_at": "2026-01-10T08:00:00Z"}


def patient(**changes: Any) -> dict[str, Any]:
    """BASE with ``changes``; a value of None removes the field."""
    doc = {**BASE, **changes}
    return {k: v for k, v in doc.items() if v is not None}


SAME_NAMES = [
    ("Mohammed", "Muhammad"), ("Mohammed", "Mohamed"), ("Mohammed", "Mohamad"), ("Mohammed", "Mohammad"),
    ("Muhammad", "Mohamed"), ("Mohamad", "Mohammad"), ("Fatima", "Fatma"), ("Fatima", "Fatimah"),
    ("Fatma", "Fatimah"), ("Aisha", "Ayesha"), ("Aïcha", "Aisha"), ("Yusuf", "Youssef"), ("Maryam", "Mariam"),
    ("Omar", "Umar"), ("Ibrahim", "Ebrahim"), ("Hussein", "Husain"), ("Zainab", "Zeinab"), ("Ahmed", "Ahmad"),
    ("Khadija", "Khadeeja"), ("Khadija", "Kadija"), ("Abd al-Rahman", "Abdulrahman"),
    ("Abdul Rahman", "Abdelrahman"), ("Abdurrahman", "Abd Al Rahman"), ("Abdullah", "Abdallah"),
    ("Sa'id", "Said"), ("Al-Hashimi", "Hashimi"), ("El Sayed", "Elsayed"), ("Otieno", "Otiano"),
    ("MOHAMMED", "mohammed"), ("José", "Jose"),
]
DIFFERENT_NAMES = [
    ("Fatima", "Khadija"), ("Ahmed", "Mahmoud"), ("Mohammed", "Mahmoud"), ("Ahmed", "Hamid"), ("Ali", "Eli"),
    ("Halima", "Amina"), ("Grace", "Mary"), ("Mohammed Ali", "Mohammed Hassan"), ("Abdi", "Abdullah"),
]


@pytest.mark.parametrize(("a", "b"), SAME_NAMES)
def test_name_similarity_transliterations_are_the_same_name(a: str, b: str) -> None:
    assert name_similarity(a, b) >= SAME_NAME
    assert name_similarity(b, a) == name_similarity(a, b)


@pytest.mark.parametrize(("a", "b"), SAME_NAMES)
def test_blocking_keys_are_shared_by_transliterations(a: str, b: str) -> None:
    assert blocking_keys(patient(given_name=a)) & blocking_keys(patient(given_name=b))
    assert blocking_keys(patient(family_name=a)) & blocking_keys(patient(family_name=b))


@pytest.mark.parametrize(("a", "b"), SAME_NAMES[:12])
def test_score_transliterated_names_with_the_same_birth_date_are_listed(a: str, b: str) -> None:
    match = score(patient(given_name=a), patient(given_name=b), TODAY)
    assert match.score >= THRESHOLD
    assert match.reasons["given_name"] == WEIGHTS["given_name"][0]


@pytest.mark.parametrize(("a", "b"), DIFFERENT_NAMES)
def test_name_similarity_different_names_count_against(a: str, b: str) -> None:
    similarity = name_similarity(a, b)
    assert similarity is not None and similarity < NAME_NEUTRAL
    assert score(patient(given_name=a), patient(given_name=b), TODAY).reasons["given_name"] < 0


@pytest.mark.parametrize(("a", "b"), [("Fatima", "Khadija"), ("Ahmed", "Mahmoud"), ("Mohammed", "Mahmoud")])
def test_blocking_keys_keep_different_names_apart(a: str, b: str) -> None:
    assert not blocking_keys(patient(given_name=a)) & blocking_keys(patient(given_name=b))


@pytest.mark.parametrize(("name", "tokens"), [
    ("  Abd al-Rahman  ", ("abdrahman",)), ("Mohammed bin Salem", ("mohamed", "salem")),
    ("Fatimah", ("fatima",)), ("Al", ("al",)), ("", ()), (None, ()), ("محمد", ("محمد",)),
])
def test_name_tokens_fold_spellings_and_drop_particles(name: Any, tokens: tuple[str, ...]) -> None:
    assert name_tokens(name) == tokens


def test_name_similarity_partial_and_missing_names() -> None:
    assert name_similarity("Mohammed Ali", "Mohammed") >= SAME_NAME  # a middle name left out
    assert name_similarity("Abu Bakr", "Abubakar") >= SAME_NAME  # written as one word
    assert name_similarity("Mohammed", None) is None and name_similarity("", "Ali") is None


# (what changes in b, the component, its contribution). a is BASE, b is BASE with the change.
COMPONENTS = [
    ({}, "birth_date", 0.25),
    ({"birth_date": "1980-03-20"}, "birth_date", 0.15),             # within a month
    ({"birth_date": "1980-04-03"}, "birth_date", 0.15),             # day and month swapped
    ({"birth_date": "1981-03-04"}, "birth_date", 0.15),             # same day, a year off
    ({"birth_date": "1981-09-04"}, "birth_date", 0.0),              # within two years
    ({"birth_date": "1990-03-04"}, "birth_date", -0.30),
    ({"birth_date": None, "estimated_age_years": 45}, "age", 0.10),  # 46.2 years on TODAY, 45 in Jan 2026
    ({"birth_date": None, "estimated_age_years": 37}, "age", 0.0),
    ({"birth_date": None, "estimated_age_years": 30}, "age", -0.30),
    ({"sex": "female"}, "sex", -0.35),
    ({}, "sex", 0.05),
    ({"family_name": "Hasan"}, "family_name", 0.20),
    ({"family_name": "Okonkwo"}, "family_name", -0.10),
    ({"given_name": "Muhammad"}, "given_name", 0.30),
]


@pytest.mark.parametrize(("change", "component", "contribution"), COMPONENTS)
def test_score_each_component_contributes_its_weight(change: dict[str, Any], component: str,
                                                     contribution: float) -> None:
    match = score(patient(), patient(**change), TODAY)
    assert match.reasons[component] == pytest.approx(contribution)
    assert match.score == pytest.approx(min(1.0, max(0.0, sum(match.reasons.values()))))


# Fields only one side has are not compared; a field both have adds its weight (or its penalty).
@pytest.mark.parametrize(("field", "a_value", "b_value", "contribution"), [
    ("household_id", "hh-1", "hh-1", 0.15), ("household_id", "hh-1", "hh-2", 0.0),
    ("phone", "+254 712 345 678", "+254712345678", 0.15), ("phone", "+254 712 345 678", "+254 712 345 679", 0.0),
    ("national_id", "AB-123", "ab123", 0.45), ("national_id", "AB-123", "AB-124", -0.50),
])
def test_score_shared_fields(field: str, a_value: str, b_value: str, contribution: float) -> None:
    component = {"household_id": "household"}.get(field, field)
    alone = score(patient(**{field: a_value}), patient(), TODAY)
    assert component not in alone.reasons
    both = score(patient(**{field: a_value}), patient(**{field: b_value}), TODAY)
    assert both.reasons[component] == contribution
    assert both.score == pytest.approx(min(1.0, max(0.0, alone.score + contribution)))


def test_score_sex_other_or_unknown_is_not_compared() -> None:
    assert "sex" not in score(patient(sex="unknown"), patient(sex="female"), TODAY).reasons
    assert "sex" not in score(patient(sex="other"), patient(), TODAY).reasons


def test_score_estimated_age_counts_from_when_it_was_estimated() -> None:
    # 40 when recorded in 2016: 50 in 2026, the age of someone born in 1976.
    then = patient(birth_date=None, estimated_age_years=40, updated_at="2016-06-01T00:00:00+03:00")
    assert score(then, patient(birth_date="1976-01-01"), TODAY).reasons["age"] == WEIGHTS["age"][0]
    assert score(then, patient(birth_date="1996-01-01"), TODAY).reasons["age"] == WEIGHTS["age"][1]


def test_score_swapped_names_still_match() -> None:
    match = score(patient(), patient(given_name="Hassan", family_name="Mohammed"), TODAY)
    assert set(match.reasons) == {"names_swapped", "birth_date", "sex"}
    assert match.reasons["names_swapped"] == pytest.approx(0.45)
    assert match.score >= THRESHOLD


@pytest.mark.parametrize(("a", "b"), [
    # sisters in one household, sharing a phone
    ({"given_name": "Fatima", "sex": "female", "household_id": "h", "phone": "+254700000001"},
     {"given_name": "Khadija", "sex": "female", "household_id": "h", "phone": "+254700000001",
      "birth_date": "1984-07-01"}),
    # a mother and the daughter named after her
    ({"given_name": "Fatima", "sex": "female", "household_id": "h", "birth_date": "1960-01-01"},
     {"given_name": "Fatma", "sex": "female", "household_id": "h", "birth_date": "1985-01-01"}),
    # the same name and birth date, but two national ids
    ({"national_id": "12345678"}, {"national_id": "87654321", "given_name": "Muhammad"}),
])
def test_score_different_people_are_not_listed(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert score(patient(**a), patient(**b), TODAY).score < THRESHOLD


def test_score_same_national_id_outweighs_a_misspelt_name() -> None:
    a = patient(national_id="A1", household_id="h")
    match = score(a, patient(given_name="Mohd", national_id="a-1", household_id="h"), TODAY)
    assert match.score >= THRESHOLD and match.reasons["national_id"] == WEIGHTS["national_id"][0]


def test_blocking_keys_meet_on_household_phone_national_id_and_swapped_names() -> None:
    a = patient(household_id="hh-9", phone="+254 712 345 678", national_id="X-1")
    assert {"h:hh-9", "p:712345678", "i:x1"} <= blocking_keys(a)
    assert blocking_keys(patient(given_name="Hassan", family_name="Mohammed")) & blocking_keys(patient())
    assert not blocking_keys(patient(given_name="Khadija", family_name="Okonkwo")) & blocking_keys(patient())
    assert blocking_keys({"type": "patient"}) == set()


def test_phone_digits_ignore_formatting_and_short_numbers() -> None:
    assert phone_digits("+254 712-345-678") == phone_digits("+254712345678") == "712345678"
    assert phone_digits("+123") is None and phone_digits(None) is None


NAMES = st.sampled_from(["Mohammed", "Muhammad", "Mahmoud", "Fatima", "Fatma", "Khadija", "Abd al-Rahman",
                         "Abdulrahman", "Ali Hassan", "Hassan", "Omar", "Umar", "Grace", ""]) | st.text(max_size=12)
DATES = st.dates(min_value=date(1900, 1, 1), max_value=TODAY).map(date.isoformat)
PATIENTS = st.fixed_dictionaries({}, optional={
    "given_name": NAMES, "family_name": NAMES, "sex": st.sampled_from(["female", "male", "other", "unknown"]),
    "birth_date": DATES, "estimated_age_years": st.integers(0, 130) | st.floats(0, 130),
    "updated_at": DATES.map(lambda d: d + "T12:00:00Z"), "household_id": st.sampled_from(["h1", "h2"]),
    "phone": st.sampled_from(["+254 712 345 678", "+254712345678", "+1 555 0100"]),
    "national_id": st.sampled_from(["A1", "a-1", "B2"]),
})


@settings(max_examples=300, deadline=None)
@given(PATIENTS, PATIENTS)
def test_score_is_symmetric_and_bounded(a: dict[str, Any], b: dict[str, Any]) -> None:
    forward, backward = score(a, b, TODAY), score(b, a, TODAY)
    assert forward == backward
    assert 0.0 <= forward.score <= 1.0
    assert score(a, a, TODAY).score >= forward.score  # nobody resembles a patient more than the patient
