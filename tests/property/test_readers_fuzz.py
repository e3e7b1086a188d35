"""Readers under random input: they report, they never crash or hang, and they round-trip."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sync_engine.errors import SyncEngineError
from sync_engine.providers.export_file import iter_export_rows
from sync_engine.records import RowProblem, SourceRow
from sync_engine.tabular import iter_csv_rows, iter_jsonl_rows

FUZZ = settings(
    max_examples=200,
    deadline=2000,  # ms; a hang or quadratic blow-up fails loudly
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    # Module-scoped: hypothesis reruns the test body, and a function-scoped tmp_path
    # would be shared across examples anyway.
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory) / "input"


def drain(items: Iterator[SourceRow | RowProblem]) -> int:
    """Consume every item, checking each is a row or a problem; SyncEngineError may end it."""
    count = 0
    try:
        for item in items:
            assert isinstance(item, SourceRow | RowProblem), item
            if isinstance(item, SourceRow):
                assert all(isinstance(key, str) for key in item.values)
            count += 1
    except SyncEngineError:
        pass
    return count


def _zip(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("export.csv", data)
    return buffer.getvalue()


# Random bytes, biased towards the structure the readers look for.
MARKERS = [
    *(b",", b";", b"\t", b"|", b'"', b"\n", b"\r\n", b"\r", b"\x00"),
    *(b"[", b"]", b"{", b"}", b"email"),
    *(b"\xff", b"\xd0\x98", b"\xef\xbb\xbf", b"\xfe\xff", b"\xff\xfe"),  # bad, UTF-8, BOMs
]
structured_bytes = st.lists(
    st.one_of(st.binary(max_size=20), st.sampled_from(MARKERS)), max_size=60
).map(b"".join)

wrappers: list[Callable[[bytes], bytes]] = [
    lambda data: data,
    gzip.compress,
    bz2.compress,
    _zip,
    lambda data: b"\x1f\x8b" + data,  # a gzip magic over garbage
    lambda data: b"PK\x03\x04" + data,  # a zip magic over garbage
    lambda data: b"BZh9" + data,  # a bzip2 magic over garbage
]


@FUZZ
@given(
    data=structured_bytes, sniff=st.booleans(), encoding=st.sampled_from(["utf-8-sig", "cp1251"])
)
def test_csv_reader_survives_random_bytes(
    scratch: Path, data: bytes, sniff: bool, encoding: str
) -> None:
    """Any byte string yields rows and problems, or a SyncEngineError, nothing else."""
    scratch.write_bytes(data)
    drain(iter_csv_rows(scratch, delimiter=None if sniff else ",", encoding=encoding))


@FUZZ
@given(data=structured_bytes)
def test_jsonl_reader_survives_random_bytes(scratch: Path, data: bytes) -> None:
    """Any byte string yields rows and problems, or a SyncEngineError, nothing else."""
    scratch.write_bytes(data)
    drain(iter_jsonl_rows(scratch))


@FUZZ
@given(
    data=structured_bytes,
    wrap=st.sampled_from(wrappers),
    expected=st.sampled_from([(), ("email",), ("email", "email_list_ids")]),
)
def test_export_reader_survives_random_bytes(
    scratch: Path, data: bytes, wrap: Callable[[bytes], bytes], expected: tuple[str, ...]
) -> None:
    """Compressed or not, any byte string yields rows, problems or a SyncEngineError."""
    scratch.write_bytes(wrap(data))
    drain(iter_export_rows(scratch, expected_fields=expected))


# --- round trips ----------------------------------------------------------------------

# Any text csv.writer can carry: no NUL (reported by design) and no lone surrogates
# (they cannot be encoded, so no file contains them).
cell_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
# Header names as they arrive after stripping: non-empty, no outer whitespace, no BOM.
header_name = cell_text.map(str.strip).filter(lambda name: name and not name.startswith("\ufeff"))


@st.composite
def tables(
    draw: st.DrawFn, names: st.SearchStrategy[str], min_columns: int = 1
) -> tuple[list[str], list[list[str]]]:
    header = draw(st.lists(names, min_size=min_columns, max_size=6, unique=True))
    body = draw(
        st.lists(st.lists(cell_text, min_size=len(header), max_size=len(header)), max_size=8)
    )
    return header, body


def as_dicts(header: list[str], body: list[list[str]]) -> list[dict[str, object]]:
    return [dict(zip(header, row, strict=True)) for row in body]


def written(
    header: list[str],
    body: list[list[str]],
    delimiter: str,
    newline: str,
    quote_all: bool = False,
) -> bytes:
    buffer = io.StringIO()
    if quote_all:
        writer = csv.writer(
            buffer, delimiter=delimiter, lineterminator=newline, quoting=csv.QUOTE_ALL
        )
    else:
        writer = csv.writer(buffer, delimiter=delimiter, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(body)
    return buffer.getvalue().encode("utf-8")


@FUZZ
@given(
    table=tables(header_name),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    newline=st.sampled_from(["\n", "\r\n"]),
    quote_all=st.booleans(),
)
def test_csv_round_trip(
    scratch: Path,
    table: tuple[list[str], list[list[str]]],
    delimiter: str,
    newline: str,
    quote_all: bool,
) -> None:
    """Whatever csv.writer writes, iter_csv_rows reads back equal, with no problems."""
    header, body = table
    # Python 3.11's writer quotes a field for the characters of its lineterminator only:
    # with "\n" it leaves a lone "\r" bare, which no CSV reader can take back.
    assume(
        newline == "\r\n"
        or quote_all
        or not any("\r" in cell for row in [header, *body] for cell in row)
    )
    scratch.write_bytes(written(header, body, delimiter, newline, quote_all))
    items = list(iter_csv_rows(scratch, delimiter=delimiter))
    good = [item for item in items if isinstance(item, SourceRow)]
    assert len(good) == len(items), items
    assert [dict(item.values) for item in good] == as_dicts(header, body)


# Plain names and at least two columns keep the sniffer honest: a name holding a
# candidate delimiter could make another delimiter look likelier, and a one-column
# header has no delimiter to find.
plain_name = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)


@FUZZ
@given(
    table=tables(plain_name, min_columns=2),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    wrap=st.sampled_from(wrappers[:4]),
)
def test_export_round_trip_with_sniffing(
    scratch: Path,
    table: tuple[list[str], list[list[str]]],
    delimiter: str,
    wrap: Callable[[bytes], bytes],
) -> None:
    """An export written with any delimiter and compression reads back equal."""
    header, body = table
    scratch.write_bytes(wrap(written(header, body, delimiter, "\r\n")))
    items = list(iter_export_rows(scratch, expected_fields=header[:1]))
    good = [item for item in items if isinstance(item, SourceRow)]
    assert len(good) == len(items), items
    assert [dict(item.values) for item in good] == as_dicts(header, body)
