"""Tag and id sets as small integers: one number per distinct set for the whole plan.

Sets repeat a lot (a few hundred distinct tag lists among a million contacts), so both
sides hold a UInt32 per row instead of a list: joins, sorts and hashes stay cheap, equal
sets compare as equal numbers, and "is the local set inside the remote one?" is decided
once per distinct pair of sets. A set is registered by its 64-bit hash and checked item
by item against the one registered under that hash.
"""

from __future__ import annotations

import polars as pl

from ._blocks import NotColumnar
from ._compact import compact

__all__ = ["SetRegistry"]

_LIST = pl.List(pl.String)


class SetRegistry:
    """Distinct sorted item lists, numbered in the order they are first met."""

    def __init__(self) -> None:
        self._items = pl.Series("items", [], dtype=_LIST)
        self._by_hash = pl.DataFrame(schema={"sh": pl.UInt64, "id": pl.UInt32})

    def ids(self, lists: pl.Series) -> pl.Series:
        """The id of each list (sorted, without repeats); null stays null."""
        frame = lists.alias("items").to_frame().with_columns(sh=pl.col("items").hash())
        distinct = frame.filter(pl.col("items").is_not_null()).unique()
        if distinct.get_column("sh").is_duplicated().any():
            raise NotColumnar("two different sets share a 64-bit hash")
        known = distinct.join(self._by_hash, on="sh", how="left")
        matched = known.filter(pl.col("id").is_not_null())
        if not matched.is_empty():
            stored = self._items.gather(matched.get_column("id"))
            if not (stored == matched.get_column("items")).all():
                raise NotColumnar("two different sets share a 64-bit hash")
        fresh = known.filter(pl.col("id").is_null())
        if not fresh.is_empty():
            start = self._items.len()
            numbered = fresh.select(
                "sh", id=pl.int_range(start, start + fresh.height, dtype=pl.UInt32)
            )
            # Copied out: the sets would otherwise keep the text of the block they came from.
            items = compact(fresh.select("items")).get_column("items")
            self._items = pl.concat([self._items, items])
            self._by_hash = pl.concat([self._by_hash, numbered])
        mapped = frame.join(self._by_hash, on="sh", how="left", maintain_order="left")
        return mapped.get_column("id").alias(lists.name)

    def empty(self) -> int:
        """The id of the empty set."""
        ids = self.ids(pl.Series("items", [[]], dtype=_LIST))
        return int(ids[0])

    def items(self, ids: pl.Series) -> pl.Series:
        """The lists behind ids (null for null)."""
        return self._items.gather(ids).alias(ids.name)

    def within(self, inner: pl.Series, outer: pl.Series) -> pl.Series:
        """Row by row: is set ``inner`` a subset of set ``outer``? (True where either is
        null: such rows are decided elsewhere.) Only rows with two different sets are
        looked at, each distinct pair once: most rows hold the same set on both sides."""
        pairs = pl.DataFrame({"inner": inner, "outer": outer})
        differ = (
            pairs.select(
                pl.col("inner").is_not_null()
                & pl.col("outer").is_not_null()
                & (pl.col("inner") != pl.col("outer"))
            )
            .to_series()
            .arg_true()
        )
        result = pl.repeat(True, pairs.height, dtype=pl.Boolean, eager=True)
        if differ.is_empty():
            return result
        asked = pairs[differ]
        todo = asked.unique()
        decided = todo.with_columns(
            within=self.items(todo.get_column("inner"))
            .list.set_difference(self.items(todo.get_column("outer")))
            .list.len()
            == 0
        )
        joined = asked.join(decided, on=["inner", "outer"], how="left", maintain_order="left")
        return result.scatter(differ, joined.get_column("within"))
