"""Typed column values (from a database or JSON) -> the text or list a provider field takes.

Providers store every field as text, so each type gets one canonical spelling, and the
same value always spells the same: that is what lets a second run plan zero changes.

| column value                   | field value                                               |
|--------------------------------|-----------------------------------------------------------|
| text                           | as it is (ISO 8601 text becomes a date with date_format)  |
| integer, numeric               | decimal digits, no exponent (``1.50`` stays ``1.50``)     |
| float                          | shortest round-trip digits; ``2.0`` -> ``2``              |
| boolean                        | ``1`` / ``0`` (the provider's bool fields take 1/0)       |
| date                           | ``date_format`` (default ``%d.%m.%Y``)                    |
| timestamp, timestamptz         | in UTC, ``datetime_format`` (``%Y-%m-%d %H:%M:%S``)       |
| array (text[], int[])          | a list: for tags and list ids; NULL items are dropped     |
| uuid, inet, time               | their text form (json and jsonb arrive as their text)     |
| bytes, interval, JSON object   | refused: the row is reported, naming the column           |
| NaN, infinity                  | refused likewise                                          |

A timestamp without a time zone is read in the source's ``timezone`` (default UTC).
"""

from __future__ import annotations

import ipaddress
import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal

__all__ = [
    "DEFAULT_DATETIME_FORMAT",
    "DEFAULT_DATE_FORMAT",
    "InvalidText",
    "UnmappableValueError",
    "ValueFormat",
    "to_field_value",
]

# UniSender and Selzy: user fields of type date take "DD.MM.YYYY, DD-MM-YYYY, YYYY.MM.DD,
# YYYY-MM-DD" (createField); their own timestamps are "YYYY-MM-DD hh:mm:ss" in UTC
# (importContacts, getContact). The first listed date format is the one shown in the UI.
DEFAULT_DATE_FORMAT = "%d.%m.%Y"
DEFAULT_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"

_TEXT_LIKE = (
    uuid.UUID,
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Interface,
    ipaddress.IPv6Interface,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
)


class UnmappableValueError(ValueError):
    """A value no provider field can take; the message says what it is and what to do."""


class InvalidText(bytes):
    """Bytes a database returned as text that are not valid UTF-8 (kept to name them)."""


@dataclass(frozen=True, slots=True)
class ValueFormat:
    """How dates and timestamps are written, and how naive timestamps are read."""

    date_format: str = DEFAULT_DATE_FORMAT
    datetime_format: str = DEFAULT_DATETIME_FORMAT
    timezone: tzinfo = UTC


def to_field_value(
    raw: object, fmt: ValueFormat, *, parse_dates: bool = False
) -> str | list[str] | None:
    """The provider-ready text (or list, for arrays) of one column value.

    ``parse_dates`` reads text as an ISO 8601 date or timestamp and writes it with the
    field's format; a field gets it by declaring a ``date_format``. Raises
    UnmappableValueError for what no field can take.
    """
    if raw is None:
        return None
    if isinstance(raw, str):
        return _parse_date_text(raw, fmt) if parse_dates else raw
    if isinstance(raw, list | tuple):
        items: list[str] = []
        for item in raw:
            if isinstance(item, list | tuple):
                raise UnmappableValueError("a nested array cannot be mapped; flatten it")
            text = to_field_value(item, fmt, parse_dates=parse_dates)
            if text is not None:
                assert isinstance(text, str)
                items.append(text)
        return items
    return _scalar(raw, fmt)


def _scalar(raw: object, fmt: ValueFormat) -> str:
    # bool before int: True is an int too.
    if isinstance(raw, bool):
        return "1" if raw else "0"
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise UnmappableValueError(f"{raw} is not a number a provider can store")
        return str(int(raw)) if raw.is_integer() else repr(raw)
    if isinstance(raw, Decimal):
        if not raw.is_finite():
            raise UnmappableValueError(f"{raw} is not a number a provider can store")
        return format(raw, "f")
    if isinstance(raw, datetime):  # before date: a datetime is a date too
        return _format(_utc(raw, fmt), fmt.datetime_format)
    if isinstance(raw, date):
        return _format(raw, fmt.date_format)
    if isinstance(raw, time):
        return raw.isoformat(timespec="seconds")
    if isinstance(raw, _TEXT_LIKE):
        return str(raw)
    if isinstance(raw, InvalidText):
        shown = bytes(raw[:40]).hex(" ")
        raise UnmappableValueError(f"text is not valid UTF-8 (bytes {shown})")
    if isinstance(raw, bytes | bytearray | memoryview):
        raise UnmappableValueError(
            "binary data cannot go into a provider field; convert it in the query"
            " (e.g. encode(column, 'base64'))"
        )
    if isinstance(raw, dict):
        raise UnmappableValueError(
            "a JSON object cannot go into a provider field; pick a value in the query"
            " (e.g. data->>'name')"
        )
    raise UnmappableValueError(
        f"a value of type {type(raw).__name__} cannot be mapped; cast it to text in the query"
    )


def _utc(moment: datetime, fmt: ValueFormat) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=fmt.timezone)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise UnmappableValueError(f"{moment} is out of range in UTC") from None


_DIRECTIVE = re.compile(r"%(.)")


def _format(moment: date, pattern: str) -> str:
    """strftime, except that years are always four digits.

    The C library writes year 999 as ``999``; a text that does not sort or parse as a
    date would be a bad value to send (and PostgreSQL's ``-infinity`` dates go far back).
    """
    if moment.year >= 1000:
        return moment.strftime(pattern)
    year = f"{moment.year:04d}"

    def expand(match: re.Match[str]) -> str:
        directive = match.group(1)
        if directive == "Y":
            return year
        if directive == "F":
            return f"{year}-%m-%d"
        return match.group(0)

    return moment.strftime(_DIRECTIVE.sub(expand, pattern))


def _parse_date_text(text: str, fmt: ValueFormat) -> str:
    """ISO 8601 text -> the field's format; blank text stays blank.

    A bare date is never shifted between time zones: 2024-01-05 is the fifth of January
    wherever it is read. Only a timestamp is converted to UTC.
    """
    stripped = text.strip()
    if not stripped:
        return stripped
    try:
        if len(stripped) == 10:
            return _format(date.fromisoformat(stripped), fmt.date_format)
        return _format(_utc(datetime.fromisoformat(stripped), fmt), fmt.datetime_format)
    except ValueError:
        raise UnmappableValueError(
            f"{text!r} is not an ISO 8601 date (YYYY-MM-DD) or timestamp"
            " (YYYY-MM-DD hh:mm:ss, optionally with a UTC offset)"
        ) from None
