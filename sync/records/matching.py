"""Duplicate-patient scoring: names across transliterations, and the other fields' evidence.

Input: two patient bodies as docs/records.md describes them. Output: a ``Match`` whose
score (0..1) is the clamped sum of per-component contributions, so a supervisor can read
why a pair is listed. Names are folded first (diacritics, articles and particles, ``Abd``
forms, doubled letters and common spelling variants, see ``_fold``); two folded words are
the same name when they share a phonetic code (metaphone or NYSIIS, from jellyfish),
otherwise their Jaro similarity counts. Metaphone keeps Mohammed (MHMT) apart from
Mahmoud (MMT), which share every consonant. Jaro, not Jaro-Winkler: Winkler's bonus for
a shared beginning flatters different names on one root (Wanjiku/Wanjiru, Kamau/Kamal),
while real spelling slips mostly keep a code.

The weights are in ``WEIGHTS``; why, in docs/records.md ("Duplicate patients").
"""
from __future__ import annotations

import itertools
import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

import jellyfish

THRESHOLD = 0.75  # pairs scoring at least this are listed for supervisors

# component: (contribution when it agrees, contribution when it disagrees)
WEIGHTS: dict[str, tuple[float, float]] = {
    "given_name": (0.30, -0.30),
    "family_name": (0.20, -0.10),   # women may be recorded under a father's or a husband's name
    "birth_date": (0.25, -0.30),    # both exact dates; a date within a month or with day and month swapped: 0.15
    "age": (0.10, -0.30),           # at least one estimated age
    "sex": (0.05, -0.35),           # half of all pairs agree by chance; a disagreement is strong
    "household": (0.15, 0.0),       # people move and are registered again elsewhere
    "phone": (0.15, 0.0),           # families share one phone
    "national_id": (0.45, -0.50),
}
CLOSE_BIRTH_DATE = 0.15
SWAPPED_NAMES = 0.9     # given and family names entered the other way round keep 90% of their weight
SAME_NAME = 0.95        # similarity of two spellings that share a phonetic code
NAME_AGREES = 0.95      # similarity at which a name gives its full weight ...
NAME_NEUTRAL = 0.88     # ... nothing ...
NAME_DISAGREES = 0.70   # ... and its full penalty
MISSING_TOKEN = 0.97    # "Mohammed Ali" against "Mohammed"

_PARTICLES = frozenset({"al", "el", "ul", "il", "ar", "as", "ash", "ad", "an", "at", "az",
                        "bin", "ben", "ibn", "bint", "binti", "ould", "wad"})
_APOSTROPHES = re.compile("['\u2019\u02bf\u02be`\u00b4]")
_LETTERS = re.compile(r"[^\W\d_]+")
_ABD = re.compile(r"^abd[aeiu][lr]")  # Abdul, Abdel, Abdal, Abdur: not Abdi
_ARTICLE = re.compile(r"^[ae]l(?=[^aeiou][a-z]{3})")


@dataclass(frozen=True)
class Match:
    """A pair's score (0..1) and what each compared component contributed to it."""

    score: float
    reasons: dict[str, float]


def _fold(word: str) -> str:
    """One spelling for a word's common transliteration variants."""
    if not word.isascii():
        return word  # another script: compared as written
    word = _ARTICLE.sub("", word)  # "Alhassan", "Elsayed"
    word = word.replace("ou", "u").replace("oo", "u").replace("ee", "i")
    word = word[:1] + word[1:].replace("y", "i")
    word = re.sub(r"(.)\1+", r"\1", word)
    if len(word) > 3 and word.endswith("h") and word[-2] in "aeiou":
        word = word[:-1]
    return word


def name_tokens(name: Any) -> tuple[str, ...]:
    """The folded words of a name, without articles and particles."""
    return _tokens(name) if isinstance(name, str) else ()


@lru_cache(maxsize=1 << 16)
def _tokens(name: str) -> tuple[str, ...]:
    text = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    words = _LETTERS.findall(_APOSTROPHES.sub("", text.casefold()))
    kept = [_ABD.sub("abd", w) for i, w in enumerate(words) if w not in _PARTICLES or i == len(words) - 1]
    merged: list[str] = []
    for word in kept:
        if merged and merged[-1] == "abd":  # "Abd al-Rahman", "Abdul Rahman": one name
            merged[-1] += word
        else:
            merged.append(word)
    return tuple(_fold(w) for w in merged)


@lru_cache(maxsize=1 << 16)
def _codes(word: str) -> frozenset[str]:
    """Phonetic codes of a folded word (the word itself outside the Latin alphabet)."""
    if not word.isascii():
        return frozenset({word})
    codes = {"m" + jellyfish.metaphone(word), "n" + jellyfish.nysiis(word)}
    # Omar/Umar, Ibrahim/Ebrahim: a leading vowel is a spelling choice, but only names
    # with a long enough code can spare it (Ali and Eli stay apart).
    return frozenset(codes | {c[0] + "A" + c[2:] for c in codes if len(c) > 3 and c[1] in "AEIOU"})


def word_similarity(x: str, y: str) -> float:
    """How alike two folded words are, 0..1 (1: the same name)."""
    if x == y:
        return 1.0
    x, y = sorted((x, y))  # the same answer whichever side a word comes from
    jaro = jellyfish.jaro_similarity(x, y)
    return max(jaro, SAME_NAME) if _codes(x) & _codes(y) else jaro


def name_similarity(a: Any, b: Any) -> float | None:
    """How alike two names are, 0..1, or None when either is missing."""
    if not isinstance(a, str) or not isinstance(b, str):
        return None
    return _name_similarity(*sorted((a, b)))


@lru_cache(maxsize=1 << 16)  # a population repeats a few thousand names in many pairs
def _name_similarity(a: str, b: str) -> float | None:
    ta, tb = name_tokens(a)[:4], name_tokens(b)[:4]
    if not ta or not tb:
        return None
    short, long_ = sorted((ta, tb), key=len)
    best = max(math.fsum(word_similarity(x, y) for x, y in zip(short, perm)) / len(short)
               for perm in itertools.permutations(long_, len(short)))
    if len(short) == len(long_):
        return best
    # Spacing variants ("Abu Bakr", "Abubakar") read best as one word.
    return max(best * MISSING_TOKEN, word_similarity("".join(ta), "".join(tb)))


def _name_part(similarity: float | None, component: str) -> float | None:
    if similarity is None:
        return None
    agree, disagree = WEIGHTS[component]
    if similarity >= NAME_NEUTRAL:
        return agree * min(1.0, (similarity - NAME_NEUTRAL) / (NAME_AGREES - NAME_NEUTRAL))
    return disagree * min(1.0, (NAME_NEUTRAL - similarity) / (NAME_NEUTRAL - NAME_DISAGREES))


def _names(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    parts = {"given_name": _name_part(name_similarity(a.get("given_name"), b.get("given_name")), "given_name"),
             "family_name": _name_part(name_similarity(a.get("family_name"), b.get("family_name")), "family_name")}
    straight = {k: v for k, v in parts.items() if v is not None}
    if len(straight) < 2:
        return straight
    cross = [name_similarity(a.get("given_name"), b.get("family_name")),
             name_similarity(a.get("family_name"), b.get("given_name"))]
    if min(s or 0.0 for s in cross) < NAME_NEUTRAL:  # a swap needs both names to match across
        return straight
    # Each cross pair is weighed as given and as family name, so the sum is symmetric.
    swapped = math.fsum(_name_part(s, c) or 0.0 for s in cross for c in ("given_name", "family_name")) / 2
    if swapped * SWAPPED_NAMES > math.fsum(straight.values()):
        return {"names_swapped": swapped * SWAPPED_NAMES}
    return straight


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value[:10]) if isinstance(value, str) else None
    except ValueError:
        return None


def _age(doc: dict[str, Any], on: date) -> tuple[float, date | None] | None:
    """Age in years on ``on``, and the birth date when it is known exactly."""
    born = _date(doc.get("birth_date"))
    if born is not None:
        return (on - born).days / 365.25, born
    age = doc.get("estimated_age_years")
    if isinstance(age, bool) or not isinstance(age, (int, float)):
        return None
    # The schema keeps no date for the estimate; the last edit stands in for it.
    estimated_on = _date(doc.get("updated_at")) or on
    return age + (on - estimated_on).days / 365.25, None


def _close_dates(x: date, y: date) -> bool:
    """Within a month, day and month swapped, or the same day a year off (typing slips)."""
    return (abs((x - y).days) <= 31 or (x.year == y.year and (x.month, x.day) == (y.day, y.month))
            or ((x.month, x.day) == (y.month, y.day) and abs(x.year - y.year) == 1))


def _birth(a: dict[str, Any], b: dict[str, Any], on: date) -> dict[str, float]:
    age_a, age_b = _age(a, on), _age(b, on)
    if age_a is None or age_b is None:
        return {}
    gap = abs(age_a[0] - age_b[0])
    x, y = age_a[1], age_b[1]
    if x is not None and y is not None:
        agree, disagree = WEIGHTS["birth_date"]
        value = agree if x == y else CLOSE_BIRTH_DATE if _close_dates(x, y) else 0.0 if gap <= 2 else disagree
        return {"birth_date": value}
    agree, disagree = WEIGHTS["age"]
    tolerance = 1 + max(1.0, 0.1 * max(age_a[0], age_b[0]))  # two years for a child, five at forty
    return {"age": agree if gap <= tolerance else 0.0 if gap <= 2 * tolerance else disagree}


def phone_digits(value: Any) -> str | None:
    """The last nine digits of a phone number (a country code written or not), or None."""
    digits = re.sub(r"\D", "", value) if isinstance(value, str) else ""
    return digits[-9:] if len(digits) >= 6 else None


def _id(value: Any) -> str | None:
    text = re.sub(r"[\W_]", "", value).casefold() if isinstance(value, str) else ""
    return text or None


def _same(component: str, x: Any, y: Any) -> dict[str, float]:
    if x is None or y is None or x == "" or y == "":
        return {}
    agree, disagree = WEIGHTS[component]
    return {component: agree if x == y else disagree}


def score(a: dict[str, Any], b: dict[str, Any], today: date | None = None) -> Match:
    """Score how likely two patient bodies describe one person (symmetric in a and b)."""
    on = today or date.today()
    sexes = ("female", "male")
    parts = {**_names(a, b), **_birth(a, b, on),
             **_same("sex", a.get("sex") if a.get("sex") in sexes else None,
                     b.get("sex") if b.get("sex") in sexes else None),
             **_same("household", a.get("household_id"), b.get("household_id")),
             **_same("phone", phone_digits(a.get("phone")), phone_digits(b.get("phone"))),
             **_same("national_id", _id(a.get("national_id")), _id(b.get("national_id")))}
    reasons = {k: round(v, 3) + 0.0 for k, v in parts.items()}  # + 0.0: no -0.0 in reasons
    total = min(1.0, max(0.0, math.fsum(reasons.values())))
    return Match(round(total, 3), reasons)


def blocking_keys(doc: dict[str, Any]) -> set[str]:
    """Short keys that any plausible duplicate of ``doc`` shares with it."""
    given, family = name_tokens(doc.get("given_name")), name_tokens(doc.get("family_name"))
    keys: set[str] = set()
    given_codes: set[str] = set().union(*(_codes(w) for w in {given[0], "".join(given)})) if given else set()
    family_codes: set[str] = set().union(*(_codes(w) for w in {*family[:3], "".join(family)})) if family else set()
    for g in given_codes:
        # Sorted, so names entered the other way round meet; same code family only.
        keys.update("n:" + "/".join(sorted((g, f))) for f in family_codes if f[0] == g[0])
        if not family_codes:
            keys.add("g:" + g)
    if not given_codes:
        keys.update("f:" + f for f in family_codes)
    for prefix, value in (("h:", doc.get("household_id")), ("p:", phone_digits(doc.get("phone"))),
                          ("i:", _id(doc.get("national_id")))):
        if isinstance(value, str) and value:
            keys.add(prefix + value)
    return keys
