"""SqliteSource on a real database file: off the loop, streamed, read-only, clear errors."""

from __future__ import annotations

import sqlite3
import threading
import tracemalloc
from pathlib import Path

import anyio
import pytest

from sync_engine import SourceError
from sync_engine.records import RowOrigin, SourceRow
from sync_engine.sources import SqliteSource
from sync_engine.sources._types import InvalidText


def make_db(path: Path, script: str) -> Path:
    connection = sqlite3.connect(path)
    try:
        connection.executescript(script)
        connection.commit()
    finally:
        connection.close()
    return path


async def read_all(source: SqliteSource) -> list[SourceRow]:
    rows = []
    async for item in source.read():
        assert isinstance(item, SourceRow)
        rows.append(item)
    return rows


async def test_100k_rows_stream_off_the_loop_with_flat_memory(tmp_path: Path) -> None:
    db = make_db(
        tmp_path / "crm.db",
        "CREATE TABLE people AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
        " WHERE i < 100000) SELECT i AS id, 'user' || i || '@example.com' AS email,"
        " printf('%.100c', 'n') || i AS name FROM n;",
    )
    source = SqliteSource(db, table="people", chunk_size=1000)
    threads: set[int] = set()
    count = 0
    tracemalloc.start()
    try:
        async for item in source.read():
            assert isinstance(item, SourceRow)
            count += 1
            if count % 10_000 == 0:
                threads.add(threading.get_ident())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 100_000
    assert source.max_chunk == 1000
    assert peak < 4_000_000, f"peak {peak} bytes"
    assert threads == {threading.get_ident()}  # rows arrive on the loop's thread...


async def test_the_database_is_read_in_worker_threads(tmp_path: Path) -> None:
    """...while sqlite3 runs elsewhere: a function in the query records its thread."""
    db = make_db(tmp_path / "crm.db", "CREATE TABLE t (email TEXT); INSERT INTO t VALUES ('a');")
    seen: list[int] = []
    source = SqliteSource(db, table="t")
    original = source._connect

    def here() -> int:
        seen.append(threading.get_ident())
        return 1

    def connect() -> sqlite3.Connection:
        connection = original()
        connection.create_function("here", 0, here)
        return connection

    source._connect = connect  # type: ignore[method-assign]
    source.sql = "SELECT email, here() FROM t"
    assert len(await read_all(source)) == 1
    assert seen
    assert threading.get_ident() not in seen


async def test_sqlite_values_keep_their_types_and_bad_text_is_marked(tmp_path: Path) -> None:
    db = make_db(
        tmp_path / "crm.db",
        "CREATE TABLE t (email TEXT, n INTEGER, r REAL, b BLOB, d TEXT);"
        "INSERT INTO t VALUES ('a@x.com', 3, 1.5, x'00ff', '2024-01-05');"
        "INSERT INTO t VALUES (CAST(x'636166e9' AS TEXT), NULL, NULL, NULL, NULL);",
    )
    first, second = await read_all(SqliteSource(db, query="SELECT * FROM t ORDER BY rowid"))
    assert first.origin == RowOrigin(str(db), 1)
    assert first.values == {
        "email": "a@x.com",
        "n": 3,
        "r": 1.5,
        "b": b"\x00\xff",
        "d": "2024-01-05",
    }
    assert second.origin.line == 2
    assert isinstance(second.values["email"], InvalidText)
    assert second.values["n"] is None


async def test_missing_columns_files_and_bad_queries_are_clear(tmp_path: Path) -> None:
    db = make_db(tmp_path / "crm.db", "CREATE TABLE t (email TEXT, nme TEXT);")
    with pytest.raises(SourceError) as caught:
        await read_all(
            SqliteSource(
                db,
                query="SELECT * FROM t",
                required={"name": "mapped to Name"},
                name="crm",
            )
        )
    assert str(caught.value) == (
        "crm (query: SELECT * FROM t): column 'name' (mapped to Name) is not in the result;"
        " its columns are: email, nme"
    )
    with pytest.raises(SourceError, match=r"crm \(table t\): the query failed: no such column"):
        await read_all(SqliteSource(db, table="t", required={"name": "x"}, name="crm"))
    with pytest.raises(SourceError, match="syntax error"):
        await read_all(SqliteSource(db, query="SELEC 1"))
    with pytest.raises(SourceError, match="attempt to write a readonly database"):
        await read_all(SqliteSource(db, query="DELETE FROM t RETURNING email"))
    missing = tmp_path / "nope.db"
    with pytest.raises(SourceError, match="database file not found"):
        await read_all(SqliteSource(missing, table="t"))
    assert not missing.exists()  # read-only: never creates an empty database


async def test_statement_timeout_interrupts_a_runaway_query(tmp_path: Path) -> None:
    db = make_db(tmp_path / "crm.db", "CREATE TABLE t (email TEXT);")
    forever = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n)"
        " SELECT i AS email FROM n WHERE i < 0"
    )
    source = SqliteSource(db, query=forever, statement_timeout=0.2, name="crm")
    with anyio.fail_after(5):
        with pytest.raises(SourceError, match=r"interrupted after \[source\] statement_timeout"):
            await read_all(source)


async def test_breaking_out_closes_the_database(tmp_path: Path) -> None:
    db = make_db(
        tmp_path / "crm.db",
        "CREATE TABLE t AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
        " WHERE i < 10000) SELECT i AS email FROM n;",
    )
    source = SqliteSource(db, table="t", chunk_size=100)
    closed: list[bool] = []
    original = source._connect

    class Tracked(sqlite3.Connection):
        def close(self) -> None:
            closed.append(True)
            super().close()

    def connect() -> sqlite3.Connection:
        connection = original()
        connection.close()
        return sqlite3.connect(
            f"{db.as_uri()}?mode=ro", uri=True, factory=Tracked, check_same_thread=False
        )

    source._connect = connect  # type: ignore[method-assign]
    rows = source.read()
    assert isinstance(await anext(rows), SourceRow)
    assert closed == []
    await rows.aclose()  # type: ignore[attr-defined]
    assert closed == [True]
