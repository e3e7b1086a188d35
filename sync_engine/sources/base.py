"""The Source protocol, and a source over rows the caller already has.

A source yields raw rows (``SourceRow``) and rows it could not read (``RowProblem``);
normalising rows into contacts is a later stage, so every source stays small.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from typing import Protocol

import anyio.lowlevel

from sync_engine.records import RowOrigin, RowProblem, SourceRow

__all__ = ["IterableSource", "Source"]

# Rows from an in-memory iterable never await; yield to the loop now and then so
# a million-row list does not starve other tasks.
_CHECKPOINT_EVERY = 1000


class Source(Protocol):
    """Where local truth comes from: a name for reports and a stream of raw rows."""

    # A read-only property, so that implementations may use a plain attribute, a
    # property or a narrower type (a Literal) alike.
    @property
    def name(self) -> str:
        """How reports and row origins call this source."""
        ...

    def read(self) -> AsyncIterator[SourceRow | RowProblem]:
        """Stream every row once; errors that make the whole source unreadable raise."""
        ...


class IterableSource:
    """A source over mappings the caller already has (a list, a generator, a cursor).

    Each mapping is copied, because producers such as database cursors may reuse one
    dict for every row. The origin line is the 1-based position in the iterable.
    """

    def __init__(
        self,
        rows: AsyncIterable[Mapping[str, object]] | Iterable[Mapping[str, object]],
        *,
        name: str = "<iterable>",
    ) -> None:
        self.name = name
        self._rows = rows

    def read(self) -> AsyncIterator[SourceRow | RowProblem]:
        """Stream the caller's rows as SourceRow, or RowProblem for a non-mapping item."""
        if isinstance(self._rows, AsyncIterable):
            return self._read_async(self._rows)
        return self._read_sync(self._rows)

    def _row(self, position: int, item: object) -> SourceRow | RowProblem:
        origin = RowOrigin(self.name, position)
        if isinstance(item, Mapping):
            return SourceRow(origin, dict(item))
        return RowProblem(origin, None, f"expected a mapping, got {type(item).__name__}")

    async def _read_async(
        self, rows: AsyncIterable[Mapping[str, object]]
    ) -> AsyncIterator[SourceRow | RowProblem]:
        position = 0
        async for item in rows:
            position += 1
            yield self._row(position, item)

    async def _read_sync(
        self, rows: Iterable[Mapping[str, object]]
    ) -> AsyncIterator[SourceRow | RowProblem]:
        for position, item in enumerate(rows, start=1):
            if position % _CHECKPOINT_EVERY == 0:
                await anyio.lowlevel.checkpoint()
            yield self._row(position, item)
