"""Two small database adapters with one interface, so the journal's SQL is written once.

SQLite (the default) runs on one worker thread: every statement commits on its own, in
WAL mode with ``synchronous=FULL``, because a journal mark lost to a power cut would
make a sent batch look unsent. PostgreSQL runs through asyncpg; ``?`` placeholders are
rewritten to ``$n``. Every call is shielded from cancellation: a journal write that a
cancelled run started must still land, or the journal would lie about what was sent.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio
import anyio.to_thread

from sync_engine.errors import JournalError
from sync_engine.sources._dsn import redact_dsn

__all__ = ["Database", "PostgresDatabase", "SqliteDatabase"]

T = TypeVar("T")
Row = tuple[Any, ...]


class Database(Protocol):
    """What the journal needs from a database: statements, many rows, and queries."""

    dialect: str

    async def execute(self, sql: str, *args: Any) -> None: ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def aclose(self) -> None: ...


class SqliteDatabase:
    """A SQLite file used from one worker thread (never from the event loop)."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._limiter = anyio.CapacityLimiter(1)
        self._conn: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: Path) -> SqliteDatabase:
        database = cls(path)
        await database._call(database._connect)
        return database

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=10000")
        self._conn = conn

    async def _call(self, action: Callable[[], T]) -> T:
        with anyio.CancelScope(shield=True):
            try:
                return await anyio.to_thread.run_sync(action, limiter=self._limiter)
            except sqlite3.Error as error:
                raise JournalError(f"journal {self.path}: {error}") from None
        raise AssertionError("unreachable: a shielded scope never swallows the call")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError(f"journal {self.path} is closed")
        return self._conn

    async def execute(self, sql: str, *args: Any) -> None:
        await self._call(lambda: self._connection().execute(sql, args))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        def run() -> None:
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                conn.executemany(sql, rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        await self._call(run)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return await self._call(lambda: self._connection().execute(sql, args).fetchall())

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._call(conn.close)


_PLACEHOLDER = re.compile(r"\?")


def _numbered(sql: str) -> str:
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


class PostgresDatabase:
    """A PostgreSQL connection (asyncpg), with the journal's tables in their own schema."""

    dialect = "postgres"

    def __init__(self, connection: Any, label: str) -> None:
        self._conn = connection
        self.label = label
        self._turn = anyio.Lock()  # one asyncpg connection runs one statement at a time

    @classmethod
    async def open(
        cls, dsn: str, *, schema: str, connect_timeout: float = 10.0
    ) -> PostgresDatabase:
        import asyncpg

        label = redact_dsn(dsn)
        try:
            connection = await asyncpg.connect(dsn, timeout=connect_timeout)
        except (OSError, asyncpg.PostgresError, TimeoutError, ValueError) as error:
            message = str(error).replace(dsn, label)
            raise JournalError(f"journal {label}: cannot connect: {message}") from None
        database = cls(connection, label)
        quoted = '"' + schema.replace('"', '""') + '"'
        await database.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        await database.execute(f"SET search_path TO {quoted}")
        return database

    async def _guard(self, action: Callable[[], Any]) -> Any:
        import asyncpg

        with anyio.CancelScope(shield=True):
            try:
                async with self._turn:
                    return await action()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                raise JournalError(f"journal {self.label}: {error}") from None

    async def execute(self, sql: str, *args: Any) -> None:
        await self._guard(lambda: self._conn.execute(_numbered(sql), *args))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._guard(lambda: self._conn.executemany(_numbered(sql), rows))

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        records = await self._guard(lambda: self._conn.fetch(_numbered(sql), *args))
        return [tuple(record) for record in records]

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._conn.close()
