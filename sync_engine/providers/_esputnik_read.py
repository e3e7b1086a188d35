"""Reading eSputnik's contacts back: paged search, checked for consistency, spooled to disk.

eSputnik has no export-to-file. Contacts are read 500 at a time by ``startindex``,
sorted by contact id, with the total in the ``TotalCount`` header. Paging a base that
changes underneath shifts pages: a contact removed meanwhile makes the next page skip
one, a contact added may show up twice. Either would make the diff plan false inserts
or, worse, false removals. So every page must report the same total, ids must rise
strictly across pages, and the row count must equal the total; a read that breaks any
of these is thrown away and done again, and after ``attempts`` such reads the snapshot
is refused (ExportError), which stops the run before it changes anything.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import orjson
import structlog
from anyio import AsyncFile

from sync_engine.contact import RemoteRecord
from sync_engine.errors import ExportError, FatalProviderError, ProviderError
from sync_engine.records import RowOrigin, RowProblem
from sync_engine.sources._threaded import iterate_in_thread

from ._esputnik_wire import contact_values

__all__ = ["InconsistentRead", "Page", "SearchSnapshot", "read_consistent", "read_pages"]

log = structlog.get_logger("sync_engine.esputnik")


@dataclass(frozen=True, slots=True)
class Page:
    """One search answer: its contacts and the ``TotalCount`` it reported (if any)."""

    contacts: Sequence[Mapping[str, Any]]
    total: int | None


Fetch = Callable[[int, int], Awaitable[Page]]  # (startindex, maxrows) -> page


class InconsistentRead(Exception):
    """The base changed while it was being paged; the read cannot be trusted."""


class _Spool:
    """Checks pages in order and writes their contacts to a JSON-lines file."""

    def __init__(self, sink: AsyncFile[bytes], total: int | None) -> None:
        self._sink = sink
        self.total = total
        self.count = 0
        self.last_id = -math.inf

    async def take(self, start: int, page: Page) -> None:
        if page.total != self.total:
            raise InconsistentRead(
                f"TotalCount changed from {self.total} to {page.total} while paging"
            )
        lines: list[bytes] = []
        for contact in page.contacts:
            raw_id = contact.get("id")
            if not isinstance(raw_id, int) or raw_id <= self.last_id:
                raise InconsistentRead(
                    f"contact ids do not rise at row {start + len(lines)}: pages overlap"
                )
            self.last_id = raw_id
            lines.append(orjson.dumps(contact_values(contact)))
        if lines:
            await self._sink.write(b"\n".join(lines) + b"\n")
        self.count += len(lines)


async def read_pages(fetch: Fetch, path: Path, *, page_size: int, concurrency: int) -> int:
    """One full read into ``path``; the number of contacts. Raises InconsistentRead."""
    first = await fetch(1, page_size)
    async with await anyio.open_file(path, "wb") as sink:
        spool = _Spool(sink, first.total)
        await spool.take(1, first)
        if first.total is None:
            # No total to plan pages by: read on until a short page, one at a time.
            page = first
            while len(page.contacts) == page_size:
                page = await fetch(spool.count + 1, page_size)
                await spool.take(spool.count + 1, page)
            return spool.count
        pages = math.ceil(first.total / page_size)
        answers: dict[int, Page] = {}

        async def one(number: int) -> None:
            answers[number] = await fetch(number * page_size + 1, page_size)

        for window in range(1, pages, concurrency):
            # A window of pages in flight at once; checked and written in order after.
            numbers = range(window, min(window + concurrency, pages))
            answers.clear()
            try:
                async with anyio.create_task_group() as group:
                    for number in numbers:
                        group.start_soon(one, number)
            except BaseExceptionGroup as failure:
                raise _page_failure(failure) from None
            for number in numbers:
                await spool.take(number * page_size + 1, answers[number])
        if spool.count != first.total:
            raise InconsistentRead(f"read {spool.count} contacts, TotalCount said {first.total}")
        return spool.count


def _page_failure(failure: BaseExceptionGroup[BaseException]) -> BaseException:
    """What a window of pages raises when one of them failed after its retries.

    A task group wraps the page's error in a group, which nothing above expects; the page's
    own error comes out instead: a fatal one (a bad key) as it is, any other as an
    ExportError that says the read is incomplete. Cancellation and bugs keep the group.
    """
    leaves = _leaves(failure)
    if not all(isinstance(leaf, ProviderError) for leaf in leaves):
        return failure
    fatal = [leaf for leaf in leaves if isinstance(leaf, FatalProviderError)]
    if fatal:
        return fatal[0]
    first = leaves[0]
    assert isinstance(first, ProviderError)
    return ExportError(
        f"a page of eSputnik's contacts could not be read ({first}); nothing was changed,"
        " so no contact is removed on a partial picture",
        code=first.code,
    )


def _leaves(failure: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for item in failure.exceptions:
        found += _leaves(item) if isinstance(item, BaseExceptionGroup) else [item]
    return found


async def read_consistent(
    fetch: Fetch, path: Path, *, page_size: int, concurrency: int, attempts: int
) -> int:
    """Read until one full read is consistent; ExportError after ``attempts`` reads."""
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            return await read_pages(fetch, path, page_size=page_size, concurrency=concurrency)
        except InconsistentRead as error:
            log.warning(
                "contacts changed while paging; reading again", attempt=attempt, reason=str(error)
            )
            last = str(error)
    raise ExportError(
        f"eSputnik's contacts kept changing while they were read ({attempts} reads; last:"
        f" {last}); nothing was changed, so no contact is removed on a partial picture"
    )


class SearchSnapshot:
    """The spooled read: re-readable, one record per contact."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def records(self) -> AsyncIterator[RemoteRecord | RowProblem]:
        source = f"eSputnik contacts ({self.path.name})"

        def lines() -> Iterator[RemoteRecord]:
            with self.path.open("rb") as handle:
                for number, line in enumerate(handle, start=1):
                    yield RemoteRecord(RowOrigin(source, number), orjson.loads(line))

        async for record in iterate_in_thread(lines):
            yield record
