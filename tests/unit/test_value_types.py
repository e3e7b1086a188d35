"""Column types -> provider text, as documented in ``sources._types``."""

from __future__ import annotations

import ipaddress
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync_engine.sources._types import (
    InvalidText,
    UnmappableValueError,
    ValueFormat,
    to_field_value,
)

FMT = ValueFormat()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ("  as is ", "  as is "),
        (True, "1"),
        (False, "0"),
        (42, "42"),
        (-7, "-7"),
        (2.0, "2"),
        (0.1, "0.1"),
        (Decimal("1.50"), "1.50"),
        (Decimal("1E+3"), "1000"),
        (date(2024, 1, 5), "05.01.2024"),
        (datetime(2024, 1, 5, 23, 30, tzinfo=timezone(timedelta(hours=3))), "2024-01-05 20:30:00"),
        (datetime(2024, 1, 5, 23, 30), "2024-01-05 23:30:00"),
        (time(9, 5, 7), "09:05:07"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (ipaddress.ip_address("10.0.0.1"), "10.0.0.1"),
        (["vip", None, "b2b"], ["vip", "b2b"]),
        ([1, 2], ["1", "2"]),
        ((), []),
    ],
)
def test_each_type_maps_to_its_documented_text(raw: object, expected: object) -> None:
    assert to_field_value(raw, FMT) == expected


def test_naive_timestamps_are_read_in_the_configured_zone_and_written_in_utc() -> None:
    fmt = ValueFormat(timezone=ZoneInfo("Europe/Moscow"))
    assert to_field_value(datetime(2024, 7, 1, 12, 0), fmt) == "2024-07-01 09:00:00"


def test_years_before_1000_keep_four_digits() -> None:
    """The C library would write 999; ``-infinity`` and typos reach such years."""
    assert to_field_value(date(999, 1, 5), FMT) == "05.01.0999"
    assert to_field_value(date(5, 1, 5), ValueFormat(date_format="%F")) == "0005-01-05"
    assert to_field_value(date(5, 1, 5), ValueFormat(date_format="%Y%%Y")) == "0005%Y"


def test_formats_are_configurable() -> None:
    fmt = ValueFormat(date_format="%Y-%m-%d", datetime_format="%d.%m.%Y")
    assert to_field_value(date(2024, 1, 5), fmt) == "2024-01-05"
    assert to_field_value(datetime(2024, 1, 5, 23, 0, tzinfo=UTC), fmt) == "05.01.2024"


def test_iso_text_becomes_a_date_only_when_asked() -> None:
    fmt = ValueFormat(timezone=ZoneInfo("Asia/Tokyo"))
    assert to_field_value("2024-01-05", fmt) == "2024-01-05"
    # A bare date is never shifted between zones; a timestamp goes to UTC.
    assert to_field_value("2024-01-05", fmt, parse_dates=True) == "05.01.2024"
    assert to_field_value("2024-01-05T08:00:00", fmt, parse_dates=True) == "2024-01-04 23:00:00"
    assert to_field_value("2024-01-05 08:00Z", fmt, parse_dates=True) == "2024-01-05 08:00:00"
    assert to_field_value("  ", fmt, parse_dates=True) == ""
    assert to_field_value(["2024-01-05"], fmt, parse_dates=True) == ["05.01.2024"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x89PNG", "binary data cannot go into a provider field"),
        (memoryview(b"x"), "binary data"),
        ({"a": 1}, "a JSON object cannot go into a provider field"),
        (timedelta(days=1), "a value of type timedelta cannot be mapped; cast it to text"),
        (float("nan"), "nan is not a number a provider can store"),
        (Decimal("Infinity"), "Infinity is not a number"),
        ([[1, 2]], "a nested array cannot be mapped"),
        (InvalidText(b"caf\xe9"), r"text is not valid UTF-8 \(bytes 63 61 66 e9\)"),
        ("05/01/2024", None),
        (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))), "out of range in UTC"),
    ],
)
def test_unmappable_values_are_refused_with_what_to_do(raw: object, message: str | None) -> None:
    with pytest.raises(UnmappableValueError, match=message or "is not an ISO 8601 date"):
        to_field_value(raw, FMT, parse_dates=isinstance(raw, str))


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, min_value=Decimal("-1E40"), max_value=Decimal("1E40")
    )
)
def test_numerics_keep_their_exact_value_without_exponents(value: Decimal) -> None:
    text = to_field_value(value, FMT)
    assert isinstance(text, str)
    assert "E" not in text.upper()
    assert Decimal(text) == value


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_round_trip(value: float) -> None:
    text = to_field_value(value, FMT)
    assert isinstance(text, str)
    assert float(text) == value


@given(
    st.datetimes(
        min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.timezones()
    )
)
def test_any_aware_timestamp_is_written_as_the_same_instant_in_utc(moment: datetime) -> None:
    text = to_field_value(moment, ValueFormat(datetime_format="%Y-%m-%dT%H:%M:%S"))
    assert isinstance(text, str)
    expected = moment.astimezone(UTC).replace(microsecond=0, tzinfo=None)
    assert datetime.fromisoformat(text) == expected
