"""Local CSV and JSON-lines readers: every dialect we accept, every way a file breaks."""

from __future__ import annotations

import csv
import tracemalloc
from pathlib import Path

import pytest

from sync_engine.errors import ConfigError, SourceError
from sync_engine.records import RowOrigin, RowProblem, SourceRow
from sync_engine.tabular import (
    MAX_FIELD_CHARS,
    iter_csv_rows,
    iter_jsonl_rows,
    sniff_delimiter,
)

Item = SourceRow | RowProblem


def write(tmp_path: Path, data: bytes, name: str = "contacts.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def rows(items: list[Item]) -> list[tuple[int, dict[str, object]]]:
    """(line, values) of the good rows, failing if any row was a problem."""
    problems = [item for item in items if isinstance(item, RowProblem)]
    assert not problems, problems
    return [(item.origin.line, dict(item.values)) for item in items if isinstance(item, SourceRow)]


def problems(items: list[Item]) -> list[RowProblem]:
    return [item for item in items if isinstance(item, RowProblem)]


# --- dialects -------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_each_delimiter_given_explicitly(tmp_path: Path, delimiter: str) -> None:
    """Every supported delimiter reads when named."""
    data = f"email{delimiter}name\na@x.org{delimiter}Ann\n".encode()
    got = rows(list(iter_csv_rows(write(tmp_path, data), delimiter=delimiter)))
    assert got == [(2, {"email": "a@x.org", "name": "Ann"})]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_each_delimiter_sniffed_from_header(tmp_path: Path, delimiter: str) -> None:
    """delimiter=None picks the delimiter from the header line."""
    data = f"email{delimiter}name{delimiter}city\na@x.org{delimiter}Ann{delimiter}Oslo\n"
    got = rows(list(iter_csv_rows(write(tmp_path, data.encode()), delimiter=None)))
    assert got == [(2, {"email": "a@x.org", "name": "Ann", "city": "Oslo"})]


def test_sniffing_ignores_delimiters_inside_quoted_names() -> None:
    """A quoted header name full of commas does not fool the sniffer."""
    assert sniff_delimiter('"a,b,c,d";e;f\n') == ";"
    assert sniff_delimiter("email\n") == ","


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["no-bom", "bom"])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_bom_and_line_endings(tmp_path: Path, bom: bytes, newline: bytes) -> None:
    """UTF-8 with or without BOM and LF or CRLF all give the same rows and lines."""
    data = bom + newline.join([b"email,name", "b@x.org,Борис".encode(), b"c@x.org,C", b""])
    got = rows(list(iter_csv_rows(write(tmp_path, data))))
    assert got == [
        (2, {"email": "b@x.org", "name": "Борис"}),
        (3, {"email": "c@x.org", "name": "C"}),
    ]


def test_quoted_fields_with_delimiters_quotes_and_newlines_keep_physical_lines(
    tmp_path: Path,
) -> None:
    """A record spanning lines starts where it starts, and the next one is counted right."""
    data = (
        b"email,note\r\n"
        b'a@x.org,"one, two"\r\n'
        b'b@x.org,"line 1\r\nline 2\nline 3"\r\n'
        b'c@x.org,"say ""hi"""\r\n'
        b"d@x.org,plain\r\n"
    )
    got = rows(list(iter_csv_rows(write(tmp_path, data))))
    assert got == [
        (2, {"email": "a@x.org", "note": "one, two"}),
        (3, {"email": "b@x.org", "note": "line 1\r\nline 2\nline 3"}),
        (6, {"email": "c@x.org", "note": 'say "hi"'}),
        (7, {"email": "d@x.org", "note": "plain"}),
    ]


def test_header_names_are_stripped_values_are_not(tmp_path: Path) -> None:
    """Header whitespace is noise; value whitespace is the user's data."""
    got = rows(list(iter_csv_rows(write(tmp_path, b" email , name\n a@x.org , Ann \n"))))
    assert got == [(2, {"email": " a@x.org ", "name": " Ann "})]


def test_empty_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    """Blank lines (also before the header) carry no record but still count as lines."""
    data = b"\n\nemail\n\na@x.org\n\n\nb@x.org\n"
    got = rows(list(iter_csv_rows(write(tmp_path, data))))
    assert got == [(5, {"email": "a@x.org"}), (8, {"email": "b@x.org"})]


def test_cp1251_file_by_encoding_name(tmp_path: Path) -> None:
    """A Windows-1251 export from a Russian Excel reads when its encoding is named."""
    data = "email;имя\nivan@x.ru;Иван Петров\n".encode("cp1251")
    got = rows(list(iter_csv_rows(write(tmp_path, data), delimiter=";", encoding="cp1251")))
    assert got == [(2, {"email": "ivan@x.ru", "имя": "Иван Петров"})]


def test_source_name_replaces_path_in_origins(tmp_path: Path) -> None:
    """The origin names the source as the user configured it."""
    items = list(iter_csv_rows(write(tmp_path, b"email\na@x.org\n"), source_name="crm"))
    assert items[0].origin == RowOrigin("crm", 2)


def test_default_origin_is_the_path(tmp_path: Path) -> None:
    """Without a name, the origin is the file path, so a user can open the file."""
    path = write(tmp_path, b"email\na@x.org\n")
    assert next(iter_csv_rows(path)).origin == RowOrigin(str(path), 2)


# --- broken rows ----------------------------------------------------------------------


def test_bad_byte_in_the_middle_is_one_problem_and_reading_goes_on(tmp_path: Path) -> None:
    """An undecodable byte costs one row, names line, field and encoding, and no more."""
    data = b"email,name\na@x.org,Ann\nb@x.org,B\xffob\nc@x.org,Cy\n"
    items = list(iter_csv_rows(write(tmp_path, data)))
    assert [type(item).__name__ for item in items] == ["SourceRow", "RowProblem", "SourceRow"]
    problem = items[1]
    assert isinstance(problem, RowProblem)
    assert problem.origin.line == 3
    assert problem.field == "name"
    assert "not valid utf-8" in problem.reason
    assert "ff" in problem.reason


def test_bad_byte_in_a_cp1251_file_names_cp1251(tmp_path: Path) -> None:
    """Byte 0x98 is undefined in cp1251: the problem names that encoding."""
    data = "email;имя\na@x.ru;Аня\nb@x.ru;Б\x00\n".encode("cp1251").replace(b"\x00", b"\x98")
    items = list(iter_csv_rows(write(tmp_path, data), delimiter=";", encoding="cp1251"))
    (problem,) = problems(items)
    assert problem.origin.line == 3
    assert "not valid cp1251" in problem.reason


def test_more_fields_than_header(tmp_path: Path) -> None:
    """A row with an extra cell is reported with both counts, not truncated."""
    items = list(iter_csv_rows(write(tmp_path, b"email,name\na@x.org,Ann,extra\nb@x.org,B\n")))
    (problem,) = problems(items)
    assert problem.origin.line == 2
    assert problem.reason == "row has 3 fields, header has 2"
    assert len(items) == 2


def test_fewer_fields_than_header(tmp_path: Path) -> None:
    """A short row is reported, not padded with blanks."""
    items = list(iter_csv_rows(write(tmp_path, b"email,name,city\na@x.org\n")))
    (problem,) = problems(items)
    assert problem.reason == "row has 1 field, header has 3"


def test_nul_byte_is_a_problem(tmp_path: Path) -> None:
    """NUL means binary junk: the row is reported, the next one still reads."""
    items = list(iter_csv_rows(write(tmp_path, b"email,name\na@x.org,A\x00nn\nb@x.org,B\n")))
    (problem,) = problems(items)
    assert problem.origin.line == 2
    assert "NUL" in problem.reason
    assert len(items) == 2


def test_unterminated_quote_at_end_of_file(tmp_path: Path) -> None:
    """A quote that never closes is reported at the line it opened on."""
    items = list(iter_csv_rows(write(tmp_path, b'email,note\na@x.org,ok\nb@x.org,"open\nmore\n')))
    (problem,) = problems(items)
    assert problem.origin.line == 3
    assert "unterminated" in problem.reason


def test_text_after_closing_quote_is_a_problem(tmp_path: Path) -> None:
    """Strict parsing: '"a"b' is malformed, and the reader recovers on the next line."""
    items = list(iter_csv_rows(write(tmp_path, b'email,note\na@x.org,"a"b\nc@x.org,c\n')))
    (problem,) = problems(items)
    assert problem.origin.line == 2
    assert "malformed CSV" in problem.reason
    assert isinstance(items[1], SourceRow)
    assert items[1].origin.line == 3


def test_huge_field_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    """A field over the limit is reported; a big field under it is read."""
    big = b"x" * (MAX_FIELD_CHARS // 2)
    huge = b"y" * (MAX_FIELD_CHARS + 1)
    data = b"email,note\na@x.org," + big + b"\nb@x.org," + huge + b"\nc@x.org,ok\n"
    items = list(iter_csv_rows(write(tmp_path, data)))
    assert [type(item).__name__ for item in items] == ["SourceRow", "RowProblem", "SourceRow"]
    assert isinstance(items[1], RowProblem)
    assert items[1].origin.line == 3
    assert "longer than" in items[1].reason
    assert csv.field_size_limit() >= MAX_FIELD_CHARS


# --- unreadable files -----------------------------------------------------------------


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    """A missing file is a SourceError that says which file."""
    with pytest.raises(SourceError, match=r"nope\.csv"):
        next(iter_csv_rows(tmp_path / "nope.csv"))


@pytest.mark.parametrize(
    "data", [b"", b"\n\r\n  \n", b"\xef\xbb\xbf"], ids=["empty", "blank", "bom"]
)
def test_file_without_header_is_a_source_error(tmp_path: Path, data: bytes) -> None:
    """No header means no columns: the file cannot be read at all."""
    with pytest.raises(SourceError, match="empty"):
        next(iter_csv_rows(write(tmp_path, data)))


def test_header_only_file_has_no_rows(tmp_path: Path) -> None:
    """A header and nothing else is a valid, empty source."""
    assert list(iter_csv_rows(write(tmp_path, b"email,name\n"))) == []


def test_duplicate_header_names_the_file_and_column(tmp_path: Path) -> None:
    """Two columns of one name cannot both key a row."""
    with pytest.raises(SourceError, match=r"contacts\.csv.*duplicate.*'email'"):
        next(iter_csv_rows(write(tmp_path, b"email,name, email\n")))


def test_empty_header_name_is_a_source_error(tmp_path: Path) -> None:
    """An unnamed column (often a trailing delimiter) is refused, with its position."""
    with pytest.raises(SourceError, match=r"empty column names \(column 3\)"):
        next(iter_csv_rows(write(tmp_path, b"email,name,\n")))


def test_undecodable_header_is_a_source_error(tmp_path: Path) -> None:
    """Column names with bad bytes would key every row wrongly."""
    with pytest.raises(SourceError, match="not valid utf-8"):
        next(iter_csv_rows(write(tmp_path, b"email,n\xffame\n")))


def test_bad_options_are_config_errors(tmp_path: Path) -> None:
    """A wrong delimiter or encoding is the user's configuration to fix."""
    path = write(tmp_path, b"email\n")
    with pytest.raises(ConfigError, match="delimiter"):
        next(iter_csv_rows(path, delimiter=";;"))
    with pytest.raises(ConfigError, match="encoding"):
        next(iter_csv_rows(path, encoding="no-such-codec"))
    with pytest.raises(ConfigError, match="not a text encoding"):
        next(iter_csv_rows(path, encoding="base64"))


def test_csv_reader_streams_in_flat_memory(tmp_path: Path) -> None:
    """50k rows parse with a peak far below the file size: nothing accumulates."""
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "phone", "city", "tags", "score"])
        writer.writerows(
            [f"u{i}@example.com", f"Имя {i}", f"+7926{i:07d}", "Paris, TX", "a,b", str(i)]
            for i in range(50_000)
        )
    size = path.stat().st_size
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_csv_rows(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 50_000
    assert peak < size / 10, (peak, size)


# --- JSON lines -----------------------------------------------------------------------


def test_jsonl_keeps_json_types_and_skips_blank_lines(tmp_path: Path) -> None:
    """Values keep their JSON types; blank lines count but carry nothing."""
    data = (
        b'{"email": "a@x.org", "age": 31, "score": 2.5, "vip": true, "tags": ["a"], "n": null}\n'
        b"\n  \n"
        b'{"email": "b@x.org"}\n'
    )
    got = rows(list(iter_jsonl_rows(write(tmp_path, data, "c.jsonl"))))
    assert got == [
        (1, {"email": "a@x.org", "age": 31, "score": 2.5, "vip": True, "tags": ["a"], "n": None}),
        (4, {"email": "b@x.org"}),
    ]


def test_jsonl_tolerates_bom_and_crlf(tmp_path: Path) -> None:
    """A BOM and CRLF endings (Windows editors) do not cost a row."""
    data = b'\xef\xbb\xbf{"email": "a@x.org"}\r\n{"email": "b@x.org"}\r\n'
    got = rows(list(iter_jsonl_rows(write(tmp_path, data, "c.jsonl"))))
    assert [line for line, _ in got] == [1, 2]


def test_jsonl_bad_lines_are_problems_with_orjson_reasons(tmp_path: Path) -> None:
    """Invalid JSON, non-objects and bad bytes each cost their own line only."""
    data = b'{"email": "a"}\n{"email": \n[1, 2]\n"text"\n{"email": "\xff"}\n{"email": "b"}\n'
    items = list(iter_jsonl_rows(write(tmp_path, data, "c.jsonl")))
    found = [(item.origin.line, item.reason) for item in problems(items)]
    assert found[0][0] == 2
    assert found[0][1].startswith("not valid JSON: ")
    assert found[1] == (3, "expected a JSON object, got an array")
    assert found[2] == (4, "expected a JSON object, got a string")
    assert found[3][0] == 5
    assert "not valid utf-8" in found[3][1]
    assert [item.origin.line for item in items if isinstance(item, SourceRow)] == [1, 6]


def test_jsonl_other_encoding(tmp_path: Path) -> None:
    """A non-UTF-8 JSON-lines file decodes by the encoding it is given."""
    data = '{"имя": "Иван"}\n'.encode("cp1251")
    got = rows(list(iter_jsonl_rows(write(tmp_path, data, "c.jsonl"), encoding="cp1251")))
    assert got == [(1, {"имя": "Иван"})]


def test_jsonl_missing_file(tmp_path: Path) -> None:
    """A missing JSON-lines file is a SourceError naming it."""
    with pytest.raises(SourceError, match=r"gone\.jsonl"):
        next(iter_jsonl_rows(tmp_path / "gone.jsonl"))
