"""Streaming, synchronous readers for local CSV and JSON-lines contact files.

They are plain generators so that a worker thread can drive them (see
``sync_engine.sources``) and so that the provider export parser can reuse the
CSV record loop. Memory stays flat: files are read line by line, never whole.

A bad row never stops a run and never vanishes: it becomes a ``RowProblem`` with
the physical line where its record starts. Only a file that cannot be read at
all (missing, no header, unusable header) raises ``SourceError``.
"""

from __future__ import annotations

import codecs
import csv
import functools
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import chain
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from sync_engine.errors import ConfigError, SourceError
from sync_engine.records import RowOrigin, RowProblem, SourceRow

if TYPE_CHECKING:
    from _csv import Reader as CsvReader

__all__ = [
    "CSV_DELIMITERS",
    "MAX_FIELD_CHARS",
    "MAX_LINE_CHARS",
    "iter_csv_rows",
    "iter_jsonl_rows",
    "sniff_delimiter",
]

CSV_DELIMITERS = (",", ";", "\t", "|")
"""Delimiters tried by sniffing, in order of preference when counts tie."""

MAX_FIELD_CHARS = 16 * 1024 * 1024
"""Longest CSV field accepted; a longer one is a RowProblem (the csv default, 128 KiB,
is too small for long notes or tag lists)."""

MAX_LINE_CHARS = 64 * 1024 * 1024
"""Longest physical line read at once. It bounds memory on a file with no line breaks;
a longer line is handed to the parser in pieces (and so reported as broken rows)."""

# Undecodable bytes become lone surrogates U+DC00+byte (like "surrogateescape", but
# also for bytes < 0x80, which UTF-16 can produce). Decoders never emit surrogates
# otherwise, so one cheap scan of a row finds every decoding error.
_UNDECODABLE = "sync_engine.undecodable"


def _mark_undecodable(exc: UnicodeError) -> tuple[str, int]:
    if isinstance(exc, UnicodeDecodeError):
        bad = exc.object[exc.start : exc.end]
        return "".join(chr(0xDC00 + b) for b in bad), exc.end
    raise exc


codecs.register_error(_UNDECODABLE, _mark_undecodable)

_SURROGATES = re.compile("[\ud800-\udfff]+")


def _encoding_label(encoding: str) -> str:
    """The name users know: ``utf-8-sig`` is just utf-8 that tolerates a BOM."""
    name = codecs.lookup(encoding).name
    return "utf-8" if name == "utf-8-sig" else name


def _check_encoding(encoding: str) -> str:
    try:
        return _encoding_label(encoding)
    except LookupError:
        raise ConfigError(f"unknown encoding {encoding!r}") from None


def _check_delimiter(delimiter: str | None) -> None:
    if delimiter is not None and (len(delimiter) != 1 or delimiter in '"\r\n'):
        raise ConfigError(
            f"CSV delimiter must be one character other than a quote or a line break, "
            f"got {delimiter!r}"
        )


def _text_problem(text: str, encoding: str) -> str | None:
    """Why decoded text cannot be trusted (NUL, undecodable bytes), or None if it can.

    Names the undecodable bytes so a user can find them in a hex editor. The row loop
    has a faster inline test and calls this only to explain a row it rejects.
    """
    if "\x00" in text:
        return "contains a NUL byte (is this a binary file?)"
    if text.isascii():
        return None
    found = _SURROGATES.search(text)
    if found is None:
        return None
    bad = bytes(ord(c) - 0xDC00 for c in found.group() if 0xDC00 <= ord(c) <= 0xDCFF)
    return f"not valid {encoding}: cannot decode bytes {bad.hex(' ')}"


def _text_lines(stream: IO[str]) -> Iterator[str]:
    """Physical lines of ``stream``, each at most MAX_LINE_CHARS long.

    ``iter(callable, sentinel)`` keeps the per-line cost in C (as fast as iterating the
    file) while bounding memory on a file without line breaks.
    """
    return iter(functools.partial(stream.readline, MAX_LINE_CHARS), "")


def _raise_field_limit() -> None:
    # The limit is process-wide; only ever raise it, so a caller's larger limit stands.
    if csv.field_size_limit() < MAX_FIELD_CHARS:
        csv.field_size_limit(MAX_FIELD_CHARS)


def _first_content_line(lines: Iterator[str]) -> tuple[str | None, int]:
    """The first line with non-blank content, and how many blank lines came before it."""
    skipped = 0
    for line in lines:
        if line.strip():
            return line, skipped
        skipped += 1
    return None, skipped


def sniff_delimiter(line: str) -> str:
    """Guess the delimiter of a header line: the candidate that splits it into most cells.

    Parsing (rather than counting characters) ignores delimiters inside quoted names.
    A line with none of the candidates is a one-column file, read as comma-separated.
    """
    best, best_width = ",", 1
    for candidate in CSV_DELIMITERS:
        try:
            width = len(next(csv.reader([line], delimiter=candidate)))
        except (csv.Error, StopIteration):
            continue
        if width > best_width:
            best, best_width = candidate, width
    return best


def _csv_error_reason(exc: csv.Error, start: int, end: int) -> str:
    message = str(exc)
    if message == "unexpected end of data":
        return f"unterminated quoted field: the quote opened on line {start} never closes"
    if message.startswith("field larger than field limit"):
        return f"a field is longer than {csv.field_size_limit()} characters"
    where = f" (lines {start}-{end})" if end > start else ""
    return f"malformed CSV{where}: {message}"


def _iter_csv_records(
    reader: CsvReader,
    header: Sequence[str],
    *,
    source: str,
    encoding: str,
    line_offset: int,
) -> Iterator[SourceRow | RowProblem]:
    """Turn the remaining records of ``reader`` into rows keyed by ``header``.

    ``line_offset`` is the number of physical lines read before ``reader`` started
    counting, so that origins stay physical line numbers. Shared with the export parser.
    """
    width = len(header)
    keys = tuple(header)
    line = reader.line_num + line_offset  # last physical line consumed so far
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The reader has consumed the broken record's lines (every next() takes at
            # least one line from a finite input), so carrying on cannot spin.
            start = line + 1
            line = reader.line_num + line_offset
            yield RowProblem(RowOrigin(source, start), None, _csv_error_reason(exc, start, line))
            continue
        start = line + 1
        line = reader.line_num + line_offset
        if len(row) == width:
            # One joined string answers "any NUL or undecodable byte in this row?": an
            # ASCII row needs only the O(1) isascii flag; otherwise utf-8 encoding is the
            # fastest test for the lone surrogates that mark undecodable bytes.
            joined = "".join(row)
            if "\x00" not in joined:
                if joined.isascii():
                    yield SourceRow(RowOrigin(source, start), dict(zip(keys, row)))  # noqa: B905
                    continue
                try:
                    joined.encode()
                except UnicodeEncodeError:
                    pass
                else:
                    yield SourceRow(RowOrigin(source, start), dict(zip(keys, row)))  # noqa: B905
                    continue
            reason = _text_problem(joined, encoding) or "unreadable text"
            yield RowProblem(RowOrigin(source, start), _bad_field(keys, row), reason)
        elif row:
            yield RowProblem(
                RowOrigin(source, start),
                None,
                f"row has {len(row)} field{'' if len(row) == 1 else 's'}, header has {width}",
            )
        # else: a blank line, which carries no record


def _bad_field(keys: Sequence[str], row: Sequence[str]) -> str | None:
    """The first field whose text is not clean (only on the rare error path)."""
    for key, value in zip(keys, row, strict=True):
        if "\x00" in value or _SURROGATES.search(value):
            return key
    return None


def _parse_header(reader: CsvReader, *, what: str, encoding: str) -> tuple[list[str], str | None]:
    """Read the header row; return its raw cells and a reason if it is unusable."""
    try:
        cells = next(reader)
    except csv.Error as exc:
        return [], f"{what} header cannot be parsed: {exc}"
    return cells, _text_problem("".join(cells), encoding)


def _header_problem(names: Sequence[str]) -> str | None:
    """Why a list of (already normalised) column names cannot key rows, or None."""
    if any(not name for name in names):
        positions = ", ".join(str(i + 1) for i, name in enumerate(names) if not name)
        return f"header has empty column names (column {positions})"
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        return f"header has duplicate column names: {', '.join(map(repr, duplicates))}"
    return None


def iter_csv_rows(
    path: Path,
    *,
    delimiter: str | None = ",",
    encoding: str = "utf-8-sig",
    source_name: str | None = None,
) -> Iterator[SourceRow | RowProblem]:
    """Stream the rows of a CSV file with a header row, keyed by the stripped header names.

    ``delimiter=None`` sniffs it from the header line. The default encoding accepts
    UTF-8 with or without a BOM. Errors are raised on the first ``next()``.
    """
    _check_delimiter(delimiter)
    label = _check_encoding(encoding)
    source = source_name or str(path)
    _raise_field_limit()
    stream = _open(path, encoding=encoding, binary=False, source=source)
    try:
        with stream:
            lines = _text_lines(stream)
            first, skipped = _first_content_line(lines)
            if first is None:
                raise SourceError(f"{source} is empty: a header row is required")
            chosen = delimiter or sniff_delimiter(first)
            reader = csv.reader(chain((first,), lines), delimiter=chosen, strict=True)
            cells, problem = _parse_header(reader, what=source, encoding=label)
            header = [cell.strip() for cell in cells]
            problem = problem or _header_problem(header)
            if problem is not None:
                raise SourceError(f"{source}: {problem}")
            yield from _iter_csv_records(
                reader, header, source=source, encoding=label, line_offset=skipped
            )
    except OSError as exc:
        raise SourceError(f"cannot read {source}: {exc.strerror or exc}") from exc


def _open(path: Path, *, encoding: str, binary: bool, source: str) -> IO[Any]:
    """Open a source file, turning OS and codec failures into errors that name it."""
    try:
        if binary:
            return open(path, "rb")
        return open(path, encoding=encoding, errors=_UNDECODABLE, newline="")
    except OSError as exc:
        raise SourceError(f"cannot open {source}: {exc.strerror or exc}") from exc
    except LookupError as exc:
        raise ConfigError(f"{encoding!r} is not a text encoding") from exc


def iter_jsonl_rows(
    path: Path,
    *,
    encoding: str = "utf-8",
    source_name: str | None = None,
) -> Iterator[SourceRow | RowProblem]:
    """Stream a JSON-lines file: one object per line, values keep their JSON types.

    UTF-8 lines go to orjson as bytes, skipping a decode step; other encodings are
    decoded by a text stream first. Blank lines are skipped; any other line that is not
    a JSON object is a RowProblem.
    """
    label = _check_encoding(encoding)
    source = source_name or str(path)
    binary = label == "utf-8"
    stream = _open(path, encoding=encoding, binary=binary, source=source)
    try:
        with stream:
            if binary:
                if stream.read(3) != codecs.BOM_UTF8:  # tolerate a BOM, as for CSV
                    stream.seek(0)
                lines: Iterator[Any] = iter(functools.partial(stream.readline, MAX_LINE_CHARS), b"")
            else:
                lines = _text_lines(stream)
            yield from _iter_json_objects(lines, source=source, encoding=label)
    except OSError as exc:
        raise SourceError(f"cannot read {source}: {exc.strerror or exc}") from exc


def _iter_json_objects(
    lines: Iterator[bytes] | Iterator[str],
    *,
    source: str,
    encoding: str,
    lower_keys: bool = False,
    line_offset: int = 0,
) -> Iterator[SourceRow | RowProblem]:
    """Rows from one JSON object per physical line; shared with the export parser.

    ``lower_keys`` folds key case: the export parser keys every format by lower-cased
    column name. ``line_offset`` counts lines already read before ``lines``.
    """
    number = line_offset
    for line in lines:
        number += 1
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            if not line.strip():
                continue  # a blank line carries no record
            reason = _json_line_problem(line, exc, encoding)
            if len(line) >= MAX_LINE_CHARS and not line.endswith(_newline(line)):
                reason = f"line is longer than {MAX_LINE_CHARS} characters"
                _skip_rest_of_line(lines)
            yield RowProblem(RowOrigin(source, number), None, reason)
            continue
        if type(value) is not dict:
            yield RowProblem(
                RowOrigin(source, number), None, f"expected a JSON object, got {_json_type(value)}"
            )
        elif lower_keys:
            folded = {k.lower(): v for k, v in value.items()}
            if len(folded) == len(value):
                yield SourceRow(RowOrigin(source, number), folded)
            else:
                yield RowProblem(
                    RowOrigin(source, number), None, "object has keys that differ only in case"
                )
        else:
            yield SourceRow(RowOrigin(source, number), value)


def _newline(line: bytes | str) -> Any:
    return b"\n" if isinstance(line, bytes) else "\n"


def _skip_rest_of_line(lines: Iterator[bytes] | Iterator[str]) -> None:
    """Drop the remaining pieces of an over-long line so the next line parses cleanly."""
    for piece in lines:
        if piece.endswith(_newline(piece)):
            return


def _json_line_problem(line: bytes | str, exc: orjson.JSONDecodeError, encoding: str) -> str:
    """Why orjson refused a line, naming undecodable bytes when that is the cause."""
    message = str(exc)
    if "not valid UTF-8" in message:
        text = line.decode("utf-8", _UNDECODABLE) if isinstance(line, bytes) else line
        return _text_problem(text, encoding) or f"not valid {encoding}: {message}"
    return f"not valid JSON: {message}"


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"
