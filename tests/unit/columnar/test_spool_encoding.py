"""The columnar planner's bulk spool lines are byte for byte PlanSpool.write's."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_engine.columnar._planner import INSERT, UPDATE, encode_changes
from sync_engine.normalise import FieldValue
from sync_engine.plan import Change, ChangeKind, PlanSpool
from sync_engine.records import RowOrigin

TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8)
ROW = st.tuples(
    st.sampled_from([INSERT, UPDATE]),
    TEXT,
    st.integers(1, 2**31),
    TEXT,
    st.lists(TEXT, max_size=3, unique=True),
)


@given(st.lists(ROW, min_size=1, max_size=20), TEXT)
@settings(max_examples=200, deadline=None)
def test_bulk_lines_equal_write(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[int, str, int, str, list[str]]],
    source: str,
) -> None:
    """Keys and values with quotes, control characters and any script; sets as lists."""
    directory = tmp_path_factory.mktemp("spool")
    frame = pl.DataFrame(
        {
            "key": [r[1] for r in rows],
            "line": pl.Series([r[2] for r in rows], dtype=pl.UInt32),
            "verdict": pl.Series([r[0] for r in rows], dtype=pl.UInt8),
            "Name": [r[3] for r in rows],
            "tags": pl.Series([sorted(r[4]) for r in rows], dtype=pl.List(pl.String)),
        }
    )
    bulk = PlanSpool(directory / "bulk.jsonl")
    bulk.write_encoded(encode_changes(frame, ("Name", "tags"), source), len(rows))
    bulk.close()
    single = PlanSpool(directory / "single.jsonl")
    for verdict, key, line, name, tags in rows:
        kind = ChangeKind.INSERT if verdict == INSERT else ChangeKind.UPDATE
        fields: dict[str, FieldValue] = {"Name": name, "tags": frozenset(tags)}
        single.write(Change(kind, key, fields, RowOrigin(source, line)))
    single.close()
    assert bulk.path.read_bytes() == single.path.read_bytes()
    assert list(bulk.read()) == list(single.read())
    assert bulk.count == single.count == len(rows)
