"""The provider export parser: every compression, encoding and layout it sniffs."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from sync_engine.errors import ExportError
from sync_engine.providers.export_file import iter_export_rows
from sync_engine.records import RowOrigin, RowProblem, SourceRow

Item = SourceRow | RowProblem
SOURCE = "provider export"


def write(tmp_path: Path, data: bytes, name: str = "export.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read(tmp_path: Path, data: bytes, *expected: str) -> list[Item]:
    return list(iter_export_rows(write(tmp_path, data), expected_fields=expected))


def rows(items: list[Item]) -> list[tuple[int, dict[str, object]]]:
    problems = [item for item in items if isinstance(item, RowProblem)]
    assert not problems, problems
    return [(item.origin.line, dict(item.values)) for item in items if isinstance(item, SourceRow)]


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


PLAIN = b"email,email_status\r\na@x.org,active\r\nb@x.org,unsubscribed\r\n"
PLAIN_ROWS = [
    (2, {"email": "a@x.org", "email_status": "active"}),
    (3, {"email": "b@x.org", "email_status": "unsubscribed"}),
]


# --- compression ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "compress",
    [
        lambda data: data,
        gzip.compress,
        bz2.compress,
        lambda data: zipped({"export.csv": data}),
    ],
    ids=["plain", "gzip", "bzip2", "zip"],
)
def test_compression_is_sniffed_by_magic_bytes(
    tmp_path: Path, compress: Callable[[bytes], bytes]
) -> None:
    """The same CSV reads identically however it is (or is not) compressed."""
    assert rows(read(tmp_path, compress(PLAIN), "email")) == PLAIN_ROWS


def test_gzip_with_several_members(tmp_path: Path) -> None:
    """Concatenated gzip members (a streamed, chunked upload) read as one file."""
    half = PLAIN.index(b"b@x.org")
    data = gzip.compress(PLAIN[:half]) + gzip.compress(PLAIN[half:])
    assert rows(read(tmp_path, data, "email")) == PLAIN_ROWS


def test_zip_picks_the_data_member_among_others(tmp_path: Path) -> None:
    """Readme files and macOS metadata beside the CSV are ignored."""
    data = zipped({"README.md": b"# hi", "__MACOSX/._x.csv": b"junk", "Contacts.CSV": PLAIN})
    assert rows(read(tmp_path, data, "email")) == PLAIN_ROWS


def test_zip_with_no_data_member_is_an_export_error(tmp_path: Path) -> None:
    """Two files, neither looking like data: refuse, and list what was found."""
    data = zipped({"a.md": b"x", "b.pdf": b"y"})
    with pytest.raises(ExportError, match=r"no single data file.*'a\.md', 'b\.pdf'"):
        read(tmp_path, data, "email")


def test_empty_zip_is_an_export_error(tmp_path: Path) -> None:
    """An archive without members cannot hold a snapshot."""
    with pytest.raises(ExportError, match="found none"):
        read(tmp_path, zipped({}), "email")


@pytest.mark.parametrize(
    "data",
    [
        gzip.compress(PLAIN * 200)[:-40],
        bz2.compress(PLAIN * 200)[:-40],
        zipped({"e.csv": PLAIN * 200})[:60],
        b"\x1f\x8b\x08\x00garbage-not-deflate",
    ],
    ids=["gzip", "bzip2", "zip", "gzip-garbage"],
)
def test_truncated_or_corrupt_archives_are_export_errors(tmp_path: Path, data: bytes) -> None:
    """A snapshot cut short cannot be trusted: it raises, never just ends early."""
    with pytest.raises(ExportError, match="truncated or corrupt"):
        read(tmp_path, data, "email")


# --- encodings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: text.encode("utf-8"),
        lambda text: text.encode("utf-8-sig"),
        lambda text: text.encode("utf-16"),
        lambda text: b"\xfe\xff" + text.encode("utf-16-be"),
        lambda text: text.encode("utf-32"),
    ],
    ids=["utf8", "utf8-bom", "utf16-le-bom", "utf16-be-bom", "utf32-bom"],
)
def test_encodings_are_sniffed(tmp_path: Path, encode: Callable[[str], bytes]) -> None:
    """UTF-8 with or without BOM, and UTF-16/32 by BOM, all give the same rows."""
    data = encode("Email;Имя\nа@пример.рф;Анна\n")
    assert rows(read(tmp_path, data, "email")) == [(2, {"email": "а@пример.рф", "имя": "Анна"})]


def test_bad_byte_is_a_problem_for_that_line_only(tmp_path: Path) -> None:
    """Undecodable bytes cost one row, named with its line and the encoding."""
    data = b"email,name\na@x.org,A\nb@x.org,B\xfe\xffb\nc@x.org,C\n"
    items = read(tmp_path, data, "email")
    assert [type(item).__name__ for item in items] == ["SourceRow", "RowProblem", "SourceRow"]
    problem = items[1]
    assert isinstance(problem, RowProblem)
    assert problem.origin == RowOrigin(SOURCE, 3)
    assert "not valid utf-8" in problem.reason


# --- CSV layouts ----------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed(tmp_path: Path, delimiter: str) -> None:
    """Whatever delimiter the provider picked, columns come out right."""
    data = f"email{delimiter}email_list_ids\na@x.org{delimiter}1\n"
    assert rows(read(tmp_path, data.encode(), "email")) == [
        (2, {"email": "a@x.org", "email_list_ids": "1"})
    ]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_line_endings(tmp_path: Path, newline: bytes) -> None:
    """LF and CRLF exports give identical rows and line numbers."""
    data = newline.join([b"email,email_status", b"a@x.org,active", b"b@x.org,unsubscribed", b""])
    assert rows(read(tmp_path, data, "email")) == PLAIN_ROWS


def test_header_is_matched_case_insensitively_and_keys_are_lower_case(tmp_path: Path) -> None:
    """'EMAIL' in the header matches 'Email' requested; keys are lower-cased."""
    items = read(tmp_path, b" EMAIL ,Phone_Status\na@x.org,active\n", "Email")
    assert rows(items) == [(2, {"email": "a@x.org", "phone_status": "active"})]


def test_quoted_fields_keep_delimiters_newlines_and_quotes(tmp_path: Path) -> None:
    """Quoted cells survive intact and the record after them has the right line."""
    data = b'email,tags\na@x.org,"vip,new"\nb@x.org,"two\nlines"\nc@x.org,"say ""hi"""\n'
    assert rows(read(tmp_path, data, "email")) == [
        (2, {"email": "a@x.org", "tags": "vip,new"}),
        (3, {"email": "b@x.org", "tags": "two\nlines"}),
        (5, {"email": "c@x.org", "tags": 'say "hi"'}),
    ]


def test_headerless_file_uses_requested_field_order(tmp_path: Path) -> None:
    """No header name matches but the width does: rows in field_names order from line 1."""
    data = b"a@x.org,1\nb@x.org,2\n"
    assert rows(read(tmp_path, data, "email", "email_list_ids")) == [
        (1, {"email": "a@x.org", "email_list_ids": "1"}),
        (2, {"email": "b@x.org", "email_list_ids": "2"}),
    ]


def test_headerless_first_row_with_bad_bytes_is_a_row_problem(tmp_path: Path) -> None:
    """In a headerless file the first row is data, so its damage is a row problem."""
    items = read(tmp_path, b"a@x.org,\xff\nb@x.org,2\n", "email", "email_list_ids")
    assert isinstance(items[0], RowProblem)
    assert items[0].origin.line == 1
    assert isinstance(items[1], SourceRow)


def test_unrecognisable_columns_are_an_export_error(tmp_path: Path) -> None:
    """Neither a matching header nor the right width: say what was expected and found."""
    with pytest.raises(ExportError, match=r"expected email, email_list_ids.*3 columns.*'x'"):
        read(tmp_path, b"x,y,z\n1,2,3\n", "email", "email_list_ids")


def test_without_expected_fields_the_first_row_is_the_header(tmp_path: Path) -> None:
    """With nothing to match against, a header row is assumed, as all clients do."""
    assert rows(read(tmp_path, b"foo,bar\n1,2\n")) == [(2, {"foo": "1", "bar": "2"})]


def test_duplicate_header_after_lower_casing_is_an_export_error(tmp_path: Path) -> None:
    """'Email' and 'email' would collide as keys."""
    with pytest.raises(ExportError, match=r"duplicate.*'email'"):
        read(tmp_path, b"Email,email\n", "email")


def test_ragged_rows_nul_and_unterminated_quote_are_problems(tmp_path: Path) -> None:
    """Broken rows are reported where they start; good rows around them still arrive."""
    data = b'email,name\na@x.org,A,extra\nb@x.org\nc@x.org,C\x00\nd@x.org,D\ne@x.org,"open\n'
    items = read(tmp_path, data, "email")
    found = [
        (item.origin.line, item.reason if isinstance(item, RowProblem) else "ok") for item in items
    ]
    assert found == [
        (2, "row has 3 fields, header has 2"),
        (3, "row has 1 field, header has 2"),
        (4, "contains a NUL byte (is this a binary file?)"),
        (5, "ok"),
        (6, "unterminated quoted field: the quote opened on line 6 never closes"),
    ]


def test_blank_lines_before_header_and_between_rows(tmp_path: Path) -> None:
    """Blank lines are skipped but counted, so lines stay physical."""
    assert rows(read(tmp_path, b"\n\nemail\n\na@x.org\n", "email")) == [(5, {"email": "a@x.org"})]


# --- JSON layouts ---------------------------------------------------------------------


def test_json_array_one_element_per_line(tmp_path: Path) -> None:
    """The common pretty form: '[' alone, one object per line, ']' alone."""
    data = b'[\n  {"Email": "a@x.org", "List_IDs": [1, 2]},\n  {"email": "b@x.org"}\n]\n'
    assert rows(read(tmp_path, data, "email")) == [
        (2, {"email": "a@x.org", "list_ids": [1, 2]}),
        (3, {"email": "b@x.org"}),
    ]


def test_json_array_compact_per_line(tmp_path: Path) -> None:
    """'[' and ']' on the first and last element lines, leading commas too."""
    data = b'[{"email": "a@x.org"}\n,{"email": "b@x.org"},\n{"email": "c@x.org"}]\n'
    assert [line for line, _ in rows(read(tmp_path, data, "email"))] == [1, 2, 3]


def test_json_array_on_one_line(tmp_path: Path) -> None:
    """A small export written as one line is one in-memory array anyway."""
    data = b'[{"email": "a@x.org"}, {"email": "b@x.org"}]'
    assert rows(read(tmp_path, data, "email")) == [
        (1, {"email": "a@x.org"}),
        (1, {"email": "b@x.org"}),
    ]


def test_empty_json_array_has_no_rows(tmp_path: Path) -> None:
    """An empty array is a valid, empty snapshot."""
    assert read(tmp_path, b"[]\n", "email") == []
    assert read(tmp_path, b"[\n]\n", "email") == []


def test_multi_line_json_elements_are_refused_clearly(tmp_path: Path) -> None:
    """Elements spread over lines would need a streaming JSON parser: say so, don't guess."""
    data = b'[\n  {\n    "email": "a@x.org"\n  }\n]\n'
    with pytest.raises(ExportError, match="each element sits on its own line"):
        read(tmp_path, data, "email")


def test_unclosed_json_array_is_an_export_error(tmp_path: Path) -> None:
    """A JSON array without its ']' is a truncated download."""
    with pytest.raises(ExportError, match="never closes"):
        read(tmp_path, b'[\n{"email": "a@x.org"},\n', "email")


def test_json_array_bad_elements_are_problems(tmp_path: Path) -> None:
    """A non-object, a broken object and colliding keys each cost one row."""
    data = b'[\n{"email": "a"},\n42,\n{"email": oops},\n{"Email": "b", "email": "c"}\n]\nx\n'
    items = read(tmp_path, data, "email")
    assert [(item.origin.line, type(item).__name__) for item in items] == [
        (2, "SourceRow"),
        (3, "RowProblem"),
        (4, "RowProblem"),
        (5, "RowProblem"),
        (7, "RowProblem"),
    ]


def test_json_lines(tmp_path: Path) -> None:
    """JSON lines: keys lower-cased, JSON types kept, bad lines reported."""
    data = b'{"Email": "a@x.org", "n": 1}\n\n{"email": "b@x.org"}\n[1]\n{broken\n'
    items = read(tmp_path, data, "email")
    assert [(item.origin.line, type(item).__name__) for item in items] == [
        (1, "SourceRow"),
        (3, "SourceRow"),
        (4, "RowProblem"),
        (5, "RowProblem"),
    ]
    assert isinstance(items[0], SourceRow)
    assert items[0].values == {"email": "a@x.org", "n": 1}


def test_gzipped_json_lines(tmp_path: Path) -> None:
    """Content sniffing happens after decompression."""
    data = gzip.compress(b'{"email": "a@x.org"}\n')
    assert rows(read(tmp_path, data, "email")) == [(1, {"email": "a@x.org"})]


# --- whole-file failures --------------------------------------------------------------


def test_missing_file_is_an_export_error(tmp_path: Path) -> None:
    """No file means no snapshot."""
    with pytest.raises(ExportError, match="cannot open"):
        list(iter_export_rows(tmp_path / "gone.csv"))


@pytest.mark.parametrize(
    "data", [b"", b"\n \r\n", gzip.compress(b"")], ids=["empty", "blank", "gz"]
)
def test_empty_file_is_an_empty_snapshot(tmp_path: Path, data: bytes) -> None:
    """A headerless export of an empty list is an empty file: no rows, no error."""
    assert read(tmp_path, data, "email") == []
    assert read(tmp_path, data) == []


def test_source_name_appears_in_origins(tmp_path: Path) -> None:
    """Origins name the export as the caller calls it."""
    path = write(tmp_path, PLAIN)
    items = list(iter_export_rows(path, expected_fields=["email"], source_name="unisender:42"))
    assert items[0].origin == RowOrigin("unisender:42", 2)


def test_duplicate_expected_fields_are_a_caller_bug(tmp_path: Path) -> None:
    """Asking for one field twice is a programming error, not a bad export."""
    with pytest.raises(ValueError, match="duplicates"):
        read(tmp_path, PLAIN, "email", "EMAIL")


# --- streaming ------------------------------------------------------------------------


def _big_export(path: Path, rows_count: int) -> None:
    with gzip.open(path, "wt", encoding="utf-8", newline="", compresslevel=1) as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(["email", "email_status", "email_list_ids", "phone", "name", "tags"])
        writer.writerows(
            [f"u{i}@example.com", "active", "1,2", f"+7926{i:07d}", f"Имя {i}", "a;b"]
            for i in range(rows_count)
        )


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_export_streams_in_flat_memory(tmp_path: Path, compressed: bool) -> None:
    """50k rows parse with a peak far below the file size, compressed or not."""
    path = tmp_path / "big.csv.gz"
    _big_export(path, 50_000)
    if not compressed:
        plain = tmp_path / "big.csv"
        plain.write_bytes(gzip.decompress(path.read_bytes()))
        path = plain
    size = len(gzip.decompress(path.read_bytes())) if compressed else path.stat().st_size
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_export_rows(path, expected_fields=["email"]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 50_000
    assert peak < size / 10, (peak, size)
