"""Which ``+digits`` strings phonenumbers would hand back unchanged, decided by two regexes.

Parsing a phone with phonenumbers costs ~14-25 us; a run compares millions of numbers
that are already in E.164 (the provider's export always is). For such a string, parse
then format returns it unchanged exactly when (1) it starts with a known country code,
(2) the national part has a length that metadata calls possible for that code, and
(3) the national part does not start with the country's national prefix (which parse
would try to strip). Both tests are compiled from phonenumbers' own metadata into one
regex each, so the row path (Python ``re``) and the columnar path (polars' regex engine)
apply the very same rule; a string that fails either test simply takes the slow path.
Country codes are prefix-free, which keeps "first code that matches" (phonenumbers)
and "any alternative that matches" (a regex) the same; a code that broke that would be
left out of the fast path, never guessed at.
"""

from __future__ import annotations

import functools
import re

import phonenumbers
from phonenumbers.phonemetadata import PhoneMetadata

__all__ = ["FORMATTED", "E164Rules", "canonical_e164", "e164_rules", "is_canonical_e164"]

# "+7 916 123-45-67", "+7 (916) 123-45-67": digit groups after the plus, with spaces,
# hyphens and parentheses between them. phonenumbers reads such a string exactly as the
# bare "+digits" (it keeps only the digits after a leading plus; nothing here can start
# an extension or a second number), so it is canonical when those digits are.
FORMATTED = r"\+[0-9]+(?:[ ()\-]{1,3}[0-9]+)*"
_FORMATTED = re.compile(FORMATTED)
_SEPARATORS = re.compile(r"[ ()\-]")

# phonenumbers' own bounds: a national significant number has 2 to 17 digits.
_MIN_NATIONAL = 2
_MAX_NATIONAL = 17


class E164Rules:
    """The two patterns, as regex sources (for polars) and compiled (for Python).

    ``lengths`` fully matches ``+<code><national>`` with a possible national length;
    ``prefix`` matches the digits after ``+`` when they start with a code followed by
    that country's national prefix: such numbers are left to phonenumbers.
    """

    def __init__(self, lengths: str, prefix: str) -> None:
        self.lengths_source = f"^{lengths}$"
        self.prefix_source = f"^{prefix}"
        self.lengths = re.compile(lengths)
        # Anchored by match(text, 1): "^" would only ever match at index 0.
        self.prefix = re.compile(prefix)


def _possible_lengths(code: int) -> list[int]:
    lengths = []
    for size in range(_MIN_NATIONAL, _MAX_NATIONAL + 1):
        # Possibility depends on the length only; a leading 1 keeps every digit.
        number = phonenumbers.PhoneNumber(country_code=code, national_number=10 ** (size - 1))
        if phonenumbers.is_possible_number(number):
            lengths.append(size)
    return lengths


def _length_class(lengths: list[int]) -> str:
    return "|".join(f"[0-9]{{{size}}}" for size in lengths)


@functools.cache
def e164_rules() -> E164Rules:
    """Build (once) the patterns from the installed phonenumbers metadata."""
    codes = sorted(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    prefix_free = [
        code for code in codes if not any(o != code and o.startswith(code) for o in codes)
    ]
    by_length: list[str] = []
    by_prefix: list[str] = []
    for code in prefix_free:
        number = int(code)
        region = phonenumbers.region_code_for_country_code(number)
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(number, region)
        if metadata is None:
            continue
        lengths = _possible_lengths(number)
        if lengths:
            by_length.append(f"{code}(?:{_length_class(lengths)})")
        national_prefix = metadata.national_prefix_for_parsing
        if national_prefix:
            by_prefix.append(f"{code}(?:{national_prefix})")
    return E164Rules(rf"\+(?:{'|'.join(by_length)})", f"(?:{'|'.join(by_prefix)})")


def is_canonical_e164(text: str) -> bool:
    """True only if phonenumbers would parse and format ``text`` back to ``text``."""
    rules = e164_rules()
    return rules.lengths.fullmatch(text) is not None and rules.prefix.match(text, 1) is None


def canonical_e164(text: str) -> str | None:
    """The E.164 form of ``text`` when it is one already, or the same digits formatted
    for people (see ``FORMATTED``); None means "ask phonenumbers"."""
    if is_canonical_e164(text):
        return text
    if _FORMATTED.fullmatch(text):
        bare = _SEPARATORS.sub("", text)
        if is_canonical_e164(bare):
            return bare
    return None
