"""Parse a contact export file downloaded from a provider, whatever shape it comes in.

UniSender documents no format for the file behind ``file_to_download`` (providers.md
§1.3). Clients read it as UTF-8 CSV with a header row, but one guesses the delimiter
and another checks for gzip, so this parser sniffs instead of assuming:

* compression by magic bytes: gzip, zip (one data member), bzip2, or none;
* text encoding by BOM: UTF-8 (with or without BOM), UTF-16, UTF-32;
* content by its first non-blank character: ``[`` a JSON array with one element per
  line, ``{`` JSON lines, anything else CSV with a sniffed delimiter and a header row,
  or no header when the first row matches the requested fields by count only.

Everything streams: memory stays flat however large the export. Values are keyed by
lower-cased column name. A bad row is a RowProblem; a file that cannot be trusted as a
whole (truncated, corrupt, no recognisable columns) raises ``ExportError``. An empty
file is an empty list (that is what a headerless export of no contacts looks like).
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import csv
import gzip
import io
import lzma
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from pathlib import Path
from typing import IO, cast

import orjson

from sync_engine.errors import ExportError
from sync_engine.records import RowOrigin, RowProblem, SourceRow

# Package-internal building blocks shared with the local-file readers.
from sync_engine.tabular import (
    _UNDECODABLE,
    _encoding_label,
    _first_content_line,
    _header_problem,
    _iter_csv_records,
    _iter_json_objects,
    _json_line_problem,
    _json_type,
    _parse_header,
    _raise_field_limit,
    _text_lines,
    sniff_delimiter,
)

__all__ = ["iter_export_rows"]

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # an archive with members, an empty one
_BZIP2_MAGIC = b"BZh"
_DATA_SUFFIXES = (".csv", ".json", ".jsonl", ".txt")

# What a truncated or corrupt compressed stream raises while it is being read.
_STREAM_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile)


def iter_export_rows(
    path: Path,
    *,
    expected_fields: Sequence[str] = (),
    source_name: str = "provider export",
) -> Iterator[SourceRow | RowProblem]:
    """Stream the rows of a provider export file, keyed by lower-cased column name.

    ``expected_fields`` are the field names the export was requested with. They decide
    whether a CSV's first row is a header (it names at least one of them) or data (it
    names none but has exactly that many columns, read in that order).
    """
    expected = [field.strip().lower() for field in expected_fields]
    if len(set(expected)) != len(expected):
        raise ValueError(f"expected_fields has duplicates: {list(expected_fields)}")
    _raise_field_limit()
    source = source_name
    try:
        with contextlib.ExitStack() as stack:
            binary = _open_decompressed(path, stack, source)
            encoding = _sniff_encoding(binary)
            label = _encoding_label(encoding)
            text = stack.enter_context(
                io.TextIOWrapper(binary, encoding=encoding, errors=_UNDECODABLE, newline="")
            )
            lines = _text_lines(text)
            first, skipped = _first_content_line(lines)
            if first is None:
                # A headerless export of an empty list is an empty file, so no content
                # means no contacts. A failed download that leaves an empty file looks
                # the same; the caller guards against that (status, size, counts).
                return
            lead = first.lstrip()[:1]
            if lead == "[":
                yield from _iter_json_array(
                    first, lines, source=source, encoding=label, line_number=skipped + 1
                )
            elif lead == "{":
                yield from _iter_json_objects(
                    chain((first,), lines),
                    source=source,
                    encoding=label,
                    lower_keys=True,
                    line_offset=skipped,
                )
            else:
                yield from _iter_csv(
                    first, lines, expected, source=source, encoding=label, line_offset=skipped
                )
    except _STREAM_ERRORS as exc:
        raise ExportError(f"{source}: the export file is truncated or corrupt: {exc}") from exc


def _open_decompressed(path: Path, stack: contextlib.ExitStack, source: str) -> IO[bytes]:
    """Open ``path`` and undo any compression, judged by magic bytes, not by file name."""
    try:
        raw = stack.enter_context(open(path, "rb"))  # noqa: SIM115 - closed by the stack
    except OSError as exc:
        raise ExportError(f"{source}: cannot open {path}: {exc.strerror or exc}") from exc
    magic = raw.read(4)
    raw.seek(0)
    if magic.startswith(_GZIP_MAGIC):
        return _closed_by(stack, gzip.GzipFile(fileobj=raw, mode="rb"))
    if magic.startswith(_BZIP2_MAGIC) and magic[3:4].isdigit():
        return _closed_by(stack, bz2.BZ2File(raw))
    if magic in _ZIP_MAGICS:
        archive = stack.enter_context(zipfile.ZipFile(raw))
        member = _pick_member(archive, source)
        try:
            return stack.enter_context(archive.open(member))
        except (RuntimeError, NotImplementedError) as exc:  # encrypted, unknown method
            raise ExportError(f"{source}: cannot read {member.filename!r}: {exc}") from exc
    return raw


def _closed_by(stack: contextlib.ExitStack, stream: gzip.GzipFile | bz2.BZ2File) -> IO[bytes]:
    # Both are binary file objects at run time; typeshed just does not call them IO[bytes].
    stack.callback(stream.close)
    return cast("IO[bytes]", stream)


def _pick_member(archive: zipfile.ZipFile, source: str) -> zipfile.ZipInfo:
    """The archive's only data file, else its first file that looks like data."""
    members = [
        info
        for info in archive.infolist()
        if not info.is_dir() and not info.filename.startswith("__MACOSX/")
    ]
    if len(members) == 1:
        return members[0]
    for info in members:
        if info.filename.lower().endswith(_DATA_SUFFIXES):
            return info
    names = ", ".join(repr(info.filename) for info in members) or "none"
    raise ExportError(
        f"{source}: the zip archive holds no single data file "
        f"(want one member, or a {'/'.join(_DATA_SUFFIXES)} file; found {names})"
    )


def _sniff_encoding(stream: IO[bytes]) -> str:
    """UTF-16/32 when a BOM says so; otherwise UTF-8, tolerating a BOM."""
    peek: Callable[[int], bytes] | None = getattr(stream, "peek", None)
    head = peek(4)[:4] if peek is not None else b""
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8-sig"


def _iter_csv(
    first: str,
    lines: Iterator[str],
    expected: Sequence[str],
    *,
    source: str,
    encoding: str,
    line_offset: int,
) -> Iterator[SourceRow | RowProblem]:
    """CSV rows, after deciding whether the first row is a header or already data."""
    reader = csv.reader(chain((first,), lines), delimiter=sniff_delimiter(first), strict=True)
    cells, problem = _parse_header(reader, what=source, encoding=encoding)
    if not cells:
        raise ExportError(f"{source}: {problem}")
    names = [cell.strip().lower() for cell in cells]
    if not expected or not set(names).isdisjoint(expected):
        problem = problem or _header_problem(names)
        if problem is not None:
            raise ExportError(f"{source}: {problem}")
        header: Sequence[str] = names
    elif len(names) == len(expected):
        # No expected name in the first row, but exactly the requested number of
        # columns: the one client that reads this file treats it as headerless data in
        # field_names order, so that row is the first record, not a header.
        header = expected
        origin = RowOrigin(source, line_offset + 1)
        if problem is None:
            yield SourceRow(origin, dict(zip(header, cells, strict=True)))
        else:
            yield RowProblem(origin, None, problem)
    else:
        raise ExportError(
            f"{source}: cannot find the requested columns; expected "
            f"{', '.join(expected)}; the first row has {len(cells)} columns: "
            f"{', '.join(repr(cell) for cell in cells[:20])}"
        )
    yield from _iter_csv_records(
        reader, header, source=source, encoding=encoding, line_offset=line_offset
    )


def _iter_json_array(
    first: str,
    lines: Iterator[str],
    *,
    source: str,
    encoding: str,
    line_number: int,
) -> Iterator[SourceRow | RowProblem]:
    """Elements of a JSON array written one element per line, streamed line by line.

    Streaming an arbitrary JSON array needs an incremental parser; the per-line forms
    (``json.dumps`` per element, or pretty-printed with one element per line) cover
    what exporters write, and a single-line array is already in memory anyway.
    Anything else is refused with ExportError rather than guessed at.
    """
    text = first.strip()
    try:
        whole = orjson.loads(text)
    except orjson.JSONDecodeError:
        whole = None
    if isinstance(whole, list):
        origin = RowOrigin(source, line_number)
        for element in whole:
            yield _array_element(element, origin)
        yield from _trailing_content(lines, source=source, line_number=line_number)
        return

    number = line_number
    closed = False
    for line in chain((text[1:],), lines):  # the first line without its "["
        element = line.strip()
        if element and closed:
            yield RowProblem(
                RowOrigin(source, number), None, "content after the end of the JSON array"
            )
        elif element:
            if element[0] == ",":
                element = element[1:].lstrip()
            if element.endswith(","):
                element = element[:-1].rstrip()
            elif element.endswith("]"):
                inner = element[:-1].rstrip()
                if not inner or inner.endswith("}"):
                    closed, element = True, inner
            if element:
                yield _array_line(element, number, source=source, encoding=encoding)
        number += 1
    if not closed:
        raise ExportError(f"{source}: the JSON array never closes; the file looks truncated")


def _array_line(element: str, number: int, *, source: str, encoding: str) -> SourceRow | RowProblem:
    """One element line; a fragment of a multi-line element means the layout is unsupported."""
    origin = RowOrigin(source, number)
    try:
        value = orjson.loads(element)
    except orjson.JSONDecodeError as exc:
        if element[0] == "{" and element[-1] == "}":
            return RowProblem(origin, None, _json_line_problem(element, exc, encoding))
        raise ExportError(
            f"{origin}: not one whole JSON value per line; a JSON array export is read only "
            f"when each element sits on its own line ({exc})"
        ) from None
    return _array_element(value, origin)


def _array_element(value: object, origin: RowOrigin) -> SourceRow | RowProblem:
    """An object keyed by lower-cased names, like every other export layout."""
    if type(value) is not dict:
        return RowProblem(origin, None, f"expected a JSON object, got {_json_type(value)}")
    folded = {str(key).lower(): item for key, item in value.items()}
    if len(folded) != len(value):
        return RowProblem(origin, None, "object has keys that differ only in case")
    return SourceRow(origin, folded)


def _trailing_content(
    lines: Iterator[str], *, source: str, line_number: int
) -> Iterator[RowProblem]:
    """Anything after a complete one-line array is reported, never silently ignored."""
    for number, line in enumerate(lines, start=line_number + 1):
        if line.strip():
            yield RowProblem(RowOrigin(source, number), None, "content after the JSON array")
