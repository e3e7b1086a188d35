"""A PostgreSQL query or table as a Source, streamed through a server-side cursor.

Memory stays flat whatever the table's size: rows are fetched ``chunk_size`` at a time
from a cursor inside a read-only transaction, and only the current chunk is held. One
connection serves one read and is closed when the read ends, fails or is cancelled
(terminated at once then: the server rolls the transaction back by itself).

The DSN usually carries a password. It is kept in a Secret, and every message shows the
DSN redacted (``postgresql://app:***@db/crm``) with the password scrubbed from driver
text as well.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import TypeVar

import anyio
import asyncpg

from sync_engine.errors import SourceError
from sync_engine.providers._http import Scrubber
from sync_engine.records import RowOrigin, RowProblem, SourceRow
from sync_engine.secret import Secret
from sync_engine.sources._dsn import dsn_secrets, redact_dsn
from sync_engine.sources._sql import check_columns, describe, select_sql

__all__ = ["PostgresSource"]

T = TypeVar("T")

_CLOSE_TIMEOUT = 5.0
# Beyond the server's own statement_timeout, how long the client waits for an answer
# before it gives up on a server or network that went silent.
_CLIENT_GRACE = 30.0


class PostgresSource:
    """Rows of ``query`` (or of ``table``'s ``columns``), numbered from 1 in result order.

    ``required`` maps each column the sync reads to what needs it ("mapped to Name"):
    a query whose result lacks one fails before any row is fetched. In table mode the
    required columns are what is selected, unless ``columns`` names them.
    ``statement_timeout`` (seconds, 0 for none) bounds the query and every fetch.
    """

    def __init__(
        self,
        dsn: Secret | str,
        *,
        query: str | None = None,
        table: str | None = None,
        columns: Sequence[str] | None = None,
        required: Mapping[str, str] | None = None,
        chunk_size: int = 5000,
        connect_timeout: float = 10.0,
        statement_timeout: float = 300.0,
        name: str | None = None,
    ) -> None:
        if (query is None) == (table is None):
            raise ValueError("give either query or table")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        self._dsn = dsn if isinstance(dsn, Secret) else Secret(dsn)
        self.required = dict(required or {})
        if query is not None:
            self.sql = query
        else:
            assert table is not None
            self.sql = select_sql(table, list(columns or self.required))
        self.name = name or (f"postgresql:{table}" if table else "postgresql:query")
        self.chunk_size = chunk_size
        self.connect_timeout = connect_timeout
        self.statement_timeout = statement_timeout
        self.max_chunk = 0  # the most rows held at once, for tests and benchmarks
        self._where = f"{self.name} ({describe(query, table)})"
        self._scrub = Scrubber(dsn_secrets(self._dsn.reveal()))

    def read(self) -> AsyncIterator[SourceRow | RowProblem]:
        """Stream every row once; each read opens its own connection."""
        return self._read()

    async def _read(self) -> AsyncIterator[SourceRow | RowProblem]:
        connection = await self._connect()
        try:
            transaction = connection.transaction(isolation="repeatable_read", readonly=True)
            await self._run(transaction.start(), "cannot start a read-only transaction")
            statement = await self._run(connection.prepare(self.sql), "the query failed")
            names = [attribute.name for attribute in statement.get_attributes()]
            check_columns(self._where, names, self.required)
            cursor = await self._run(statement.cursor(), "the query failed")
            number = 0
            while True:
                records = await self._run(cursor.fetch(self.chunk_size), "reading rows failed")
                self.max_chunk = max(self.max_chunk, len(records))
                for record in records:
                    number += 1
                    yield SourceRow(RowOrigin(self.name, number), dict(record.items()))
                if len(records) < self.chunk_size:
                    break
                # Let go of this chunk before the next arrives: one chunk at a time.
                del records
        except BaseException:
            # Failed, cancelled or abandoned mid-way: drop the connection at once (a
            # graceful close would wait for a statement that may be the problem).
            connection.terminate()
            raise
        with anyio.CancelScope(shield=True):
            try:
                await connection.close(timeout=_CLOSE_TIMEOUT)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                connection.terminate()

    async def _connect(self) -> asyncpg.Connection:
        timeout = self.statement_timeout
        try:
            connection: asyncpg.Connection = await asyncpg.connect(
                self._dsn.reveal(),
                timeout=self.connect_timeout,
                command_timeout=timeout + _CLIENT_GRACE if timeout else None,
                server_settings={
                    "application_name": "sync-engine",
                    "statement_timeout": str(int(timeout * 1000)),
                },
            )
        except TimeoutError:
            raise SourceError(
                f"{self.name}: cannot connect to {self._shown_dsn()}: no answer within"
                f" connect_timeout = {self.connect_timeout:g} s"
            ) from None
        except (
            OSError,
            ValueError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
        ) as error:
            # ``from None``: the driver's own exception may quote connection details.
            raise SourceError(
                f"{self.name}: cannot connect to {self._shown_dsn()}: {self._text(error)}"
            ) from None
        return connection

    async def _run(self, awaitable: Awaitable[T], doing: str) -> T:
        """Await one driver call, turning its failures into a SourceError that says where."""
        try:
            return await awaitable
        except asyncpg.QueryCanceledError as error:
            raise SourceError(
                f"{self._where}: {doing}: cancelled by the server ({self._text(error)});"
                f" [source] statement_timeout = {self.statement_timeout:g} s"
            ) from None
        except TimeoutError:
            raise SourceError(
                f"{self._where}: {doing}: no answer from the server within"
                f" {self.statement_timeout + _CLIENT_GRACE:g} s"
            ) from None
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise SourceError(f"{self._where}: {doing}: {self._text(error)}") from None

    def _text(self, error: BaseException) -> str:
        text = str(error) or type(error).__name__
        hint = getattr(error, "hint", None)
        if isinstance(hint, str) and hint:
            text += f" (hint: {hint})"
        return self._scrub(text)

    def _shown_dsn(self) -> str:
        return redact_dsn(self._dsn.reveal())

    def __repr__(self) -> str:
        return f"PostgresSource({self.name!r}, dsn={self._shown_dsn()!r})"
