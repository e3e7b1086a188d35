"""Normalisation: canonical keys on both sides; the fast path agrees with the validators."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_engine.normalise import (
    InvalidValueError,
    Normaliser,
    normalise_email,
    normalise_ids,
    normalise_phone,
    normalise_tags,
    normalise_text,
)
from sync_engine.schema import FieldKind


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  John.Doe@Example.COM ", "john.doe@example.com"),
        ("ivan@пример.рф", "ivan@xn--e1afmkfd.xn--p1ai"),
        ("a+tag@sub.example.co.uk", "a+tag@sub.example.co.uk"),
    ],
)
def test_email_canonical_form(raw: str, expected: str) -> None:
    assert normalise_email(raw) == expected


@pytest.mark.parametrize("raw", ["", "not-an-email", "a@b", "a..b@example.com", "x@host.test"])
def test_bad_emails_are_refused_with_a_reason(raw: str) -> None:
    with pytest.raises(InvalidValueError):
        normalise_email(raw)


@given(st.emails())
@settings(max_examples=300, deadline=None)
def test_email_fast_path_never_accepts_what_the_validator_refuses(email: str) -> None:
    """Whatever normalise_email returns, email-validator accepts too (and idempotently)."""
    try:
        canonical = normalise_email(email)
    except InvalidValueError:
        return
    try:
        validate_email(canonical, check_deliverability=False)
    except EmailNotValidError as error:  # pragma: no cover - the failure message
        pytest.fail(f"{canonical!r} accepted but invalid: {error}")
    assert normalise_email(canonical) == canonical


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("8 (926) 123-23-23", "RU", "+79261232323"),
        ("+7 926 123 23 23", None, "+79261232323"),
        ("79261232323", None, "+79261232323"),
        ("+44 20 7946 0958", "RU", "+442079460958"),
        ("(212) 555-0143", "US", "+12125550143"),
    ],
)
def test_phone_to_e164(raw: str, region: str | None, expected: str) -> None:
    assert normalise_phone(raw, region) == expected


def test_local_phone_without_region_explains_the_fix() -> None:
    with pytest.raises(InvalidValueError, match="default_region"):
        normalise_phone("0926 123 23 23", None)


def test_impossible_phone_is_refused() -> None:
    with pytest.raises(InvalidValueError):
        normalise_phone("+7 12", None)


def test_sets_and_text() -> None:
    assert normalise_tags(" vip, newsletter ,,vip") == frozenset({"vip", "newsletter"})
    assert normalise_tags(["a", " b "]) == frozenset({"a", "b"})
    assert normalise_ids("3, 12,003") == frozenset({"3", "12"})
    assert normalise_ids([1, 2]) == frozenset({"1", "2"})
    with pytest.raises(InvalidValueError, match="not a number"):
        normalise_ids("1,x")
    assert normalise_text(None) == ""
    assert normalise_text(True) == "1"
    assert normalise_text(3.0) == "3"
    assert normalise_text("  Zoe\u0308 ") == "Zoë"  # NFD input becomes NFC


@given(st.text(max_size=40))
def test_text_normalisation_is_idempotent(text: str) -> None:
    once = normalise_text(text)
    assert normalise_text(once) == once


def test_normaliser_dispatches_by_kind() -> None:
    n = Normaliser(default_region="RU")
    assert n.value(FieldKind.PHONE, "8 926 123 23 23") == "+79261232323"
    assert n.value(FieldKind.PHONE, "  ") == ""
    assert n.value(FieldKind.EMAIL, "A@Example.com") == "a@example.com"
    assert n.value(FieldKind.TAGS, "x,y") == frozenset({"x", "y"})


@pytest.mark.parametrize("raw", ["²", "1,³", "9" * 5000])
def test_list_ids_that_int_refuses_are_invalid_values_not_crashes(raw: str) -> None:
    with pytest.raises(InvalidValueError, match="is not a number"):
        normalise_ids(raw)


def test_list_ids_in_other_decimal_scripts_are_read_as_numbers() -> None:
    assert normalise_ids("٣, 007") == frozenset({"3", "7"})
