"""The paged read: concurrent pages written in order, and inconsistent reads refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sync_engine.errors import ExportError
from sync_engine.providers._esputnik_read import (
    InconsistentRead,
    Page,
    SearchSnapshot,
    read_consistent,
    read_pages,
)


class Base:
    """A contact base paged like eSputnik's search, which a test may change mid-read."""

    def __init__(self, count: int) -> None:
        self.ids = list(range(1, count + 1))
        self.calls: list[int] = []
        self.on_call: Any = None

    async def fetch(self, start: int, rows: int) -> Page:
        self.calls.append(start)
        if self.on_call is not None:
            self.on_call(len(self.calls))
        page = self.ids[start - 1 : start - 1 + rows]
        contacts = [{"id": i, "channels": [{"type": "email", "value": f"u{i}@x.io"}]} for i in page]
        return Page(contacts, len(self.ids))


async def test_pages_are_read_in_windows_and_spooled_in_order(tmp_path: Path) -> None:
    base = Base(23)
    count = await read_pages(base.fetch, tmp_path / "s.jsonl", page_size=5, concurrency=2)
    assert count == 23
    assert sorted(base.calls) == [1, 6, 11, 16, 21]
    emails = [r.values["email"] async for r in SearchSnapshot(tmp_path / "s.jsonl").records()]  # type: ignore[union-attr]
    assert emails == [f"u{i}@x.io" for i in range(1, 24)]


async def test_a_removal_while_paging_is_caught_by_the_total(tmp_path: Path) -> None:
    """A contact removed from an early page shifts the rest: TotalCount tells."""
    base = Base(12)
    base.on_call = lambda n: base.ids.remove(2) if n == 2 else None
    with pytest.raises(InconsistentRead, match="TotalCount changed"):
        await read_pages(base.fetch, tmp_path / "s.jsonl", page_size=5, concurrency=1)


async def test_an_overlap_is_caught_by_the_ids(tmp_path: Path) -> None:
    """A page that repeats contacts (ids not rising) is refused even if totals agree."""
    base = Base(10)

    async def shifted(start: int, rows: int) -> Page:
        return await base.fetch(max(1, start - 1), rows)

    with pytest.raises(InconsistentRead, match="overlap"):
        await read_pages(shifted, tmp_path / "s.jsonl", page_size=5, concurrency=1)


async def test_an_inconsistent_read_is_retried_then_refused(tmp_path: Path) -> None:
    base = Base(12)
    base.on_call = lambda n: base.ids.remove(2) if n == 2 else None  # once only
    count = await read_consistent(
        base.fetch, tmp_path / "s.jsonl", page_size=5, concurrency=2, attempts=2
    )
    assert count == 11

    always = Base(12)
    always.on_call = lambda n: always.ids.append(max(always.ids) + 1)  # grows on every call
    with pytest.raises(ExportError, match="kept changing"):
        await read_consistent(
            always.fetch, tmp_path / "s.jsonl", page_size=5, concurrency=2, attempts=3
        )
