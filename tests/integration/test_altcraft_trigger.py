"""Import-and-trigger through the library: every campaign is sent once, whatever is lost.

The emulator counts the campaigns started per profile; a resent batch would count two.
Runs are stopped at chosen points with the emulator's holds (no timing assumptions).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from altcraft_support import (
    TRIGGER,
    TRIGGER_ID,
    Altcraft,
    altcraft_config,
    journal_batches,
    serve_altcraft,
    sync,
)
from conftest import wait_until, write_csv
from structlog.testing import capture_logs

from sync_engine import Outcome, SyncConfig, SyncEngine
from sync_engine.journal import BatchState

COUNT = 30  # three batches of 10


@pytest.fixture
async def altcraft() -> AsyncIterator[Altcraft]:
    async with serve_altcraft() as served:
        yield served


def trigger_config(tmp_path: Path, altcraft: Altcraft, **provider: Any) -> SyncConfig:
    rows = [[f"user{i}@example.com", f"Name {i}"] for i in range(COUNT)]
    return altcraft_config(
        tmp_path,
        altcraft,
        source=write_csv(tmp_path / "c.csv", ["email", "name"], rows),
        provider_settings={
            "trigger_id": TRIGGER_ID,
            "batch_size": 10,
            "concurrency": 1,
            "task_poll_max": 30.0,
            **provider,
        },
        journal={"drain_timeout": 0},
    )


def assert_each_triggered_once(altcraft: Altcraft) -> None:
    profiles = altcraft.emulator.profiles()
    assert len(profiles) == COUNT
    assert [altcraft.emulator.trigger_count(p, TRIGGER_ID) for p in profiles] == [1] * COUNT


async def stopped_run(config: SyncConfig, altcraft: Altcraft, *, when: Callable[[], bool]) -> None:
    """A run cancelled (as a library caller would) once ``when()`` holds."""
    async with anyio.create_task_group() as group:

        async def run() -> None:
            async with SyncEngine(config, clock=altcraft.clock) as engine:
                await engine.run()

        group.start_soon(run)
        await wait_until(when)
        group.cancel_scope.cancel()


async def test_trigger_sends_one_campaign_per_profile_and_converges(
    tmp_path: Path, altcraft: Altcraft
) -> None:
    config = trigger_config(
        tmp_path,
        altcraft,
        trigger_timeout={"minutes": 5},
        trigger_content={"page": "welcome"},
    )
    report = await sync(config, altcraft)
    assert report.outcome is Outcome.SUCCESS, report.render_text()
    assert report.inserted == COUNT
    assert_each_triggered_once(altcraft)
    sent = [r for r in altcraft.emulator.requests if r.method == TRIGGER]
    assert len(sent) == 3
    assert all(r.body["trigger_id"] == TRIGGER_ID for r in sent)
    assert all(r.body["timeout"] == {"minutes": 5} for r in sent)
    assert all(r.body["content"] == {"page": "welcome"} for r in sent)
    assert all(set(item) == {"data"} for r in sent for item in r.body["data"])
    again = await sync(config, altcraft)
    assert again.plan.changes == 0
    assert altcraft.emulator.calls[TRIGGER] == 3
    assert_each_triggered_once(altcraft)


async def test_a_lost_answer_is_an_unknown_outcome_and_is_never_resent(
    tmp_path: Path, altcraft: Altcraft
) -> None:
    """Altcraft acted but the answer was lost (502): no retry, the rows are unknown."""
    altcraft.emulator.lose_answers(TRIGGER)
    config = trigger_config(tmp_path, altcraft)
    report = await sync(config, altcraft)
    assert (report.inserted, report.failed) == (20, 10)
    assert {p.code for p in report.problems.kept} == {"unknown_outcome"}
    assert altcraft.emulator.calls[TRIGGER] == 3  # the lost one was not retried
    assert_each_triggered_once(altcraft)
    after = await sync(config, altcraft)
    assert after.plan.changes == 0  # it had landed: nothing to send, nothing re-triggered
    assert_each_triggered_once(altcraft)


async def test_a_run_stopped_after_the_task_started_settles_it_through_tasks_status(
    tmp_path: Path, altcraft: Altcraft
) -> None:
    """Stopped while polling the first task: the next run reads that task, never resends."""
    config = trigger_config(tmp_path, altcraft)
    release = altcraft.emulator.hold_tasks()
    await stopped_run(config, altcraft, when=lambda: altcraft.emulator.polls["trigger"] >= 1)
    (first, *_) = await journal_batches(config)
    assert first.state is BatchState.SENT
    assert first.task_id is not None
    assert first.task_id.startswith("task_")
    assert altcraft.emulator.calls[TRIGGER] == 1
    release()
    with capture_logs() as logs:
        report = await sync(config, altcraft)
    assert report.outcome is Outcome.SUCCESS, report.render_text()
    assert report.inserted == COUNT
    assert any(e["event"] == "settled a batch through tasks/status" for e in logs)
    assert altcraft.emulator.calls[TRIGGER] == 3  # the first batch was not sent again
    assert_each_triggered_once(altcraft)
    assert all(b.state is BatchState.ANSWERED for b in await journal_batches(config))


async def test_a_run_stopped_before_any_task_id_reports_unknown_and_never_resends(
    tmp_path: Path, altcraft: Altcraft
) -> None:
    """Stopped while the first call was in flight: nothing to check, so nothing resent."""
    config = trigger_config(tmp_path, altcraft)
    release = altcraft.emulator.hold_answers()
    await stopped_run(config, altcraft, when=lambda: altcraft.emulator.calls[TRIGGER] >= 1)
    release()
    (first, *_) = await journal_batches(config)
    assert (first.state, first.task_id) == (BatchState.SENT, None)
    report = await sync(config, altcraft)
    assert (report.inserted, report.failed) == (20, 10)
    assert {p.code for p in report.problems.kept} == {"unknown_outcome"}
    assert altcraft.emulator.calls[TRIGGER] == 3
    assert_each_triggered_once(altcraft)
    assert (await sync(config, altcraft)).plan.changes == 0
    assert_each_triggered_once(altcraft)


async def test_a_split_trigger_batch_journals_every_part_and_settles_each(
    tmp_path: Path, altcraft: Altcraft
) -> None:
    """A batch cut in parts by the body limit: each part's task is settled, none resent."""
    config = trigger_config(tmp_path, altcraft, max_body_bytes=300)
    release = altcraft.emulator.hold_tasks()
    await stopped_run(config, altcraft, when=lambda: altcraft.emulator.polls["trigger"] >= 1)
    (first, *_) = await journal_batches(config)
    assert first.task_id is not None
    parts = first.task_id.split(",")
    assert len(parts) >= 2
    assert all(p.startswith("task_") for p in parts)
    release()
    report = await sync(config, altcraft)
    assert report.outcome is Outcome.SUCCESS, report.render_text()
    assert report.inserted == COUNT
    assert_each_triggered_once(altcraft)
    sent = [r for r in altcraft.emulator.requests if r.method == TRIGGER]
    assert all(r.size <= 300 for r in sent)
    emails = [item["data"]["email"] for r in sent for item in r.body["data"]]
    assert sorted(emails) == sorted(f"user{i}@example.com" for i in range(COUNT))  # each once
