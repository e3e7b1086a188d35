"""Copies of the few strings a plan keeps past their block, so the block can go.

polars slices, filters and as-is values share the buffers of the column they came
from (string views): keeping 50 keys of a block keeps that block's whole text, ~2-8 MB
per column. Whatever outlives its block (invalid and unknown rows, registered sets) is
copied out with this first; measured on the 1M-contact plan, that is ~40 MB of RSS.
"""

from __future__ import annotations

import polars as pl

__all__ = ["compact"]

_OWN = pl.lit("")  # concatenating "" writes every string into a fresh buffer


def _owned(name: str, dtype: pl.DataType) -> pl.Expr:
    column = pl.col(name)
    if dtype == pl.String:
        return pl.concat_str(column, _OWN)
    if dtype == pl.List(pl.String):
        return column.list.eval(pl.concat_str(pl.element(), _OWN))
    return column


def compact(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its string and string-list columns in buffers of their own."""
    return frame.select(_owned(name, dtype) for name, dtype in frame.schema.items())
