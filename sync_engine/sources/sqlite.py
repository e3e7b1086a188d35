"""An SQLite query or table as a Source, read in a worker thread.

SQLite is an embedded library: every call blocks. The whole read (connect, query, fetch)
runs in worker threads through ``iterate_in_thread``, one chunk per hop, so the event
loop stays free and at most one chunk is in memory. The database is opened read-only
(a missing file is an error, never a new empty database), and a ``statement_timeout``
interrupts a query that runs too long.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from sync_engine.errors import SourceError
from sync_engine.records import RowOrigin, RowProblem, SourceRow
from sync_engine.sources._sql import check_columns, describe, select_sql
from sync_engine.sources._threaded import iterate_in_thread
from sync_engine.sources._types import InvalidText

__all__ = ["SqliteSource"]

T = TypeVar("T")

# How many SQLite VM instructions run between two looks at the clock.
_PROGRESS_EVERY = 10_000


class SqliteSource:
    """Rows of ``query`` (or of ``table``'s columns) in an SQLite file, numbered from 1.

    ``required`` works as for PostgresSource: every column the sync reads, checked before
    the first row. ``timeout`` is how long to wait for another writer's lock;
    ``statement_timeout`` (0 for none) bounds the work of fetching each chunk.
    """

    def __init__(
        self,
        path: Path,
        *,
        query: str | None = None,
        table: str | None = None,
        columns: Sequence[str] | None = None,
        required: Mapping[str, str] | None = None,
        chunk_size: int = 5000,
        timeout: float = 5.0,
        statement_timeout: float = 300.0,
        name: str | None = None,
    ) -> None:
        if (query is None) == (table is None):
            raise ValueError("give either query or table")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        self.path = path
        self.required = dict(required or {})
        if query is not None:
            self.sql = query
        else:
            assert table is not None
            self.sql = select_sql(table, list(columns or self.required), quote="`")
        self.name = name or str(path)
        self.chunk_size = chunk_size
        self.timeout = timeout
        self.statement_timeout = statement_timeout
        self.max_chunk = 0  # the most rows held at once, for tests and benchmarks
        self._where = f"{self.name} ({describe(query, table)})"

    def read(self) -> AsyncIterator[SourceRow | RowProblem]:
        """Stream every row once; each read opens the database afresh."""
        return iterate_in_thread(self._rows, chunk_size=self.chunk_size)

    def _rows(self) -> Iterator[SourceRow | RowProblem]:
        """Runs in worker threads, one chunk per hop (never two at once)."""
        connection = self._connect()
        deadline = [float("inf")]
        try:
            if self.statement_timeout:
                connection.set_progress_handler(
                    lambda: time.monotonic() > deadline[0], _PROGRESS_EVERY
                )
            deadline[0] = self._deadline()
            cursor = self._run(lambda: connection.execute(self.sql), "the query failed")
            if cursor.description is None:
                raise SourceError(f"{self._where}: the statement returns no rows (not a SELECT?)")
            names = [str(column[0]) for column in cursor.description]
            check_columns(self._where, names, self.required)
            number = 0
            while True:
                deadline[0] = self._deadline()
                chunk = self._run(lambda: cursor.fetchmany(self.chunk_size), "reading rows failed")
                self.max_chunk = max(self.max_chunk, len(chunk))
                for values in chunk:
                    number += 1
                    yield SourceRow(RowOrigin(self.name, number), dict(zip(names, values)))  # noqa: B905
                if len(chunk) < self.chunk_size:
                    return
                del chunk
        finally:
            connection.close()

    def _connect(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise SourceError(f"{self.name}: database file not found: {self.path}")
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        try:
            # The generator moves between worker threads (one at a time), hence
            # check_same_thread=False; sqlite3 serialises access itself.
            connection = sqlite3.connect(
                uri, uri=True, timeout=self.timeout, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise SourceError(f"{self.name}: cannot open the database: {error}") from None
        connection.text_factory = _text
        return connection

    def _deadline(self) -> float:
        return time.monotonic() + self.statement_timeout if self.statement_timeout else float("inf")

    def _run(self, call: Callable[[], T], doing: str) -> T:
        try:
            return call()
        except sqlite3.OperationalError as error:
            if str(error) == "interrupted":
                raise SourceError(
                    f"{self._where}: {doing}: interrupted after [source] statement_timeout ="
                    f" {self.statement_timeout:g} s"
                ) from None
            raise SourceError(f"{self._where}: {doing}: {error}") from None
        except sqlite3.Error as error:
            raise SourceError(f"{self._where}: {doing}: {error}") from None

    def __repr__(self) -> str:
        return f"SqliteSource({self.name!r})"


def _text(raw: bytes) -> str | InvalidText:
    """TEXT values; bytes that are not UTF-8 are kept to be reported, not to stop the read."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return InvalidText(raw)
