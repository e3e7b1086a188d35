"""Drive a blocking generator from async code without blocking the event loop.

File parsing is blocking and CPU-bound; running it in a worker thread keeps the loop
responsive. Rows cross the thread boundary in chunks, so a thread hop (tens of
microseconds) is paid once per chunk rather than once per row.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from itertools import islice
from typing import Generic, Protocol, TypeVar

import anyio
import anyio.to_thread

__all__ = ["ClosableAsyncIterator", "iterate_in_thread"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class ClosableAsyncIterator(Protocol[T_co]):
    """An async iterator that can be closed early (``contextlib.aclosing`` accepts it)."""

    def __aiter__(self) -> ClosableAsyncIterator[T_co]: ...

    async def __anext__(self) -> T_co: ...

    async def aclose(self) -> None:
        """Release what the iterator holds open; further iteration ends at once."""
        ...


def iterate_in_thread(
    factory: Callable[[], Iterator[T]], *, chunk_size: int = 2000
) -> ClosableAsyncIterator[T]:
    """Iterate ``factory()`` in worker threads, ``chunk_size`` items per hop.

    ``factory`` itself runs in a thread too, so opening a file never blocks the loop.
    Nothing is read ahead: the next chunk is produced only when the previous one has
    been consumed, so at most one chunk is in memory. The generator is closed (its
    files with it) on exhaustion, on ``aclose()``, and when the iterator is dropped,
    e.g. by ``break`` out of ``async for``. One consumer at a time.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    return _ThreadedIterator(factory, chunk_size)


class _ThreadedIterator(AsyncIterator[T], Generic[T]):
    """A class rather than an async generator, for deterministic clean-up.

    An abandoned async generator is closed only later, by a task the event loop
    schedules from its finaliser hook. Dropping this object instead drops the last
    reference to the sync generator, which CPython closes at once (running its
    ``finally`` and ``with`` blocks), so a ``break`` closes the file immediately.
    """

    __slots__ = ("__weakref__", "_buffer", "_chunk_size", "_factory", "_iterator")

    def __init__(self, factory: Callable[[], Iterator[T]], chunk_size: int) -> None:
        self._factory: Callable[[], Iterator[T]] | None = factory
        self._chunk_size = chunk_size
        self._iterator: Iterator[T] | None = None
        self._buffer: list[T] = []  # the current chunk, reversed: pop() is O(1)

    def __aiter__(self) -> _ThreadedIterator[T]:
        return self

    async def __anext__(self) -> T:
        if self._buffer:
            return self._buffer.pop()
        if self._factory is None and self._iterator is None:
            raise StopAsyncIteration
        # Not abandoned on cancellation: the worker finishes its chunk first, so the
        # generator is never left running in a thread nobody waits for. The worker gets
        # a weak reference only: it may hold its arguments a moment after returning, and
        # must not be what keeps an abandoned generator (and its file) open.
        chunk = await anyio.to_thread.run_sync(_fetch_chunk, weakref.ref(self))
        if not chunk:
            raise StopAsyncIteration
        self._buffer = chunk
        return chunk.pop()

    def _next_chunk(self) -> list[T]:
        """Runs in a worker thread: the next chunk, reversed; empty at the end."""
        try:
            if self._iterator is None:
                factory, self._factory = self._factory, None
                if factory is None:
                    return []
                self._iterator = factory()
            chunk = list(islice(self._iterator, self._chunk_size))
        except BaseException:
            self._close()
            raise
        if len(chunk) < self._chunk_size:
            self._close()
        chunk.reverse()
        return chunk

    def _close(self) -> None:
        iterator, self._iterator, self._factory = self._iterator, None, None
        close = getattr(iterator, "close", None)
        if close is not None:
            close()

    async def aclose(self) -> None:
        """Close the underlying generator (in a thread: closing may block, too)."""
        self._buffer = []
        if self._iterator is None:
            self._factory = None
            return
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._close)


def _fetch_chunk(ref: weakref.ref[_ThreadedIterator[T]]) -> list[T]:
    """Worker-thread side: the next chunk, or nothing if the consumer has gone."""
    iterator = ref()
    return [] if iterator is None else iterator._next_chunk()
