"""The executor's resume rules for calls that are not safe to resend (e.g. a campaign
trigger): a batch whose answer was lost is settled through the provider, or reported
as of unknown outcome, and never sent blindly a second time.

The provider here is an in-memory stand-in (UniSender's calls are all safe to resend,
so no real provider of the foundation takes this path yet); the journal is real SQLite.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from sync_engine.errors import JournalError
from sync_engine.executor import Executor
from sync_engine.journal import BatchState, Journal
from sync_engine.journal._db import SqliteDatabase
from sync_engine.journal.ledger import RunLedger
from sync_engine.plan import (
    Batch,
    Change,
    ChangeKind,
    Plan,
    PlanSpool,
    PlanSummary,
    batch_digest,
)
from sync_engine.providers.base import (
    BatchEvents,
    BatchOutcome,
    ProviderLimits,
    ProviderStats,
    RemoteSnapshot,
    RowOutcome,
    RowStatus,
)
from sync_engine.report import SyncReport
from sync_engine.schema import FieldSchema

TARGET = "trigger://example/list/1#0000"


class TriggerProvider:
    """Sends are counted per batch; ``settle`` answers from what it was told it knows."""

    name = "trigger"
    schema = FieldSchema(system={}, reserved=frozenset())
    limits = ProviderLimits(batch_rows=2, concurrency=2)

    def __init__(self, *, safe: bool, known: dict[int, BatchOutcome] | None = None) -> None:
        self.stats = ProviderStats()
        self.safe = safe
        self.known = known or {}
        self.sent: list[int] = []
        self.settled: list[tuple[int, str | None]] = []

    synced_list_id = None

    def additive(self, fields: Sequence[str]) -> frozenset[str]:
        return frozenset()

    async def check(self, fields: Sequence[str]) -> list[str]:
        return []

    async def snapshot(self, fields: Sequence[str]) -> RemoteSnapshot:
        raise NotImplementedError

    async def apply(self, batch: Batch, events: BatchEvents | None = None) -> BatchOutcome:
        if events is not None:
            await events.sent()
            await events.task(f"task-{batch.number}")
        self.sent.append(batch.number)
        return BatchOutcome(rows=(RowOutcome(0, RowStatus.REJECTED, "e_bad", "bad row"),))

    def resend_is_safe(self, batch: Batch) -> bool:
        return self.safe

    async def settle(self, batch: Batch, task_id: str | None) -> BatchOutcome | None:
        self.settled.append((batch.number, task_id))
        return self.known.get(batch.number)

    async def aclose(self) -> None:
        pass


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    store = Journal(await SqliteDatabase.open(tmp_path / "j.sqlite"), label="test")
    await store.migrate()
    try:
        yield store
    finally:
        await store.aclose()


def make_plan(tmp_path: Path, count: int = 6) -> Plan:
    spool = PlanSpool(tmp_path / "plan.jsonl")
    for i in range(count):
        spool.write(Change(ChangeKind.INSERT, f"k{i}", {"email": f"k{i}@x.io"}))
    spool.close()
    return Plan(summary=PlanSummary(to_insert=count), spool=spool)


async def journal_sent_but_unanswered(
    journal: Journal, tmp_path: Path, run_id: int, numbers: Sequence[int]
) -> Plan:
    """What a killed attempt leaves: batches journaled 'sent', with task ids, no answer."""
    plan = make_plan(tmp_path)
    ledger = RunLedger(journal, run_id=run_id, plan_no=1, target=TARGET)
    for batch in plan.batches(2):
        if batch.number in numbers:
            await ledger.pending(batch, batch_digest(batch))
            await ledger.events(batch).sent()
            await ledger.events(batch).task(f"task-{batch.number}")
    return plan


async def resume(
    journal: Journal, run_id: int, provider: TriggerProvider, plan: Plan
) -> SyncReport:
    report = SyncReport(provider="trigger", mode="upsert")
    ledger = RunLedger(
        journal,
        run_id=run_id,
        plan_no=1,
        target=TARGET,
        prior=await journal.batches(run_id, 1),
    )
    await Executor(provider, report, ledger=ledger).execute(plan)
    return report


async def test_lost_answer_is_settled_through_the_provider_not_resent(
    journal: Journal, tmp_path: Path
) -> None:
    run_id = await journal.begin_run(target=TARGET, config_digest="c", mode="upsert", full=False)
    plan = await journal_sent_but_unanswered(journal, tmp_path, run_id, [1, 2])
    known = {1: BatchOutcome(rows=(RowOutcome(1, RowStatus.REJECTED, "e_x", "nope"),))}
    provider = TriggerProvider(safe=False, known=known)
    report = await resume(journal, run_id, provider, plan)
    assert sorted(provider.sent) == [3]  # only the batch never sent before
    assert sorted(provider.settled) == [(1, "task-1"), (2, "task-2")]
    batches = await journal.batches(run_id, 1)
    assert batches[1].state is BatchState.ANSWERED
    assert batches[2].state is BatchState.UNKNOWN  # the provider could not tell: not resent
    assert batches[3].state is BatchState.ANSWERED
    assert all(b.answers <= 1 for b in batches.values())
    # batch 1 settled: 1 inserted + 1 rejected; batch 2 unknown: 2 failed; batch 3: 1 + 1
    assert (report.inserted, report.rejected, report.failed) == (2, 2, 2)
    codes = {p.code for p in report.problems.kept}
    assert "unknown_outcome" in codes
    assert set(await journal.rejects(TARGET)) == {"k1", "k4"}


async def test_lost_answer_is_resent_where_the_call_is_idempotent(
    journal: Journal, tmp_path: Path
) -> None:
    run_id = await journal.begin_run(target=TARGET, config_digest="c", mode="upsert", full=False)
    plan = await journal_sent_but_unanswered(journal, tmp_path, run_id, [2])
    provider = TriggerProvider(safe=True)
    report = await resume(journal, run_id, provider, plan)
    assert sorted(provider.sent) == [1, 2, 3]
    assert provider.settled == [(2, "task-2")]  # asked first: it could not tell
    batches = await journal.batches(run_id, 1)
    assert batches[2].sends == 2
    assert report.inserted == 3


async def test_a_safe_batch_with_a_task_id_is_settled_rather_than_resent(
    journal: Journal, tmp_path: Path
) -> None:
    """An import session still known to the provider answers for the batch: no resend."""
    run_id = await journal.begin_run(target=TARGET, config_digest="c", mode="upsert", full=False)
    plan = await journal_sent_but_unanswered(journal, tmp_path, run_id, [2])
    known = {2: BatchOutcome(rows=(RowOutcome(1, RowStatus.REJECTED, "e_bad", "settled"),))}
    provider = TriggerProvider(safe=True, known=known)
    report = await resume(journal, run_id, provider, plan)
    assert sorted(provider.sent) == [1, 3]
    assert provider.settled == [(2, "task-2")]
    batches = await journal.batches(run_id, 1)
    assert (batches[2].sends, batches[2].state) == (1, BatchState.ANSWERED)
    assert "settled" in {p.reason for p in report.problems.kept}
    assert report.rejected == 3  # one per batch: two answered by apply, one by settle


async def test_settled_batches_are_replayed_into_the_report(
    journal: Journal, tmp_path: Path
) -> None:
    run_id = await journal.begin_run(target=TARGET, config_digest="c", mode="upsert", full=False)
    plan = make_plan(tmp_path)
    first = TriggerProvider(safe=False)
    report = await resume(journal, run_id, first, plan)
    assert len(first.sent) == 3
    again = TriggerProvider(safe=False)
    replayed = await resume(journal, run_id, again, plan)
    assert again.sent == []
    assert replayed.resumed_batches == 3
    assert (replayed.inserted, replayed.rejected) == (report.inserted, report.rejected)
    assert [p.key for p in replayed.problems.kept] == [p.key for p in report.problems.kept]


async def test_a_plan_that_no_longer_matches_its_journal_is_refused(
    journal: Journal, tmp_path: Path
) -> None:
    run_id = await journal.begin_run(target=TARGET, config_digest="c", mode="upsert", full=False)
    await journal_sent_but_unanswered(journal, tmp_path, run_id, [1])
    spool = PlanSpool(tmp_path / "other.jsonl")
    for i in range(6):
        spool.write(Change(ChangeKind.INSERT, f"other{i}", {"email": f"o{i}@x.io"}))
    spool.close()
    other = Plan(summary=PlanSummary(to_insert=6), spool=spool)
    provider = TriggerProvider(safe=True)
    with pytest.raises(JournalError, match="does not match the journal"):
        await resume(journal, run_id, provider, other)
    assert provider.sent == []
