"""Canonical forms for keys and fields, applied identically to both sides of a diff.

Identical normalisation on the local and the remote side is what makes a run right after
a successful run plan zero changes. Validation is the expensive part (email-validator and
phonenumbers cost ~20 us a value), so values already in canonical form take a fast path
(for phones an exact one, see ``_e164``), and the rest is cached.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from ._e164 import canonical_e164
from .schema import FieldKind

__all__ = [
    "FieldValue",
    "InvalidValueError",
    "Normaliser",
    "normalise_email",
    "normalise_ids",
    "normalise_phone",
    "normalise_tags",
    "normalise_text",
]

FieldValue = str | frozenset[str]


class InvalidValueError(ValueError):
    """A value that cannot be normalised; the message says why, for the report."""


# A strict subset of what email-validator accepts, already lower-case: such values are
# returned as they are. Everything else goes through email-validator.
_CANONICAL_EMAIL = re.compile(
    r"[a-z0-9_%+-]+(?:\.[a-z0-9_%+-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}"
)
_SPECIAL_USE_TLDS = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})
_SEPARATORS = re.compile(r"[,;]")


def normalise_email(raw: str) -> str:
    """Trimmed, lower-cased, IDN domain as punycode; raises InvalidValueError."""
    text = raw.strip().lower()
    if not text:
        raise InvalidValueError("email is empty")
    if (
        len(text) <= 254
        and _CANONICAL_EMAIL.fullmatch(text)
        and text.index("@") <= 64
        and text.rsplit(".", 1)[1] not in _SPECIAL_USE_TLDS
    ):
        return text
    return _validated_email(text)


@lru_cache(maxsize=16384)
def _validated_email(text: str) -> str:
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidValueError(f"invalid email {text!r}: {error}") from None
    return f"{result.local_part.lower()}@{result.ascii_domain.lower()}"


def normalise_phone(raw: str, region: str | None) -> str:
    """E.164 (``+79261232323``); local formats need ``region``; raises InvalidValueError."""
    text = raw.strip()
    if not text:
        raise InvalidValueError("phone is empty")
    canonical = canonical_e164(text)
    if canonical is not None:
        return canonical
    return _parsed_phone(text, region)


@lru_cache(maxsize=65536)
def _parsed_phone(text: str, region: str | None) -> str:
    candidate = text
    if region is None and not candidate.startswith("+"):
        digits = re.sub(r"\D", "", candidate)
        # Numbers written as 79261232323 (no plus) are how providers often export them.
        if 8 <= len(digits) <= 15 and not candidate.startswith("0"):
            candidate = "+" + digits
        else:
            raise InvalidValueError(
                f"phone {text!r} has no country code; write it as +CC... or set"
                " [sync] default_region"
            )
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException as error:
        raise InvalidValueError(f"invalid phone {text!r}: {error}") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidValueError(f"invalid phone {text!r}: not a possible number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_text(raw: object) -> str:
    """A user field: trimmed string, NFC, ``None`` as empty, booleans as 1/0."""
    if raw is None:
        return ""
    if isinstance(raw, bool):
        return "1" if raw else "0"
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    text = raw.strip() if isinstance(raw, str) else str(raw).strip()
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    return text


def normalise_tags(raw: object) -> frozenset[str]:
    """Tags as a set: from a comma-separated string or a list."""
    items = _items(raw)
    return frozenset(t for t in (normalise_text(i) for i in items) if t)


def normalise_ids(raw: object) -> frozenset[str]:
    """Numeric ids as a set of decimal strings; raises InvalidValueError on a non-number."""
    result = set()
    for item in _items(raw):
        text = normalise_text(item)
        if not text:
            continue
        # isdecimal, not isdigit: "²" is a digit that int() refuses.
        if not text.isdecimal() or len(text) > 100:
            raise InvalidValueError(f"list id {text!r} is not a number")
        result.add(str(int(text)))
    return frozenset(result)


def _items(raw: object) -> list[object]:
    if raw is None:
        return []
    if isinstance(raw, list | tuple | set | frozenset):
        return list(raw)
    return list(_SEPARATORS.split(str(raw)))


class Normaliser:
    """Normalises one field by its kind; the same object serves both sides of a diff."""

    def __init__(self, *, default_region: str | None = None) -> None:
        self.default_region = default_region

    def value(self, kind: FieldKind, raw: object) -> FieldValue:
        """The canonical value; empty strings for blank scalars; raises InvalidValueError."""
        if kind is FieldKind.TEXT:
            return normalise_text(raw)
        if kind is FieldKind.TAGS:
            return normalise_tags(raw)
        if kind is FieldKind.IDS:
            return normalise_ids(raw)
        text = normalise_text(raw)
        if not text:
            return ""
        if kind is FieldKind.EMAIL:
            return normalise_email(text)
        return normalise_phone(text, self.default_region)
