"""PostgresSource against the real server: streaming, types, errors, timeouts, clean-up."""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator
from datetime import date, datetime

import anyio
import anyio.abc
import pytest
from databases import PG_DSN, PgSchema, temporary_schema

from sync_engine import SourceError
from sync_engine.config import SourceSettings
from sync_engine.mapping import RowMapper
from sync_engine.records import RowOrigin, SourceRow
from sync_engine.schema import FieldKind
from sync_engine.sources import PostgresSource
from sync_engine.transforms import FieldRule

PASSWORD = "hunter2-not-for-logs"


@pytest.fixture
async def pg() -> AsyncIterator[PgSchema]:
    async with temporary_schema() as schema:
        yield schema


async def read_all(source: PostgresSource) -> list[SourceRow]:
    rows = []
    async for item in source.read():
        assert isinstance(item, SourceRow)
        rows.append(item)
    return rows


async def test_100k_rows_stream_in_bounded_chunks_with_flat_memory(pg: PgSchema) -> None:
    """Memory is bounded by the chunk, not the table: 100,000 rows never sit in memory."""
    await pg.execute(
        "CREATE TABLE {schema}.people AS SELECT i AS id, 'user' || i || '@example.com' AS email,"
        " repeat('n', 100) || i AS name FROM generate_series(1, 100000) AS i"
    )
    source = PostgresSource(
        PG_DSN, table=pg.table("people"), required={"email": "mapped to email"}, chunk_size=1000
    )
    assert source.sql == f'SELECT "email" FROM "{pg.name}"."people"'
    everything = PostgresSource(
        PG_DSN, query=f"SELECT * FROM {pg.table('people')}", chunk_size=1000
    )
    count = last = 0
    tracemalloc.start()
    try:
        async for item in everything.read():
            assert isinstance(item, SourceRow)
            count += 1
            last = item.origin.line
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (count, last) == (100_000, 100_000)
    assert everything.max_chunk == 1000
    # 100,000 rows of ~130 characters are over 30 MB as Python objects; a chunk is ~0.3 MB.
    assert peak < 4_000_000, f"peak {peak} bytes"


async def test_rows_keep_column_names_types_and_result_order(pg: PgSchema) -> None:
    await pg.execute(
        "CREATE TABLE {schema}.t (email text, tags text[], lists int[], born date,"
        " seen timestamptz, amount numeric, vip boolean, note text)"
    )
    await pg.insert(
        "t",
        ["email", "tags", "lists", "born", "seen", "amount", "vip", "note"],
        [
            ("b@x.com", ["a", None], [3, 4], date(1990, 3, 1), datetime(2024, 1, 1), 1, True, None),
            ("a@x.com", None, None, None, None, None, None, "n"),
        ],
    )
    source = PostgresSource(
        PG_DSN, query=f"SELECT * FROM {pg.table('t')} ORDER BY email", name="crm"
    )
    first, second = await read_all(source)
    assert first.origin == RowOrigin("crm", 1)
    assert first.values == {
        "email": "a@x.com",
        "tags": None,
        "lists": None,
        "born": None,
        "seen": None,
        "amount": None,
        "vip": None,
        "note": "n",
    }
    assert second.values["tags"] == ["a", None]
    assert second.values["lists"] == [3, 4]
    assert second.values["born"] == date(1990, 3, 1)


async def test_a_missing_mapped_column_fails_before_any_row_naming_everything(
    pg: PgSchema,
) -> None:
    await pg.execute("CREATE TABLE {schema}.t (email text, nme text)")
    source = PostgresSource(
        PG_DSN,
        query=f"SELECT email, nme FROM {pg.table('t')}",
        required={"email": "mapped to email", "name": "mapped to Name"},
        name="crm",
    )
    with pytest.raises(SourceError) as caught:
        await read_all(source)
    assert str(caught.value) == (
        f"crm (query: SELECT email, nme FROM {pg.table('t')}): column 'name' (mapped to Name)"
        " is not in the result; its columns are: email, nme"
    )
    table = PostgresSource(PG_DSN, table=pg.table("t"), required={"name": "mapped to Name"})
    with pytest.raises(SourceError, match=r'table .*\.t\): the query failed: column "name" does'):
        await read_all(table)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELEC email FROM t", 'the query failed: syntax error at or near "SELEC"'),
        ("SELECT 1; SELECT 2", "cannot insert multiple commands into a prepared statement"),
        ("SELECT * FROM no_such_table", 'relation "no_such_table" does not exist'),
        ("SELECT 1 / (i - 3) FROM generate_series(1, 5) AS i", "reading rows failed: division"),
        ("DELETE FROM pg_class RETURNING relname", "read-only transaction"),
    ],
)
async def test_a_failing_query_is_a_source_error_naming_source_and_query(
    query: str, message: str
) -> None:
    source = PostgresSource(
        f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/test", query=query, name="crm"
    )
    with pytest.raises(SourceError) as caught:
        await read_all(source)
    text = str(caught.value)
    assert text.startswith(f"crm (query: {query[:20]}")
    assert message in text
    assert PASSWORD not in text


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        (
            f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/no_such_db",
            "cannot connect to postgresql://postgres:***@127.0.0.1:5432/no_such_db: database"
            ' "no_such_db" does not exist',
        ),
        (
            f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/test",
            "cannot connect to postgresql://postgres:***@127.0.0.1:1/test: [Errno 111]",
        ),
        (
            f"postgresql://postgres:{PASSWORD}@127.0.0.1/test?sslmode=sometimes",
            "cannot connect to postgresql://postgres:***@127.0.0.1/test?sslmode=sometimes:"
            " `sslmode` parameter must be one of",
        ),
        (f"postgresql://postgres:{PASSWORD}@[::1/test", "cannot connect to postgresql://"),
        (f"postgresql://u@127.0.0.1/test?password={PASSWORD}&x=1", "password=***&x=1"),
    ],
)
async def test_bad_dsns_fail_clearly_without_the_password(dsn: str, message: str) -> None:
    source = PostgresSource(dsn, query="SELECT 1", name="crm")
    with pytest.raises(SourceError) as caught:
        await read_all(source)
    text = str(caught.value)
    assert text.startswith("crm: cannot connect to ")
    assert message in text
    assert PASSWORD not in text
    assert caught.value.__cause__ is None
    assert PASSWORD not in repr(source)


async def test_statement_timeout_stops_a_slow_query() -> None:
    source = PostgresSource(
        PG_DSN, query="SELECT pg_sleep(5) AS email", statement_timeout=0.2, name="crm"
    )
    with anyio.fail_after(4):
        with pytest.raises(SourceError) as caught:
            await read_all(source)
    assert "canceling statement due to statement timeout" in str(caught.value)
    assert "[source] statement_timeout = 0.2 s" in str(caught.value)


async def wait_for_backends(pg: PgSchema, expected: int) -> int:
    """The server drops a backend a moment after its client hangs up: poll, bounded."""
    with anyio.move_on_after(5):
        # Another process's state: there is no event to wait on, only its view to poll.
        while (count := await pg.backends()) != expected:  # noqa: ASYNC110
            await anyio.sleep(0.02)
    return count


async def test_breaking_out_or_cancelling_closes_the_connection(pg: PgSchema) -> None:
    await pg.execute(
        "CREATE TABLE {schema}.t AS SELECT i AS email FROM generate_series(1, 50000) AS i"
    )
    source = PostgresSource(PG_DSN, table=pg.table("t"), chunk_size=100)
    rows = source.read()
    assert isinstance(await anext(rows), SourceRow)
    assert await pg.backends() == 1
    await rows.aclose()  # type: ignore[attr-defined]
    assert await wait_for_backends(pg, 0) == 0

    seen = 0
    with anyio.CancelScope() as scope:
        async for _ in source.read():
            seen += 1
            if seen == 250:
                scope.cancel()
                await anyio.lowlevel.checkpoint()
    assert seen == 250
    assert await wait_for_backends(pg, 0) == 0


async def test_every_read_is_complete_and_independent(pg: PgSchema) -> None:
    await pg.execute("CREATE TABLE {schema}.t AS SELECT 'a@x.com'::text AS email")
    source = PostgresSource(PG_DSN, table=pg.table("t"))
    first = await read_all(source)
    second = await read_all(source)
    assert [r.values for r in first] == [r.values for r in second] == [{"email": "a@x.com"}]


async def test_every_postgres_type_maps_as_documented() -> None:
    """Real server values through the mapping step: the README's type table, pinned."""
    columns = {
        "t": ("'  text '::text", "  text "),
        "v": ("'v'::varchar(3)", "v"),
        "i": ("42::int8", "42"),
        "n": ("1.50::numeric", "1.50"),
        "big": ("12345678901234567890.000001::numeric", "12345678901234567890.000001"),
        "f": ("2.0::float8", "2"),
        "r": ("0.1::float8", "0.1"),
        "b": ("true", "1"),
        "d": ("'1990-03-01'::date", "01.03.1990"),
        "ts": ("'2024-01-01 12:30:00'::timestamp", "2024-01-01 12:30:00"),
        "tz": ("'2024-01-01 12:30:00+03'::timestamptz", "2024-01-01 09:30:00"),
        "tm": ("'09:05:07'::time", "09:05:07"),
        "u": (
            "'00000000-0000-0000-0000-000000000001'::uuid",
            "00000000-0000-0000-0000-000000000001",
        ),
        "ip": ("'10.0.0.1'::inet", "10.0.0.1"),
        "j": ("'{\"a\": 1}'::jsonb", '{"a": 1}'),
        "tags": ("ARRAY['vip', NULL, 'b2b']::text[]", ["vip", "b2b"]),
        "ids": ("ARRAY[3, 4]::int[]", ["3", "4"]),
        "nul": ("NULL::text", None),
    }
    select = ", ".join(f"{sql} AS {name}" for name, (sql, _) in columns.items())
    [row] = await read_all(PostgresSource(PG_DSN, query=f"SELECT {select}"))
    kinds = {
        name: FieldKind.TAGS if name in ("tags", "ids") else FieldKind.TEXT for name in columns
    }
    mapper = RowMapper(
        {name: FieldRule(column=name) for name in columns}, kinds=kinds, settings=SourceSettings()
    )
    mapped, problem = mapper.map(row)
    assert problem is None
    assert mapped.values == {name: expected for name, (_, expected) in columns.items()}

    refused = {
        "bytea": "'\\x00'::bytea",
        "interval": "interval '1 day'",
        "nan": "'NaN'::numeric",
    }
    for name, sql in refused.items():
        [row] = await read_all(PostgresSource(PG_DSN, query=f"SELECT {sql} AS {name}"))
        one = RowMapper(
            {"Name": FieldRule(column=name)},
            kinds={"Name": FieldKind.TEXT},
            settings=SourceSettings(),
        )
        _, problem = one.map(row)
        assert problem is not None, name
        assert (problem.origin.line, problem.field) == (1, name)


async def test_a_server_that_never_answers_times_out_on_connect() -> None:
    """A loopback listener that accepts and stays silent stands in for a dead server."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - not Django

    async def silent(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            async for _ in stream:
                pass

    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, silent)
        source = PostgresSource(
            f"postgresql://app:{PASSWORD}@127.0.0.1:{port}/crm",
            query="SELECT 1",
            connect_timeout=0.3,
            name="crm",
        )
        with anyio.fail_after(5), pytest.raises(SourceError) as caught:
            await read_all(source)
        group.cancel_scope.cancel()
    assert str(caught.value) == (
        f"crm: cannot connect to postgresql://app:***@127.0.0.1:{port}/crm: no answer within"
        " connect_timeout = 0.3 s"
    )
