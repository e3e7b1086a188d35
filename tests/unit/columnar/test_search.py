"""Hashes are found in a sorted column exactly where they are, and nowhere else."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_engine.columnar._search import SortedHashes

HASHES = st.integers(min_value=0, max_value=2**64 - 1)
EDGES = st.sampled_from([0, 1, 2**63 - 1, 2**63, 2**64 - 2, 2**64 - 1])


def positions(column: list[int], wanted: list[int]) -> list[int | None]:
    index = SortedHashes(pl.Series(column, dtype=pl.UInt64))
    found = index.positions(pl.Series(wanted, dtype=pl.UInt64))
    assert found.dtype == pl.UInt32
    return found.to_list()


@settings(max_examples=200, deadline=None)
@given(
    column=st.sets(HASHES | EDGES, max_size=300),
    absent=st.lists(HASHES | EDGES, max_size=50),
    clustered=st.integers(min_value=0, max_value=2**64 - 1000),
)
def test_every_hash_is_found_at_its_row_and_absent_ones_are_null(
    column: set[int], absent: list[int], clustered: int
) -> None:
    # Some hashes crowded into one bucket, as a skewed (or tiny) index has them.
    rows = sorted(column | {clustered + i for i in range(0, 40, 3)})
    where = {value: row for row, value in enumerate(rows)}
    wanted = [*rows[::-1], *absent, *rows[:5]]
    assert positions(rows, wanted) == [where.get(value) for value in wanted]


def test_an_empty_column_finds_nothing_and_no_hashes_ask_nothing() -> None:
    assert positions([], [0, 5]) == [None, None]
    assert positions([1, 2], []) == []


def test_a_large_uniform_column() -> None:
    """100k hashes of real keys: every one found, and 10k others not."""
    keys = pl.int_range(0, 110_000, eager=True).cast(pl.String).hash()
    column = keys.head(100_000).sort()
    index = SortedHashes(column)
    found = index.positions(keys)
    assert found.head(100_000).null_count() == 0
    assert (column.gather(found.head(100_000)) == keys.head(100_000)).all()
    assert found.tail(10_000).null_count() == 10_000
