"""CSV files read as blocks of columns, but only files the row reader would read the same.

The row reader (``tabular``) turns every oddity into a precise ``RowProblem``; polars'
reader is ~50x faster but resolves some oddities differently (a short row becomes empty
cells, a blank line a row of nulls, a quoted line break shifts line numbers). So a file
is read here only while each block proves it holds none of them: polars must parse it
(it refuses unbalanced quotes, stray quotes, extra cells and bad UTF-8), the block must
have exactly one record per line (so no quoted line break), every record whose last cell
is missing must still have all its delimiters, and there must be no NUL byte nor a bare
carriage return. Any doubt raises ``NotColumnar`` and the caller goes back to the
row reader, which then reports the oddity as it always has. A file is read block by
block (``BLOCK_BYTES``), never whole, so memory stays flat in the file's size.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import polars as pl

from sync_engine.tabular import _header_problem, _text_problem, sniff_delimiter

__all__ = ["BLOCK_BYTES", "Block", "CsvLayout", "NotColumnar", "export_layout", "local_layout"]

BLOCK_BYTES = 8 * 1024 * 1024
"""Bytes of CSV per block: big enough to amortise per-block costs, small against RSS."""

_UTF8_NAMES = frozenset({"utf-8", "utf-8-sig"})
_COMPRESSED = (b"\x1f\x8b", b"PK\x03\x04", b"PK\x05\x06", b"BZh")
_WIDE_BOMS = (
    codecs.BOM_UTF32_LE,
    codecs.BOM_UTF32_BE,
    codecs.BOM_UTF16_LE,
    codecs.BOM_UTF16_BE,
)


class NotColumnar(Exception):
    """This file must be read row by row; the message says why (for the debug log)."""


@dataclass(frozen=True, slots=True)
class Block:
    """Consecutive records: one string column per CSV column (``c0``...), nulls for
    empty cells; ``first_line`` is the physical line of the first record."""

    frame: pl.DataFrame
    first_line: int


@dataclass(frozen=True, kw_only=True)
class CsvLayout:
    """Where the records of a well-formed file start and how they are split."""

    path: Path
    delimiter: str
    names: tuple[str, ...]  # column names as the row reader keys them
    data_offset: int  # byte offset of the first record
    first_line: int  # physical line number of the first record

    def index(self, name: str) -> int | None:
        """The position of a named column, or None when the file has none."""
        try:
            return self.names.index(name)
        except ValueError:
            return None

    def blocks(self, block_bytes: int | None = None) -> Iterator[Block]:
        """The records, block by block; raises NotColumnar at the first doubtful block.

        The next block is read and parsed in a helper thread while the caller works on
        this one (polars releases the GIL), so parsing overlaps with normalising.
        """
        block_bytes = block_bytes or BLOCK_BYTES  # read now: tests shrink it
        line = self.first_line
        with self.path.open("rb") as stream, ThreadPoolExecutor(1) as helper:
            stream.seek(self.data_offset)
            ahead = helper.submit(self._next, stream, block_bytes)
            while True:
                frame = ahead.result()
                if frame is None:
                    return
                ahead = helper.submit(self._next, stream, block_bytes)
                yield Block(frame, line)
                line += frame.height

    def _next(self, stream: IO[bytes], block_bytes: int) -> pl.DataFrame | None:
        chunk = stream.read(block_bytes)
        if not chunk:
            return None
        if not chunk.endswith(b"\n"):
            chunk += stream.readline()
        schema = {f"c{i}": pl.String for i in range(len(self.names))}
        frame = _parse(chunk, schema, self.delimiter)
        _check(chunk, frame, self.delimiter)
        return frame


def _parse(chunk: bytes, schema: dict[str, type[pl.String]], delimiter: str) -> pl.DataFrame:
    if b"\x00" in chunk:
        raise NotColumnar("a NUL byte")
    if chunk.startswith(codecs.BOM_UTF8):
        raise NotColumnar("a byte-order mark inside the data")
    try:
        return pl.read_csv(
            chunk,
            has_header=False,
            schema=schema,
            separator=delimiter,
            quote_char='"',
            truncate_ragged_lines=False,
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError as error:
        raise NotColumnar(f"polars cannot parse a block: {str(error).splitlines()[0]}") from None


def _check(chunk: bytes, frame: pl.DataFrame, delimiter: str) -> None:
    """Prove that every record of the block sat on exactly one line with every cell.

    The chunk's lines are scanned by polars (off the GIL, while the planner works, and
    never all held at once): counting with ``bytes.count`` holds the GIL, and looking
    into every cell costs ~14 ms a block.
    """
    columns = frame.columns
    count: int | None = None
    if b"\r" in chunk:
        # "\r\n" endings are trimmed from the lines: a "\r" left is a bare one.
        bare = pl.col("line").str.contains("\r", literal=True).any()
        count, found = _lines(chunk).select(pl.len(), bare).collect().row(0)
        if found:
            raise NotColumnar("a bare carriage return")
    last = frame.get_column(columns[-1])
    whole = last.null_count() == 0
    # A short row or a blank line would leave the last cell missing (null), so with every
    # last cell there only a quoted line break could still put a record on two lines.
    if whole and b'"' not in chunk:
        return
    if (_line_count(chunk) if count is None else count) != frame.height:
        raise NotColumnar("a record spans several lines")
    if whole:
        return
    if len(columns) == 1:
        raise NotColumnar("a blank line (or an empty one-column record)")
    # Each record is its line. One whose last cell is missing is whole only if the line
    # has every delimiter: those between cells, plus those inside quoted cells (so only
    # lines with a quote need their cells counted too).
    short = last.is_null()
    line = pl.col("line").filter(short)
    suspects = (
        _lines(chunk)
        .select(
            found=line.str.count_matches(delimiter, literal=True).fill_null(0),
            quoted=line.str.contains('"', literal=True).fill_null(False),
        )
        .collect()
    )
    found, quoted = suspects.get_column("found"), suspects.get_column("quoted")
    between = len(columns) - 1
    if not (found.filter(~quoted) == between).all():
        raise NotColumnar("a record with too few cells, or a blank line")
    if quoted.any():
        cells = frame.filter(short).filter(quoted)
        inside = cells.select(
            pl.sum_horizontal(
                pl.col(c).str.count_matches(delimiter, literal=True).fill_null(0) for c in columns
            )
        ).to_series()
        if not (found.filter(quoted) == inside + between).all():
            raise NotColumnar("a record with too few cells")


# Lines are split on "\n" alone, with no quoting and a separator (NUL) that no block
# holds (_parse refuses it): each physical line is one cell ("line", null if empty),
# "\r\n" endings trimmed.
_NUL = "\x00"


def _lines(chunk: bytes) -> pl.LazyFrame:
    return pl.scan_csv(
        chunk, has_header=False, quote_char=None, separator=_NUL, schema={"line": pl.String}
    )


def _line_count(chunk: bytes) -> int:
    """The chunk's physical lines (the last may lack its "\n"), counted by polars."""
    return int(_lines(chunk).select(pl.len()).collect().item())


def _readline(stream: IO[bytes]) -> bytes:
    line = stream.readline()
    body = line[:-2] if line.endswith(b"\r\n") else line.rstrip(b"\n")
    if b"\r" in body:
        raise NotColumnar("a bare carriage return")
    return line


def _header(
    path: Path, *, encoding: str, delimiter: str | None
) -> tuple[str, list[str], str, int, int]:
    """The header line and its raw cells, the delimiter, the data offset and line number."""
    skipped = 0
    with path.open("rb") as stream:
        while True:
            raw = _readline(stream)
            if not raw:
                raise NotColumnar("no header row")
            try:
                text = raw.decode(encoding if skipped == 0 else "utf-8")
            except UnicodeDecodeError:
                raise NotColumnar("the header is not UTF-8") from None
            encoding = "utf-8"  # a BOM is only ever at the very start
            if text.strip():
                break
            skipped += 1
        chosen = delimiter or sniff_delimiter(text)
        try:
            rows = list(csv.reader([text], delimiter=chosen, strict=True))
        except csv.Error:
            raise NotColumnar("the header does not parse on its own line") from None
        if len(rows) != 1 or _text_problem("".join(rows[0]), "utf-8") is not None:
            raise NotColumnar("an unusual header")
        return text, rows[0], chosen, stream.tell(), skipped + 1


def local_layout(path: Path, *, delimiter: str | None, encoding: str) -> CsvLayout:
    """The layout of a local CSV file, if the columnar reader may take it."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise NotColumnar(f"unknown encoding {encoding!r}") from None
    if name not in _UTF8_NAMES:
        raise NotColumnar(f"encoding {encoding}")
    try:
        _, cells, chosen, offset, header_line = _header(path, encoding=name, delimiter=delimiter)
    except OSError as error:
        raise NotColumnar(f"cannot open: {error}") from None
    names = [cell.strip() for cell in cells]
    if _header_problem(names) is not None:
        raise NotColumnar("an unusable header")
    return CsvLayout(
        path=path,
        delimiter=chosen,
        names=tuple(names),
        data_offset=offset,
        first_line=header_line + 1,
    )


def export_layout(path: Path, *, expected: Sequence[str]) -> CsvLayout:
    """The layout of a downloaded export, if it is plain UTF-8 CSV with a header row."""
    try:
        with path.open("rb") as stream:
            head = stream.read(4)
        if head.startswith(_COMPRESSED) or head.startswith(_WIDE_BOMS):
            raise NotColumnar("a compressed or UTF-16/32 export")
        text, cells, chosen, offset, header_line = _header(
            path, encoding="utf-8-sig", delimiter=None
        )
    except OSError as error:
        raise NotColumnar(f"cannot open: {error}") from None
    if text.lstrip()[:1] in ("[", "{"):
        raise NotColumnar("a JSON export")
    names = [cell.strip().lower() for cell in cells]
    wanted = {name.strip().lower() for name in expected}
    if wanted and wanted.isdisjoint(names):
        raise NotColumnar("an export without a header row")
    if _header_problem(names) is not None:
        raise NotColumnar("an unusable export header")
    return CsvLayout(
        path=path,
        delimiter=chosen,
        names=tuple(names),
        data_offset=offset,
        first_line=header_line + 1,
    )
