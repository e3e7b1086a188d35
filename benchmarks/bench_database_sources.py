"""Streaming rows from PostgreSQL and SQLite: rows per second and peak memory.

    .venv/bin/python benchmarks/bench_database_sources.py [--rows N] [--chunk N]

Two passes per source: one timed (rows/s of the source alone, then with the mapping
step and contact building a sync does), one under tracemalloc for the peak of Python
memory while streaming (tracemalloc slows Python down, so it is not timed). PostgreSQL
is the test server (``SYNC_ENGINE_TEST_PG_DSN``, default 127.0.0.1:5432/test); a
throwaway schema is created and dropped. SQLite goes to ``benchmarks/data/``.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import asyncpg

from sync_engine.config import parse_config
from sync_engine.contact import ContactBuilder
from sync_engine.local import LocalContacts
from sync_engine.normalise import Normaliser
from sync_engine.providers.unisender import UNISENDER_SCHEMA
from sync_engine.records import RowProblem
from sync_engine.sources import PostgresSource, Source, SqliteSource

DSN = os.environ.get("SYNC_ENGINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
DATA = Path(__file__).parent / "data"
MAPPING = {
    "email": "email",
    "tags": "tags",
    "Name": {"column": "name", "transforms": ["trim"]},
    "City": {"column": "city", "null": "keep"},
    "Born": "born",
}


async def count(source: Source) -> int:
    rows = 0
    async for _ in source.read():
        rows += 1
    return rows


def contacts_of(source: Source, kind: str) -> Callable[[], Awaitable[int]]:
    """A sync's local stage over ``source``: mapping, type mapping, normalising."""
    table = {"type": kind, "query": "SELECT 1"}
    table |= {"dsn": DSN} if kind == "postgresql" else {"path": "unused.db"}
    config = parse_config(
        {"source": table, "provider": {"api_key": "bench-key", "list_id": 1}, "mapping": MAPPING}
    )
    builder = ContactBuilder(
        mapping=config.mapping, schema=UNISENDER_SCHEMA, normaliser=Normaliser(), key="email"
    )

    async def run() -> int:
        with tempfile.TemporaryDirectory() as scratch:
            local = LocalContacts(source, config, builder, work_dir=Path(scratch))
            built = 0
            async for item in local.read():
                assert not isinstance(item, RowProblem), item
                built += 1
            return built

    return run


async def measure(label: str, run: Callable[[], Awaitable[int]], rows: int) -> None:
    started = time.perf_counter()
    seen = await run()
    elapsed = time.perf_counter() - started
    assert seen == rows, (seen, rows)
    tracemalloc.start()
    try:
        await run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(
        f"  {label:<34} {rows / elapsed:>10,.0f} rows/s  {elapsed:6.2f} s"
        f"  peak {peak / 1e6:6.2f} MB"
    )


async def bench_postgres(rows: int, chunk: int) -> None:
    try:
        connection = await asyncpg.connect(DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        print(f"PostgreSQL: skipped ({error}); start it with scripts/ensure-services")
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        await connection.execute(f'CREATE SCHEMA "{schema}"')
        await connection.execute(
            f'CREATE TABLE "{schema}".people AS SELECT i AS id,'  # noqa: S608 - own names
            " 'user' || i || '@example.com' AS email, ARRAY['vip', 'b2b'] AS tags,"
            " ' Name ' || i || ' ' AS name, CASE WHEN i % 3 = 0 THEN NULL ELSE 'City' END AS city,"
            " DATE '1990-01-01' + (i % 10000) AS born"
            f" FROM generate_series(1, {rows}) AS i"
        )
        query = f'SELECT email, tags, name, city, born FROM "{schema}".people'  # noqa: S608
        source = PostgresSource(DSN, query=query, chunk_size=chunk)
        print(f"PostgreSQL, {rows:,} rows, chunk {chunk}:")
        await measure("source alone", lambda: count(source), rows)
        print(f"  (largest chunk held: {source.max_chunk} rows)")
        await measure("source + mapping + contacts", contacts_of(source, "postgresql"), rows)
    finally:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await connection.close()


async def bench_sqlite(rows: int, chunk: int) -> None:
    DATA.mkdir(exist_ok=True)
    path = DATA / "bench-sources.db"
    path.unlink(missing_ok=True)
    connection = sqlite3.connect(path)
    connection.execute(
        "CREATE TABLE people AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"  # noqa: S608
        f" WHERE i < {rows}) SELECT i AS id, 'user' || i || '@example.com' AS email,"
        " 'vip,b2b' AS tags, ' Name ' || i || ' ' AS name,"
        " CASE WHEN i % 3 = 0 THEN NULL ELSE 'City' END AS city, '1990-01-01' AS born FROM n"
    )
    connection.commit()
    connection.close()
    try:
        source = SqliteSource(path, table="people", chunk_size=chunk)
        print(f"SQLite, {rows:,} rows, chunk {chunk}:")
        await measure("source alone", lambda: count(source), rows)
        print(f"  (largest chunk held: {source.max_chunk} rows)")
        await measure("source + mapping + contacts", contacts_of(source, "sqlite"), rows)
    finally:
        path.unlink(missing_ok=True)


async def main(rows: int, chunk: int) -> None:
    print(f"cores: {os.cpu_count()}")
    await bench_postgres(rows, chunk)
    await bench_sqlite(rows, chunk)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=5000)
    arguments = parser.parse_args()
    anyio.run(main, arguments.rows, arguments.chunk)
