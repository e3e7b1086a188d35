"""A few export rows, re-read on demand: the old values behind a dry run's sampled updates.

The index keeps digests, not values; a dry run shows old -> new for a handful of
updates, so their rows are read again (one more pass over the export, only then).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence

import anyio.to_thread
import polars as pl

from sync_engine.contact import RemoteRecord
from sync_engine.records import RowOrigin, RowProblem

from ._blocks import CsvLayout

__all__ = ["ExportRows"]

_EXPORT_SOURCE = "provider export"


class ExportRows:
    """A RemoteSnapshot of the export rows at ``lines`` (in file order)."""

    def __init__(
        self,
        layout: CsvLayout,
        lines: frozenset[int],
        *,
        fields: Sequence[str],
        lock: Callable[[Mapping[str, object]], str | None],
    ) -> None:
        self._layout = layout
        self._lines = lines
        self._fields = list(fields)
        self._lock = lock

    async def records(self) -> AsyncIterator[RemoteRecord | RowProblem]:
        for record in await anyio.to_thread.run_sync(self._read):
            yield record

    def _read(self) -> list[RemoteRecord]:
        layout = self._layout
        positions = [(name, layout.index(name.lower())) for name in self._fields]
        wanted = pl.Series(sorted(self._lines), dtype=pl.UInt32).implode()
        found: list[RemoteRecord] = []
        for block in layout.blocks():
            frame = block.frame.with_columns(
                line=pl.int_range(
                    block.first_line, block.first_line + block.frame.height, dtype=pl.UInt32
                )
            ).filter(pl.col("line").is_in(wanted))
            for row in frame.iter_rows(named=True):
                values: dict[str, object] = {
                    name: (row[f"c{position}"] or "") if position is not None else None
                    for name, position in positions
                }
                origin = RowOrigin(_EXPORT_SOURCE, row["line"])
                found.append(RemoteRecord(origin, values, self._lock(values)))
            if len(found) == len(self._lines):
                break
        return found
