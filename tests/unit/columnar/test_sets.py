"""Set ids stand for their lists; a subset test by id agrees with the lists themselves."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_engine.columnar._sets import SetRegistry

LISTS = st.lists(st.sampled_from(["a", "b", "c", "d"]), unique=True).map(sorted)


@settings(max_examples=100, deadline=None)
@given(pairs=st.lists(st.tuples(st.none() | LISTS, st.none() | LISTS), max_size=30))
def test_within_is_the_subset_test_row_by_row(
    pairs: list[tuple[list[str] | None, list[str] | None]],
) -> None:
    registry = SetRegistry()
    lists = pl.List(pl.String)
    inner = registry.ids(pl.Series([a for a, _ in pairs], dtype=lists))
    outer = registry.ids(pl.Series([b for _, b in pairs], dtype=lists))
    expected = [a is None or b is None or set(a) <= set(b) for a, b in pairs]
    assert registry.within(inner, outer).to_list() == expected
