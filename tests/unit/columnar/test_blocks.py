"""The block reader takes only files the row reader reads the same way, with the same lines."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from sync_engine.columnar._blocks import NotColumnar, export_layout, local_layout
from sync_engine.records import SourceRow
from sync_engine.tabular import iter_csv_rows


def rows_by_blocks(path: Path, block_bytes: int) -> list[tuple[int, list[str]]]:
    layout = local_layout(path, delimiter=None, encoding="utf-8-sig")
    out = []
    for block in layout.blocks(block_bytes):
        for offset, row in enumerate(block.frame.fill_null("").iter_rows()):
            out.append((block.first_line + offset, list(row)))
    return out


def read_all(path: Path) -> int:
    """Lay out and read every block of a local file; the number of records."""
    layout = local_layout(path, delimiter=",", encoding="utf-8")
    return sum(block.frame.height for block in layout.blocks(1 << 20))


def rows_by_reader(path: Path) -> list[tuple[int, list[str]]]:
    out = []
    for item in iter_csv_rows(path, delimiter=None):
        assert isinstance(item, SourceRow)
        out.append((item.origin.line, [str(v) for v in item.values.values()]))
    return out


@pytest.mark.parametrize("block_bytes", [16, 64, 1 << 20])
def test_a_well_formed_file_reads_like_the_row_reader(tmp_path: Path, block_bytes: int) -> None:
    """BOM, leading blank lines, CRLF, quotes, empty cells, ';' sniffed; lines intact."""
    path = tmp_path / "c.csv"
    lines = ["", "  ", 'email;name;"tags"'] + [
        f'u{i}@x.com;"N, {i}";{"" if i % 3 else chr(34) + "a;b" + chr(34)}' for i in range(40)
    ]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    assert rows_by_blocks(path, block_bytes) == rows_by_reader(path)


@pytest.mark.parametrize("block_bytes", [8, 1 << 20])
@pytest.mark.parametrize("ending", [b"\n", b"\r\n"])
def test_empty_last_cells_and_quoted_delimiters_are_read_column_wise(
    tmp_path: Path, block_bytes: int, ending: bytes
) -> None:
    """Rows whose last cell is empty (bare or quoted) are whole rows, not short ones."""
    path = tmp_path / "c.csv"
    rows = [b"email,name,tags", b'a@x.com,"x,y",', b'b@x.com,,""', b"c@x.com,C,", b'd@x.com,"",t']
    path.write_bytes(ending.join(rows))  # the last line has no line break
    assert rows_by_blocks(path, block_bytes) == rows_by_reader(path)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b'email,name\na@x.com,"two\nlines"\n', "a record over two lines"),
        (b"email,name\na@x.com\n", "a short row"),
        (b"email,name,city\na@x.com,\n", "a short row ending in a delimiter"),
        (b'email,name,city\na@x.com,"x,y"\n', "a short row with a delimiter in a quoted cell"),
        (b'email,name\n"a\nb@x.com",A\n', "a line break in a quoted cell, no empty last cell"),
        (b'email,name\na@x.com,"A"\n\nb@x.com,B\n', "a blank line among quoted cells"),
        (b"email,name\na@x.com,A\n\nb@x.com,B\n", "a blank line"),
        (b"email,name\na@x.com,A\x00\n", "a NUL byte"),
        (b"email,name\na@x.com,\xff\n", "bytes that are not UTF-8"),
        (b"email,name\na@x.com,A\rb@x.com,B\n", "a bare carriage return"),
        (b'email,name\na@x.com,x"y\n', "a stray quote"),
        (b'email,name\na@x.com,"x"y\n', "text after a closing quote"),
        (b"email,name\na@x.com,A,extra\n", "an extra cell"),
        (b"email\n\n", "a blank line in a one-column file"),
        (b"email,email\na@x.com,b@x.com\n", "a duplicate column name"),
        (b"", "no header"),
    ],
)
def test_odd_files_are_left_to_the_row_reader(tmp_path: Path, content: bytes, why: str) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(content)
    with pytest.raises(NotColumnar):
        read_all(path)


def test_other_encodings_are_left_to_the_row_reader(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes("email,name\na@x.com,Иван\n".encode("cp1251"))
    with pytest.raises(NotColumnar, match="encoding"):
        local_layout(path, delimiter=",", encoding="cp1251")


@pytest.mark.parametrize(
    "content",
    [
        gzip.compress(b"email,name\na@x.com,A\n"),
        b'[{"email": "a@x.com"}]\n',
        b'{"email": "a@x.com"}\n',
        "email,name\n".encode("utf-16"),
        b"a@x.com,A\n",  # no header row: the first row names no requested field
    ],
)
def test_exports_that_are_not_plain_csv_with_a_header(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "export"
    path.write_bytes(content)
    with pytest.raises(NotColumnar):
        export_layout(path, expected=["email", "name"])


def test_export_columns_are_keyed_lower_case(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(b" Email ,NAME\r\na@x.com,A\r\n")
    layout = export_layout(path, expected=["email", "Name"])
    assert layout.names == ("email", "name")
    assert layout.first_line == 2
