"""Hostile input end to end: formula cells, NUL bytes, huge fields, unicode edge cases,
wrong encodings and random config documents each give a valid contact or a clear error
naming where (file, line, field), never a crash or a hang; files the engine writes
neutralise spreadsheet formulas. (Random bytes into the readers: test_readers_fuzz.py.)"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync_engine import ConfigError, SyncConfig, load_config
from sync_engine.contact import Contact, ContactBuilder
from sync_engine.errors import SyncEngineError
from sync_engine.normalise import (
    InvalidValueError,
    Normaliser,
    normalise_email,
    normalise_ids,
    normalise_phone,
    normalise_tags,
    normalise_text,
)
from sync_engine.providers.export_file import iter_export_rows
from sync_engine.providers.unisender import UNISENDER_SCHEMA
from sync_engine.records import RowProblem, SourceRow
from sync_engine.report import Problem, ProblemSink
from sync_engine.tabular import iter_csv_rows, iter_jsonl_rows

HOSTILE = settings(
    max_examples=150,
    deadline=3000,  # ms: a hang or a quadratic blow-up fails loudly
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
T = TypeVar("T")
DANGEROUS = ("=", "+", "-", "@", "\t", "\r")

# Cells an attacker or a broken export would send.
formulas = st.sampled_from(
    [
        "=cmd|' /C calc'!A0",
        "+SUM(1+1)*cmd|' /C calc'!A0",
        "-2+3+cmd|' /C calc'!A0",
        "@SUM(1+1)",
        "\t=1+1",
        "\r=1+1",
        '=HYPERLINK("http://evil.example","x")',
    ]
)
unicode_edges = st.sampled_from(
    [
        "\u202eevil\u202c",  # right-to-left override
        "a\u200bb",  # zero-width space
        "e\u0301",  # combining accent
        "\ufeffbom",
        "\U0001f600",
        "ǅ",
        "ß@straße.de",
        "用户@例子.广告",
        "\x00",
        "nul\x00inside",
        "\x1b[31mred",
    ]
)
huge = st.integers(min_value=10_000, max_value=200_000).map(lambda n: "x" * n)
cells = st.one_of(st.text(max_size=40), formulas, unicode_edges, huge)


def attempt(fn: Callable[[], T], refusal: type[Exception] = SyncEngineError) -> T | Exception:
    """``fn()``, or the ``refusal`` it raised (any other exception propagates: a crash)."""
    try:
        return fn()
    except refusal as error:
        return error


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory)


def builder() -> ContactBuilder:
    return ContactBuilder(
        mapping={"email": "email", "Name": "name", "phone": "phone", "tags": "tags"},
        schema=UNISENDER_SCHEMA,
        normaliser=Normaliser(default_region="RU"),
        key="email",
    )


@HOSTILE
@given(raw=cells)
def test_normalisers_return_a_value_or_refuse_it_clearly(raw: str) -> None:
    """Each normaliser gives a canonical value or an InvalidValueError with a message."""
    for normalise in (
        normalise_email,
        lambda v: normalise_phone(v, "RU"),
        lambda v: normalise_phone(v, None),
        normalise_text,
        normalise_tags,
        normalise_ids,
    ):
        result = attempt(lambda: normalise(raw), InvalidValueError)  # noqa: B023 - called at once
        if isinstance(result, Exception):
            assert str(result)


@HOSTILE
@given(rows=st.lists(st.tuples(cells, cells, cells, cells), min_size=1, max_size=8))
def test_hostile_csv_cells_give_a_contact_or_a_problem_naming_file_line_and_field(
    scratch: Path, rows: list[tuple[str, str, str, str]]
) -> None:
    path = scratch / "hostile.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "phone", "tags"])
        writer.writerows(rows)
    build = builder()
    items = attempt(lambda: list(iter_csv_rows(path)))
    if isinstance(items, Exception):  # the whole file refused: it must say which file
        assert str(path) in str(items)
        return
    for item in items:
        if isinstance(item, SourceRow):
            contact = build.local(item)
            if isinstance(contact, Contact):
                assert contact.key == normalise_email(contact.key)
                continue
            item = contact
        assert isinstance(item, RowProblem)
        assert item.origin.source == str(path)
        assert item.origin.line >= 2
        assert item.reason


@HOSTILE
@given(values=st.dictionaries(st.sampled_from(["email", "name", "tags"]), cells, min_size=1))
def test_hostile_jsonl_values_give_a_contact_or_a_problem(
    scratch: Path, values: dict[str, str]
) -> None:
    import orjson

    path = scratch / "hostile.jsonl"
    path.write_bytes(orjson.dumps(values) + b"\n" + b'{"email": ' + b"\n")
    build = builder()
    items = list(iter_jsonl_rows(path))
    assert isinstance(items[-1], RowProblem)  # the broken second line, by line number
    assert items[-1].origin.line == 2
    first = items[0]
    if isinstance(first, SourceRow):
        outcome = build.local(first)
        assert isinstance(outcome, Contact | RowProblem)
        if isinstance(outcome, RowProblem):
            assert outcome.field is not None or outcome.reason


@pytest.mark.parametrize(
    ("encoding", "name"),
    [
        ("cp1251", "Иван Пётр"),
        ("latin-1", "Jörg Müller"),
        ("utf-16-le", "Jörg"),
        ("koi8-r", "Иван"),
    ],
)
def test_a_file_in_a_wrong_encoding_is_reported_with_its_name_and_line(
    tmp_path: Path, encoding: str, name: str
) -> None:
    """Undecodable bytes are a problem at a line (or a refusal naming the file), not a crash."""
    path = tmp_path / "wrong.csv"
    path.write_bytes(f"email,name\nivan@example.com,{name}\n".encode(encoding))
    items = attempt(lambda: list(iter_csv_rows(path)))
    if isinstance(items, Exception):
        assert str(path) in str(items)
        return
    problems = [i for i in items if isinstance(i, RowProblem)]
    assert problems, items
    assert all(p.origin.source == str(path) and p.origin.line >= 1 for p in problems)


@HOSTILE
@given(rows=st.lists(st.tuples(cells, cells), min_size=0, max_size=6))
def test_the_export_parser_gives_rows_or_problems_for_hostile_cells(
    scratch: Path, rows: list[tuple[str, str]]
) -> None:
    path = scratch / "export.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "Name"])
        writer.writerows(rows)
    items = attempt(lambda: list(iter_export_rows(path, expected_fields=["email", "Name"])))
    if isinstance(items, Exception):
        assert "provider export" in str(items)
        return
    for item in items:
        assert isinstance(item, SourceRow | RowProblem)
        if isinstance(item, RowProblem):
            assert item.origin.line >= 2


config_values = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    formulas,
    unicode_edges,
)
CONFIG_KEYS = {
    "source": ["type", "path", "delimiter", "encoding", "duplicates"],
    "provider": [
        "type",
        "base_url",
        "api_key",
        "list_id",
        "timeout",
        "batch_size",
        "rate_limit",
        "rate_period",
        "concurrency",
        "max_attempts",
        "export_timeout",
    ],
    "sync": ["mode", "key", "max_delete_share", "removal", "default_region"],
    "journal": ["enabled", "dir", "lock_wait"],
}


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    text = str(value)
    escaped = "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in text)
    return f'"{escaped}"'


@settings(HOSTILE, max_examples=int(os.environ.get("HOSTILE_CONFIG_EXAMPLES", "300")))
@given(
    section=st.sampled_from(sorted(CONFIG_KEYS)),
    data=st.data(),
    value=config_values,
)
def test_the_config_loader_accepts_or_names_the_bad_key(
    scratch: Path, section: str, data: st.DataObject, value: object
) -> None:
    """A valid config with one value replaced by anything loads, or a ConfigError says why."""
    key = data.draw(st.sampled_from(CONFIG_KEYS[section]))
    base: dict[str, dict[str, Any]] = {
        "source": {"type": "csv", "path": "c.csv"},
        "provider": {"type": "unisender", "api_key": "k3y-secret-value", "list_id": 1},
        "sync": {},
        "journal": {},
        "mapping": {"email": "email"},
    }
    base[section][key] = value
    lines = []
    for name, table in base.items():
        lines.append(f"[{name}]")
        lines += [f"{toml_value(k)} = {toml_value(v)}" for k, v in table.items()]
    path = scratch / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = attempt(lambda: load_config(path, env={}), ConfigError)
    if isinstance(config, Exception):
        assert str(config)
        assert "k3y-secret-value" not in str(config)
        return
    assert isinstance(config, SyncConfig)


@HOSTILE
@given(data=st.binary(max_size=300))
def test_the_config_loader_refuses_random_bytes_with_a_config_error(
    scratch: Path, data: bytes
) -> None:
    path = scratch / "random.toml"
    path.write_bytes(data)
    config = attempt(lambda: load_config(path, env={}), ConfigError)
    assert isinstance(config, SyncConfig) or str(config)


@HOSTILE
@given(
    problems=st.lists(
        st.builds(
            Problem,
            stage=st.sampled_from(["local", "remote", "provider", "batch"]),
            reason=cells,
            key=st.one_of(st.none(), cells),
            source=st.one_of(st.none(), cells),
            line=st.one_of(st.none(), st.integers(min_value=-5, max_value=10**6)),
            field=st.one_of(st.none(), cells),
            code=st.one_of(formulas, st.text(max_size=10)),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_the_rejects_file_never_holds_a_live_formula(
    scratch: Path, problems: list[Problem]
) -> None:
    """Every cell of the rejects CSV that a spreadsheet would run gets a leading apostrophe."""
    path = scratch / "rejects.csv"
    sink = ProblemSink(path)
    for problem in problems:
        sink.add(problem)
    sink.close()
    with path.open(encoding="utf-8", newline="") as handle:
        read = list(csv.reader(handle))
    assert len(read) == len(problems) + 1
    for row in read[1:]:
        for cell in row:
            assert not cell.startswith(DANGEROUS), row
    for row, problem in zip(read[1:], problems, strict=True):
        reason = row[ProblemSink.COLUMNS.index("reason")]
        assert reason in (problem.reason, "'" + problem.reason)


def test_config_values_the_fuzzer_found_give_an_answer_not_a_crash(scratch: Path) -> None:
    """Found by the property above: a NUL in an encoding name crashed codecs.lookup, and
    ``~name`` for no such user crashed expanduser."""
    path = scratch / "found.toml"
    body = (
        '[provider]\ntype = "unisender"\napi_key = "k3y-secret-value"\n[mapping]\nemail = "email"\n'
    )
    path.write_text('[source]\npath = "c.csv"\nencoding = "\\u0000"\n' + body, encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown encoding"):
        load_config(path, env={})
    path.write_text('[source]\npath = "~no-such-user-0/c.csv"\n' + body, encoding="utf-8")
    config = load_config(path, env={})
    assert str(config.source.path).endswith("~no-such-user-0/c.csv")  # type: ignore[union-attr]
