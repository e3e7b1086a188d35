"""Crash-safe runs through the library: stop, resume, restart, re-plan, rejects, locks.

Every test syncs against the emulator over loopback HTTP and keeps its journal (a real
SQLite file, or the real PostgreSQL) beside its config in ``tmp_path``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import PG_DSN, Provider, config_for, wait_until, write_csv
from structlog.testing import capture_logs

from sync_engine import Outcome, SyncConfig, SyncEngine, SyncReport
from sync_engine.emulator import EmulatorOptions
from sync_engine.errors import RunLockedError
from sync_engine.journal import BatchState, RunStatus, open_journal, target_of
from sync_engine.journal.queries import read_history, read_rejects

ROWS = 1200  # 12 batches of 100


class StopAfter:
    """A progress sink that cancels the run once ``batches`` batches are done."""

    def __init__(self, scope: anyio.CancelScope, batches: int) -> None:
        self.scope = scope
        self.batches = batches

    def stage(self, name: str) -> None:
        pass

    def update(self, stage: str, info: Mapping[str, Any]) -> None:
        if stage == "batches" and info["done"] >= self.batches:
            self.scope.cancel()

    def close(self) -> None:
        pass


def contacts_csv(tmp_path: Path, count: int = ROWS, *, suffix: str = "") -> Path:
    return write_csv(
        tmp_path / "contacts.csv",
        ["email", "name"],
        [[f"user{i}@example.com", f"Name {i}{suffix}"] for i in range(count)],
    )


def make_config(tmp_path: Path, provider: Provider, **kwargs: Any) -> SyncConfig:
    settings = {"batch_size": 100, "concurrency": 2, **kwargs.pop("provider_settings", {})}
    return config_for(
        tmp_path,
        provider,
        source=kwargs.pop("source", None) or contacts_csv(tmp_path),
        provider_settings=settings,
        **kwargs,
    )


async def sync(
    config: SyncConfig, provider: Provider, *, columnar: bool = True, **kwargs: Any
) -> SyncReport:
    async with SyncEngine(config, clock=provider.clock, columnar=columnar) as engine:
        report: SyncReport = await engine.run(**kwargs)
        return report


async def interrupted_run(config: SyncConfig, provider: Provider, after: int) -> SyncReport:
    """A run cancelled (as a library caller would) once ``after`` batches are done."""
    with anyio.CancelScope() as scope:
        engine = SyncEngine(config, clock=provider.clock, progress=StopAfter(scope, after))
        async with engine:
            await engine.run()
    assert scope.cancelled_caught
    assert engine.last_report is not None
    return engine.last_report


def assert_provider_equals_local(provider: Provider, count: int = ROWS, suffix: str = "") -> None:
    held = {c.email: c.fields.get("Name") for c in provider.emulator.contacts()}
    assert held == {f"user{i}@example.com": f"Name {i}{suffix}" for i in range(count)}


async def batch_rows(config: SyncConfig) -> list[tuple[int, BatchState, int, int]]:
    handle = await open_journal(config.journal, target_of(config))
    try:
        (run,) = await handle.journal.history(target_of(config), 1)
        rows: list[tuple[int, BatchState, int, int]] = []
        for plan_no in range(1, run.plan_no + 1):
            rows += [
                (plan_no, b.state, b.sends, b.answers)
                for b in (await handle.journal.batches(run.id, plan_no)).values()
            ]
        return rows
    finally:
        await handle.journal.aclose()


async def test_cancelled_run_drains_then_resumes_without_resending(
    tmp_path: Path, provider: Provider
) -> None:
    config = make_config(tmp_path, provider)
    partial = await interrupted_run(config, provider, after=3)
    assert partial.outcome is Outcome.CANCELLED
    assert "resumes" in partial.message
    sent_before = provider.emulator.calls["importContacts"]
    assert 3 <= sent_before < 12
    # Drained: every batch that was sent got its answer journaled; none left in doubt.
    states = {state for _, state, _, _ in await batch_rows(config)}
    assert states == {BatchState.ANSWERED}

    report = await sync(config, provider)
    assert report.outcome is Outcome.SUCCESS
    assert report.attempt == 2
    assert report.resumed_batches == sent_before
    assert report.inserted == ROWS  # reported as one run
    assert report.plan.to_insert == ROWS
    assert provider.emulator.calls["importContacts"] == 12  # nothing sent twice
    assert_provider_equals_local(provider)
    rows = await batch_rows(config)
    assert len(rows) == 12
    assert all(answers == 1 for _, _, _, answers in rows)
    (run,) = await read_history(config)
    assert (run.status, run.attempts, run.outcome) == (RunStatus.FINISHED, 2, "success")
    assert run.report is not None
    assert run.report["applied"]["inserted"] == ROWS
    assert not list((tmp_path / ".sync-engine" / "plans").iterdir())  # plan files cleaned up


@pytest.mark.parametrize("emulator_options", [EmulatorOptions(import_answer_delay=0.3)])
async def test_cut_off_batch_is_resent_because_upserts_are_idempotent(
    tmp_path: Path, provider: Provider
) -> None:
    """With no drain time, a batch in flight is cut off and stays 'sent' in the journal."""
    config = make_config(tmp_path, provider, journal={"drain_timeout": 0})
    async with anyio.create_task_group() as group:

        async def run() -> None:
            async with SyncEngine(config, clock=provider.clock) as engine:
                await engine.run()

        group.start_soon(run)
        # The emulator has applied a batch and holds its answer back for 0.3 s: stop now.
        await wait_until(lambda: provider.emulator.calls["importContacts"] >= 1)
        group.cancel_scope.cancel()
    states = [state for _, state, _, _ in await batch_rows(config)]
    assert BatchState.SENT in states
    assert BatchState.ANSWERED not in states
    report = await sync(config, provider)
    assert report.outcome is Outcome.SUCCESS
    assert report.inserted == ROWS
    rows = await batch_rows(config)
    assert all(answers == 1 for _, _, _, answers in rows)
    assert max(sends for _, _, sends, _ in rows) == 2  # the in-doubt batches, resent once
    assert_provider_equals_local(provider)


async def test_restart_discards_the_interrupted_run(tmp_path: Path, provider: Provider) -> None:
    config = make_config(tmp_path, provider)
    await interrupted_run(config, provider, after=2)
    report = await sync(config, provider, restart=True)
    assert report.attempt == 1
    assert report.resumed_batches == 0
    assert any("discarded the unfinished run" in w for w in report.warnings)
    assert report.inserted + report.plan.unchanged == ROWS
    assert report.plan.unchanged > 0  # the first attempt's batches are now on the provider
    history = await read_history(config)
    assert [r.status for r in history] == [RunStatus.FINISHED, RunStatus.ABANDONED]
    assert_provider_equals_local(provider)


async def test_old_plan_is_replanned_and_still_reported_as_one_run(
    tmp_path: Path, provider: Provider
) -> None:
    config = make_config(tmp_path, provider)
    await interrupted_run(config, provider, after=4)
    stale = make_config(tmp_path, provider, journal={"max_plan_age": 0.000001})
    report = await sync(stale, provider)
    assert any("old, more than" in w and "planning afresh" in w for w in report.warnings)
    assert report.attempt == 2
    assert report.carried["inserted"] >= 400
    assert report.inserted == ROWS  # carried + this plan's inserts
    assert report.plan.to_insert == ROWS - report.carried["inserted"]
    (run,) = await read_history(stale)
    assert (run.attempts, run.plan_no) == (2, 2)
    assert_provider_equals_local(provider)


async def test_changed_config_replans(tmp_path: Path, provider: Provider) -> None:
    config = make_config(tmp_path, provider)
    await interrupted_run(config, provider, after=2)
    mirror = make_config(
        tmp_path, provider, source=tmp_path / "contacts.csv", sync={"mode": "mirror"}
    )
    report = await sync(mirror, provider)
    assert any("config has changed" in w for w in report.warnings), report.warnings
    assert report.attempt == 2
    assert report.inserted == ROWS
    assert_provider_equals_local(provider)


@pytest.mark.parametrize("columnar", [True, False], ids=["columnar", "rows"])
async def test_rejected_rows_are_held_back_until_changed_or_retried(
    tmp_path: Path, provider: Provider, columnar: bool
) -> None:
    rows = [["good@example.com", "Good"], ["trap@spamtrap.example.com", "Trap"]]
    source = write_csv(tmp_path / "contacts.csv", ["email", "name"], rows)
    config = make_config(tmp_path, provider, source=source, journal={"retry_rejects_after_runs": 2})
    with capture_logs() as logs:
        first = await sync(config, provider, columnar=columnar)
    assert ("planned column-wise" in {e["event"] for e in logs}) is columnar
    assert (first.inserted, first.rejected, first.outcome) == (1, 1, Outcome.REJECTED_ROWS)
    (remembered,) = await read_rejects(config)
    assert remembered.key == "trap@spamtrap.example.com"
    imports = provider.emulator.calls["importContacts"]

    for held in (1, 2):  # held back, unchanged, for two runs: not sent, still reported
        report = await sync(config, provider, columnar=columnar)
        assert report.plan.held_back == 1
        assert report.plan.changes == 0
        assert report.outcome is Outcome.REJECTED_ROWS
        (problem,) = report.problems.kept
        assert problem.stage == "held"
        assert f"{held} of 2 runs" in problem.reason
        assert provider.emulator.calls["importContacts"] == imports

    third = await sync(config, provider, columnar=columnar)  # then offered again
    assert (third.plan.held_back, third.rejected) == (0, 1)
    assert provider.emulator.calls["importContacts"] == imports + 1

    rows[1][1] = "Trap, edited"  # a changed row is offered again at once
    write_csv(source, ["email", "name"], rows)
    fourth = await sync(config, provider, columnar=columnar)
    assert (fourth.plan.held_back, fourth.rejected) == (0, 1)

    rows.pop()  # gone from the source: forgotten
    write_csv(source, ["email", "name"], rows)
    fifth = await sync(config, provider, columnar=columnar)
    assert fifth.outcome is Outcome.SUCCESS
    assert await read_rejects(config) == []


@pytest.mark.parametrize("emulator_options", [EmulatorOptions(import_answer_delay=0.1)])
async def test_second_concurrent_run_refuses_then_waits(tmp_path: Path, provider: Provider) -> None:
    config = make_config(tmp_path, provider)
    started = anyio.Event()
    results: dict[str, object] = {}

    class Signal:
        def stage(self, name: str) -> None:
            if name == "apply":
                started.set()

        def update(self, stage: str, info: Mapping[str, Any]) -> None:
            pass

        def close(self) -> None:
            pass

    async def first() -> None:
        async with SyncEngine(config, clock=provider.clock, progress=Signal()) as engine:
            results["first"] = await engine.run()

    async with anyio.create_task_group() as group:
        group.start_soon(first)
        await started.wait()
        async with SyncEngine(config, clock=provider.clock) as engine:
            with pytest.raises(RunLockedError, match="another run of unisender://"):
                await engine.run()
            assert engine.last_report is not None
            assert engine.last_report.outcome is Outcome.LOCKED
            assert engine.last_report.exit_code == 75
        assert "first" not in results  # refused while the first run was still applying
    first_report = results["first"]
    assert isinstance(first_report, SyncReport)
    assert first_report.inserted == ROWS
    waited = await sync(config, provider, lock_wait=30.0)
    assert waited.plan.changes == 0
    assert len(await read_history(config)) == 2


async def test_postgres_journal_and_advisory_lock(
    tmp_path: Path, provider: Provider, pg_schema: str
) -> None:
    journal = {"dsn": PG_DSN, "schema": pg_schema}
    config = make_config(tmp_path, provider, journal=journal)
    await interrupted_run(config, provider, after=3)
    assert not (tmp_path / ".sync-engine" / "journal.sqlite").exists()

    handle = await open_journal(config.journal, target_of(config))
    try:
        await handle.lock.acquire()  # another host holds the target
        with pytest.raises(RunLockedError, match="advisory lock"):
            await sync(config, provider)
    finally:
        await handle.lock.release()
        await handle.journal.aclose()

    report = await sync(config, provider)
    assert (report.attempt, report.inserted) == (2, ROWS)
    assert report.resumed_batches >= 3
    assert provider.emulator.calls["importContacts"] == 12
    (run,) = await read_history(config)
    assert (run.status, run.attempts) == (RunStatus.FINISHED, 2)
    assert_provider_equals_local(provider)


async def test_dry_runs_and_disabled_journal_write_no_journal(
    tmp_path: Path, provider: Provider
) -> None:
    config = make_config(tmp_path, provider, journal={"enabled": False})
    report = await sync(config, provider)
    assert report.run_id is None
    assert not (tmp_path / ".sync-engine").exists()
    planned = await sync(make_config(tmp_path, provider), provider, dry_run=True)
    assert planned.run_id is None
    assert not (tmp_path / ".sync-engine").exists()
