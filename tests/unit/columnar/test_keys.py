"""The export's keys spilled to disk are found again by line, and only those asked for."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_engine.columnar._keys import KeyStore, key_check


def test_keys_are_found_by_line_across_blocks_and_the_files_go_on_close(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    store.add(pl.DataFrame({"line": [2, 3], "key": ["a@x.io", "b@x.io"], "digest": [1, 2]}))
    store.add(pl.DataFrame({"line": [7], "key": ["c@x.io"], "digest": [3]}))
    found = store.keys(pl.Series([7, 2, 99], dtype=pl.UInt32)).sort("line")
    assert found.rows() == [(2, "a@x.io"), (7, "c@x.io")]  # 99 has no key: not invented
    assert store.keys(pl.Series([], dtype=pl.UInt32)).is_empty()
    store.close()
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=60, deadline=None)
@given(
    blocks=st.lists(st.lists(st.booleans(), max_size=12), max_size=5),
    asked=st.lists(st.integers(min_value=0, max_value=70), max_size=30),
)
def test_any_lines_are_found_in_line_order_whatever_the_blocks(
    tmp_path_factory: pytest.TempPathFactory, blocks: list[list[bool]], asked: list[int]
) -> None:
    """Blocks of consecutive export lines, some keyless (False), some blocks empty; the
    lines asked repeat, fall between blocks, before the first and after the last."""
    store = KeyStore(tmp_path_factory.mktemp("keys"))
    stored: dict[int, str] = {}
    line = 2
    for block in blocks:
        keyed = {line + i: f"k{line + i}@x.io" for i, has_key in enumerate(block) if has_key}
        store.add(
            pl.DataFrame(
                {"line": list(keyed), "key": list(keyed.values())},
                schema={"line": pl.UInt32, "key": pl.String},
            )
        )
        stored.update(keyed)
        line += len(block)
    try:
        found = store.keys(pl.Series(asked, dtype=pl.UInt32))
        expected = sorted((at, stored[at]) for at in set(asked) if at in stored)
        assert found.rows() == expected
    finally:
        store.close()


def test_the_check_hash_is_independent_of_the_index_hash() -> None:
    keys = pl.Series(["a@x.io", "b@x.io"])
    checks = pl.select(key_check(pl.lit(keys))).to_series()
    assert checks.to_list() != keys.hash().to_list()
    assert checks.n_unique() == 2


def test_one_index_hash_for_two_keys_hands_the_plan_to_the_row_path() -> None:
    """A 64-bit ``kh`` match whose check hashes differ is a collision: never trusted."""
    from sync_engine.columnar._blocks import NotColumnar
    from sync_engine.columnar._remote import check_same_keys

    firsts = pl.DataFrame(
        {"kh": [5], "first_kc": [10]}, schema={"kh": pl.UInt64, "first_kc": pl.UInt32}
    )
    same = pl.DataFrame({"kh": [5], "kc": [10]}, schema={"kh": pl.UInt64, "kc": pl.UInt32})
    check_same_keys(same, firsts)
    other = pl.DataFrame({"kh": [5], "kc": [11]}, schema={"kh": pl.UInt64, "kc": pl.UInt32})
    with pytest.raises(NotColumnar, match="share a 64-bit hash"):
        check_same_keys(other, firsts)
