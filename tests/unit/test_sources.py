"""Sources: the threaded iterator under them, the file sources, the in-memory source."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import anyio
import pytest

from sync_engine.errors import SourceError
from sync_engine.records import RowOrigin, RowProblem, SourceRow
from sync_engine.sources import (
    CsvSource,
    IterableSource,
    JsonlSource,
    Source,
    iterate_in_thread,
)

Item = SourceRow | RowProblem


async def collect(iterator: AsyncIterator[Item]) -> list[Item]:
    return [item async for item in iterator]


# --- iterate_in_thread ----------------------------------------------------------------


async def test_yields_everything_in_order_across_chunks() -> None:
    """Chunking is invisible: every item arrives once, in order, at any chunk size."""
    for chunk_size in (1, 3, 7, 10, 1000):
        got = [
            item async for item in iterate_in_thread(lambda: iter(range(10)), chunk_size=chunk_size)
        ]
        assert got == list(range(10))


async def test_generator_runs_off_the_event_loop_thread() -> None:
    """Both the factory and the iteration run in a worker thread, never on the loop."""
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def factory() -> Iterator[int]:
        seen.append(threading.get_ident())
        yield 1
        seen.append(threading.get_ident())

    assert [item async for item in iterate_in_thread(factory)] == [1]
    assert seen
    assert loop_thread not in seen


async def test_reads_at_most_one_chunk_ahead() -> None:
    """The producer never runs ahead of the consumer by more than one chunk."""
    produced = 0

    def factory() -> Iterator[int]:
        nonlocal produced
        for i in range(100):
            produced += 1
            yield i

    iterator = iterate_in_thread(factory, chunk_size=10)
    for expected in range(25):
        assert await iterator.__anext__() == expected
        assert produced <= (expected // 10 + 1) * 10
    await iterator.aclose()


def _file_lines(path: Path, handles: list[IO[str]]) -> Iterator[str]:
    with path.open(encoding="utf-8") as handle:
        handles.append(handle)
        yield from handle


@pytest.fixture
def numbered_file(tmp_path: Path) -> Path:
    path = tmp_path / "lines.txt"
    path.write_text("".join(f"{i}\n" for i in range(100)), encoding="utf-8")
    return path


async def test_break_out_of_async_for_closes_the_file(numbered_file: Path) -> None:
    """Leaving a loop early closes the file at once, not whenever GC gets to it."""
    handles: list[IO[str]] = []
    async for line in iterate_in_thread(lambda: _file_lines(numbered_file, handles), chunk_size=4):
        if line == "5\n":
            break
    assert len(handles) == 1
    assert handles[0].closed


async def test_aclose_closes_the_file(numbered_file: Path) -> None:
    """aclose() is the explicit way to release the file, e.g. under aclosing()."""
    handles: list[IO[str]] = []
    iterator = iterate_in_thread(lambda: _file_lines(numbered_file, handles), chunk_size=4)
    assert await iterator.__anext__() == "0\n"
    await iterator.aclose()
    assert handles[0].closed
    with pytest.raises(StopAsyncIteration):
        await iterator.__anext__()


async def test_cancellation_closes_the_file(numbered_file: Path) -> None:
    """A consumer cancelled mid-read leaves no file open behind it."""
    handles: list[IO[str]] = []
    reached = anyio.Event()

    async def consume() -> None:
        iterator = iterate_in_thread(lambda: _file_lines(numbered_file, handles), chunk_size=2)
        try:
            async for _ in iterator:
                reached.set()
                await anyio.sleep_forever()
        finally:
            await iterator.aclose()

    async with anyio.create_task_group() as group:
        group.start_soon(consume)
        await reached.wait()
        group.cancel_scope.cancel()
    assert handles[0].closed


async def test_exhaustion_closes_the_file(numbered_file: Path) -> None:
    """Reading to the end closes the file without any help from the caller."""
    handles: list[IO[str]] = []
    got = [line async for line in iterate_in_thread(lambda: _file_lines(numbered_file, handles))]
    assert len(got) == 100
    assert handles[0].closed


async def test_errors_from_the_generator_propagate_then_iteration_ends() -> None:
    """An exception in the worker reaches the consumer once; the iterator is then done."""

    def factory() -> Iterator[int]:
        yield 1
        raise SourceError("disk on fire")

    iterator = iterate_in_thread(factory, chunk_size=1)
    assert await iterator.__anext__() == 1
    with pytest.raises(SourceError, match="disk on fire"):
        await iterator.__anext__()
    with pytest.raises(StopAsyncIteration):
        await iterator.__anext__()


def test_chunk_size_must_be_positive() -> None:
    """A zero chunk would never make progress."""
    with pytest.raises(ValueError, match="chunk_size"):
        iterate_in_thread(lambda: iter(()), chunk_size=0)


# --- file sources ---------------------------------------------------------------------


async def test_csv_source_reads_rows_and_problems(tmp_path: Path) -> None:
    """CsvSource passes options through and keeps origins and problems."""
    path = tmp_path / "c.csv"
    path.write_bytes("email;имя\na@x.ru;Аня\nb@x.ru\n".encode("cp1251"))
    source = CsvSource(path, delimiter=None, encoding="cp1251", name="crm")
    assert source.name == "crm"
    items = await collect(source.read())
    assert items[0] == SourceRow(RowOrigin("crm", 2), {"email": "a@x.ru", "имя": "Аня"})
    assert isinstance(items[1], RowProblem)
    assert items[1].origin == RowOrigin("crm", 3)


async def test_csv_source_can_be_read_twice(tmp_path: Path) -> None:
    """Each read() opens the file afresh (a dry run, then the real run)."""
    path = tmp_path / "c.csv"
    path.write_text("email\na@x.org\n", encoding="utf-8")
    source = CsvSource(path)
    assert await collect(source.read()) == await collect(source.read())


async def test_missing_file_raises_when_iteration_starts(tmp_path: Path) -> None:
    """Constructing a source touches nothing; iterating it reports the missing file."""
    csv_source = CsvSource(tmp_path / "missing.csv")
    jsonl_source = JsonlSource(tmp_path / "missing.jsonl")
    assert csv_source.name.endswith("missing.csv")
    with pytest.raises(SourceError, match=r"missing\.csv"):
        await collect(csv_source.read())
    with pytest.raises(SourceError, match=r"missing\.jsonl"):
        await collect(jsonl_source.read())


async def test_jsonl_source_reads_typed_values(tmp_path: Path) -> None:
    """JsonlSource yields JSON-typed values with line origins."""
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"email": "a@x.org", "age": 3}\nnot json\n')
    items = await collect(JsonlSource(path, name="feed").read())
    assert items[0] == SourceRow(RowOrigin("feed", 1), {"email": "a@x.org", "age": 3})
    assert isinstance(items[1], RowProblem)
    assert items[1].origin == RowOrigin("feed", 2)


async def test_large_csv_crosses_many_chunks(tmp_path: Path) -> None:
    """Thousands of rows arrive complete and in order through the chunked hand-over."""
    path = tmp_path / "big.csv"
    path.write_text("email\n" + "".join(f"u{i}@x.org\n" for i in range(5000)), encoding="utf-8")
    items = await collect(CsvSource(path).read())
    assert [item.origin.line for item in items] == list(range(2, 5002))


# --- IterableSource -------------------------------------------------------------------


async def test_iterable_source_from_a_list() -> None:
    """Rows keep their position as line; non-mappings become problems, not crashes."""
    data: list[Any] = [{"email": "a@x.org"}, ["not", "a", "mapping"], {"email": "b"}]
    items = await collect(IterableSource(data, name="api").read())
    assert items[0] == SourceRow(RowOrigin("api", 1), {"email": "a@x.org"})
    assert isinstance(items[1], RowProblem)
    assert items[1].origin == RowOrigin("api", 2)
    assert "list" in items[1].reason
    assert items[2] == SourceRow(RowOrigin("api", 3), {"email": "b"})


async def test_iterable_source_from_an_async_iterable() -> None:
    """An async generator (a database cursor, an API) works the same way."""

    async def produce() -> AsyncIterator[Mapping[str, object]]:
        for i in range(3):
            yield {"n": i}

    items = await collect(IterableSource(produce()).read())
    assert [(item.origin, dict(item.values)) for item in items if isinstance(item, SourceRow)] == [
        (RowOrigin("<iterable>", i + 1), {"n": i}) for i in range(3)
    ]


async def test_iterable_source_copies_reused_mappings() -> None:
    """A producer that reuses one dict for every row does not corrupt earlier rows."""
    shared: dict[str, object] = {}

    def produce() -> Iterator[Mapping[str, object]]:
        for i in range(3):
            shared["n"] = i
            yield shared

    items = await collect(IterableSource(produce()).read())
    assert [item.values for item in items if isinstance(item, SourceRow)] == [
        {"n": 0},
        {"n": 1},
        {"n": 2},
    ]


async def test_iterable_source_lets_other_tasks_run() -> None:
    """A long in-memory list yields to the event loop now and then."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as group:
        group.start_soon(ticker)
        await anyio.lowlevel.checkpoint()
        before = ticks
        items = await collect(IterableSource([{"n": i} for i in range(5000)]).read())
        group.cancel_scope.cancel()
    assert len(items) == 5000
    assert ticks - before >= 4


def test_sources_satisfy_the_protocol(tmp_path: Path) -> None:
    """Every source type checks as a Source (mypy verifies the annotations)."""
    sources: list[Source] = [
        CsvSource(tmp_path / "a.csv"),
        JsonlSource(tmp_path / "a.jsonl"),
        IterableSource([]),
    ]
    assert [source.name for source in sources][2] == "<iterable>"
