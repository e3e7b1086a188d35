"""The row bound counted while an export downloads: never below the true row count."""

from __future__ import annotations

import gzip

import pytest

from sync_engine.providers.unisender import _FileShape


def shape_of(data: bytes, chunk: int = 7) -> _FileShape:
    shape = _FileShape()
    for start in range(0, len(data), chunk):
        shape(data[start : start + chunk])
    return shape


@pytest.mark.parametrize(
    ("data", "rows"),
    [
        (b"email,Name\r\na@x.com,A\r\nb@x.com,B\r\n", 2),  # header, CRLF
        (b"email;Name\na@x.com;A\nb@x.com;B", 2),  # no final newline
        (b"a@x.com,A\nb@x.com,B\n", 2),  # headerless
        (b"\xef\xbb\xbfemail,Name\n", 0),  # BOM, header only
        (b"", 0),
        (b'email,Name\na@x.com,"two\nlines"\n', 2),  # 1 row; its quoted break adds a line
    ],
)
def test_the_bound_is_the_line_count_less_a_header(data: bytes, rows: int) -> None:
    assert shape_of(data).rows_at_most("email") == rows


def test_compressed_exports_are_left_to_their_checksums() -> None:
    assert shape_of(gzip.compress(b"email\na@x.com\n")).rows_at_most("email") is None


def test_reset_forgets_a_broken_attempt() -> None:
    shape = shape_of(b"email\na@x.com\nb@x")
    shape.reset()
    shape(b"email\na@x.com\n")
    assert shape.rows_at_most("email") == 1
