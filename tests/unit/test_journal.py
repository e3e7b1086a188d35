"""The journal store and the run locks, on a real SQLite file and the real PostgreSQL."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import asyncpg
import pytest
from conftest import PG_DSN

from sync_engine.clock import FakeClock
from sync_engine.config import JournalConfig
from sync_engine.errors import JournalError, RunLockedError
from sync_engine.journal import BatchState, Journal, RunStatus, open_journal
from sync_engine.journal._db import PostgresDatabase, SqliteDatabase
from sync_engine.journal.lock import FileRunLock, PostgresRunLock
from sync_engine.secret import Secret

TARGET = "unisender://api.example.com/list/7#abcd0123"


@pytest.fixture(params=["sqlite", "postgres"])
async def journal(
    request: pytest.FixtureRequest, tmp_path: Path, pg_schema: str
) -> AsyncIterator[Journal]:
    if request.param == "sqlite":
        database: SqliteDatabase | PostgresDatabase = await SqliteDatabase.open(
            tmp_path / "journal.sqlite"
        )
    else:
        database = await PostgresDatabase.open(PG_DSN, schema=pg_schema)
    store = Journal(database, label=request.param)
    await store.migrate()
    await store.migrate()  # idempotent
    try:
        yield store
    finally:
        await store.aclose()


async def test_run_life_cycle_round_trips(journal: Journal) -> None:
    run_id = await journal.begin_run(target=TARGET, config_digest="c1", mode="mirror", full=True)
    unfinished = await journal.unfinished_run(TARGET)
    assert unfinished is not None
    assert (unfinished.id, unfinished.mode, unfinished.full, unfinished.attempts) == (
        run_id,
        "mirror",
        True,
        1,
    )
    assert unfinished.plan_path is None
    await journal.planned(
        run_id, plan_no=1, digest="d1", path="/p/plan", state={"summary": {"to_insert": 3}}
    )
    await journal.resumed(run_id)
    await journal.add_active_time(run_id, 1.5)
    await journal.add_active_time(run_id, 2.0)
    record = await journal.run(run_id)
    assert (record.plan_digest, record.plan_path, record.attempts) == ("d1", "/p/plan", 2)
    assert record.plan_state == {"summary": {"to_insert": 3}}
    assert record.active_seconds == pytest.approx(3.5)
    await journal.finish_run(
        run_id, status=RunStatus.FINISHED, outcome="success", report={"applied": {}}, message=None
    )
    assert await journal.unfinished_run(TARGET) is None
    assert await journal.unfinished_run("other") is None
    (listed,) = await journal.history(TARGET, 10)
    assert listed.status is RunStatus.FINISHED
    assert listed.outcome == "success"
    assert listed.finished_at is not None


async def test_history_is_per_target_and_newest_first(journal: Journal) -> None:
    ids = [
        await journal.begin_run(target=t, config_digest="c", mode="upsert", full=False)
        for t in (TARGET, "other", TARGET)
    ]
    assert [r.id for r in await journal.history(TARGET, 10)] == [ids[2], ids[0]]
    assert [r.id for r in await journal.history(None, 2)] == [ids[2], ids[1]]


async def test_batch_states_and_answer_count(journal: Journal) -> None:
    run_id = await journal.begin_run(target=TARGET, config_digest="c", mode="upsert", full=False)
    await journal.batch_pending(run_id, 1, 1, kind="upsert", keys=["a", "b"], digest="x")
    await journal.batch_pending(run_id, 1, 1, kind="upsert", keys=["a", "b"], digest="x")
    await journal.batch_pending(run_id, 1, 2, kind="remove", keys=["c"], digest="y")
    await journal.batch_sent(run_id, 1, 1)
    await journal.batch_sent(run_id, 1, 2)
    await journal.batch_task(run_id, 1, 2, "task-9")
    await journal.batch_settled(
        run_id, 1, 1, state=BatchState.ANSWERED, outcome={"rows": [], "counts": {"inserted": 2}}
    )
    batches = await journal.batches(run_id, 1)
    assert batches[1].state is BatchState.ANSWERED
    assert (batches[1].sends, batches[1].answers) == (1, 1)
    assert batches[1].outcome == {"rows": [], "counts": {"inserted": 2}}
    assert batches[2].state is BatchState.SENT
    assert batches[2].task_id == "task-9"
    states = sorted(b.state.value for b in batches.values())
    assert states == ["answered", "sent"]
    later = await journal.begin_run(target=TARGET, config_digest="c", mode="upsert", full=False)
    await journal.batch_pending(later, 1, 1, kind="upsert", keys=["d"], digest="z")
    await journal.prune_batches(TARGET, keep_runs=1)
    assert await journal.batches(run_id, 1) == {}  # older runs' batch rows are dropped
    assert list(await journal.batches(later, 1)) == [1]  # the last run's are kept
    assert len(await journal.history(TARGET, 10)) == 2  # runs stay for the history


async def test_rejects_are_remembered_held_and_forgotten(journal: Journal) -> None:
    await journal.remember_rejects(TARGET, 1, [("a@x.io", "d1", "e_bad", "bad address")])
    await journal.remember_rejects("other", 1, [("a@x.io", "d9", "e_bad", "elsewhere")])
    await journal.hold_rejects(TARGET, ["a@x.io"])
    await journal.hold_rejects(TARGET, ["a@x.io"])
    record = (await journal.rejects(TARGET))["a@x.io"]
    assert (record.digest, record.code, record.held, record.first_run) == ("d1", "e_bad", 2, 1)
    await journal.remember_rejects(TARGET, 4, [("a@x.io", "d2", "e_bad", "still bad")])
    record = (await journal.rejects(TARGET))["a@x.io"]
    assert (record.digest, record.held, record.first_run, record.last_run) == ("d2", 0, 1, 4)
    await journal.forget_rejects(TARGET, ["a@x.io"])
    assert await journal.rejects(TARGET) == {}
    assert list(await journal.rejects("other")) == ["a@x.io"]


async def test_sqlite_journal_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "journal.sqlite").write_bytes(b"this is not a database file at all" * 100)
    with pytest.raises(JournalError, match=r"journal\.sqlite"):
        await open_journal(JournalConfig(dir=tmp_path), TARGET)


async def test_postgres_journal_bad_dsn_hides_the_password() -> None:
    dsn = "postgresql://postgres:s3cret-pw@127.0.0.1:1/test"
    with pytest.raises(JournalError) as caught:
        await PostgresDatabase.open(dsn, schema="x", connect_timeout=2)
    assert "s3cret-pw" not in str(caught.value)
    assert "***" in str(caught.value)


async def test_file_lock_refuses_a_second_holder_and_waits(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "locks" / "t.lock"
    first = FileRunLock(path, TARGET, clock=clock)
    second = FileRunLock(path, TARGET, clock=clock)
    await first.acquire()
    with pytest.raises(RunLockedError, match=rf"pid {os.getpid()}"):
        await second.acquire()
    with pytest.raises(RunLockedError):
        await second.acquire(wait=5.0)
    assert clock.now() >= 5.0

    async def release_later() -> None:
        await clock.sleep(2.0)
        await first.release()

    async with anyio.create_task_group() as group:
        group.start_soon(release_later)
        await second.acquire(wait=60.0)
    await second.release()


async def test_file_lock_dies_with_its_process(tmp_path: Path) -> None:
    """A SIGKILLed holder leaves no stale lock: the kernel drops the flock."""
    path = tmp_path / "t.lock"
    script = (
        "import fcntl, os, sys, time\n"
        f"f = open({str(path)!r}, 'a+'); fcntl.flock(f.fileno(), fcntl.LOCK_EX)\n"
        "print('locked', flush=True); time.sleep(60)\n"
    )
    async with await anyio.open_process([sys.executable, "-c", script]) as holder:
        assert holder.stdout is not None
        assert (await holder.stdout.receive()).startswith(b"locked")
        with pytest.raises(RunLockedError):
            await FileRunLock(path, TARGET).acquire()
        holder.kill()
        await holder.wait()
    lock = FileRunLock(path, TARGET)
    await lock.acquire()
    await lock.release()


async def test_postgres_advisory_lock(pg_schema: str) -> None:
    clock = FakeClock()
    one = await asyncpg.connect(PG_DSN)
    two = await asyncpg.connect(PG_DSN)
    try:
        first = PostgresRunLock(PostgresDatabase(one, "one"), TARGET + pg_schema, clock=clock)
        second = PostgresRunLock(PostgresDatabase(two, "two"), TARGET + pg_schema, clock=clock)
        await first.acquire()
        with pytest.raises(RunLockedError, match="advisory lock"):
            await second.acquire(wait=1.0)
        await first.release()
        await second.acquire()
        await second.release()
        await first.acquire()
    finally:
        await one.close()  # a closed session drops its advisory locks
    try:
        third = PostgresRunLock(PostgresDatabase(two, "two"), TARGET + pg_schema, clock=clock)
        await third.acquire()
        await third.release()
    finally:
        await two.close()


async def test_open_journal_picks_sqlite_or_postgres(tmp_path: Path, pg_schema: str) -> None:
    handle = await open_journal(JournalConfig(dir=tmp_path / "state"), TARGET)
    try:
        assert isinstance(handle.lock, FileRunLock)
        assert (tmp_path / "state" / "journal.sqlite").exists()
        assert handle.lock.path.parent == tmp_path / "state" / "locks"
    finally:
        await handle.journal.aclose()
    settings = JournalConfig(dir=tmp_path / "state", dsn=Secret(PG_DSN), schema=pg_schema)
    handle = await open_journal(settings, TARGET)
    try:
        assert isinstance(handle.lock, PostgresRunLock)
        assert "PostgreSQL" in handle.journal.label
        await handle.journal.begin_run(target=TARGET, config_digest="c", mode="upsert", full=False)
        assert len(await handle.journal.history(TARGET, 5)) == 1
    finally:
        await handle.journal.aclose()
