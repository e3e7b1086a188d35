"""The E.164 fast path accepts only what phonenumbers itself would return unchanged."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_engine._e164 import canonical_e164, e164_rules, is_canonical_e164
from sync_engine.normalise import InvalidValueError, _parsed_phone


def slow(text: str) -> str | None:
    """phonenumbers' verdict, bypassing both the fast path and the cache."""
    try:
        return str(_parsed_phone.__wrapped__(text, None))
    except InvalidValueError:
        return None


def test_every_country_code_and_length_agrees_with_phonenumbers() -> None:
    """For each code, lengths 0..18 and leading digits 0..9: fast => unchanged by phonenumbers."""
    rng = random.Random(164)
    accepted = 0
    for code in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE):
        for size in range(19):
            for lead in "0123456789":
                national = (lead + "".join(rng.choices("0123456789", k=size)))[:size]
                text = f"+{code}{national}"
                if is_canonical_e164(text):
                    accepted += 1
                    assert slow(text) == text, text
    assert accepted > 5_000  # the fast path is not vacuous


@given(st.from_regex(r"\+[0-9]{1,20}", fullmatch=True))
@settings(max_examples=2000, deadline=None)
def test_random_plus_digit_strings(text: str) -> None:
    if is_canonical_e164(text):
        assert slow(text) == text


@pytest.mark.parametrize(
    "text",
    ["+79261232323", "+12025550123", "+447700900123", "+4915112345678", "+390612345678"],
)
def test_common_e164_numbers_take_the_fast_path(text: str) -> None:
    assert is_canonical_e164(text)
    assert slow(text) == text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("+789261232323", "RU national prefix 8 would be stripped"),
        ("+11000000001", "NANPA national prefix 1"),
        ("+440000000000", "GB national prefix 0"),
        ("+0123456789", "no country code starts with 0"),
        ("+7926", "too short for RU"),
        (" +79261232323", "not trimmed"),
        ("+79261232323\n", "a trailing newline is not canonical"),
        ("79261232323", "no plus sign"),
    ],
)
def test_non_canonical_strings_take_the_slow_path(text: str, why: str) -> None:
    assert not is_canonical_e164(text), why


def test_patterns_are_plain_enough_for_other_regex_engines() -> None:
    """No look-around or back-references: the polars (Rust) engine must read them alike."""
    rules = e164_rules()
    for source in (rules.lengths_source, rules.prefix_source):
        assert "(?=" not in source
        assert "(?!" not in source
        assert "(?<" not in source


def _format(digits: str, rng: random.Random) -> str:
    """The digits as a person might type them: groups split by spaces, hyphens, (...)."""
    out, rest = "+", digits
    first = True
    while rest:
        size = rng.randint(1, 4)
        group, rest = rest[:size], rest[size:]
        if not first:
            out += rng.choice([" ", "-", " (", ") ", " - ", "("])[:3]
        out += group
        first = False
    return out


def test_numbers_formatted_for_people_read_like_their_digits() -> None:
    """'+7 (916) 123-45-67' is canonicalised without phonenumbers only when phonenumbers
    itself returns the bare digits for it."""
    rng = random.Random(7)
    checked = 0
    for code in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE):
        for size in range(2, 16):
            national = "".join(rng.choices("0123456789", k=size))
            text = _format(f"{code}{national}", rng)
            fast = canonical_e164(text)
            if fast is not None:
                checked += 1
                assert slow(text) == fast, text
    assert checked > 500


@given(
    st.from_regex(r"\+[0-9]{1,3}(?:[ ()\-]{1,3}[0-9]{1,5}){0,5}", fullmatch=True),
)
@settings(max_examples=2000, deadline=None)
def test_random_formatted_numbers(text: str) -> None:
    fast = canonical_e164(text)
    if fast is not None:
        assert slow(text) == fast
