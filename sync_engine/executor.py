"""Fans batches out to the provider: bounded, concurrent, and every row accounted for.

A producer reads the spooled plan into a stream that holds at most ``concurrency``
batches; that many workers send them. Each row of each batch ends in exactly one
bucket of the report (applied, warned, rejected, kept, failed). A fatal answer (bad key)
cancels the rest at once and is raised after the task group has unwound.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import structlog
from anyio.abc import ObjectReceiveStream

from .errors import BatchRejectedError, FatalProviderError, ProviderError
from .plan import Batch, ChangeKind, Plan
from .providers.base import BatchOutcome, Provider, RowOutcome, RowStatus
from .report import Problem, SyncReport

__all__ = ["Executor"]

log = structlog.get_logger("sync_engine.executor")


class Executor:
    """Applies a plan through a provider and records outcomes into a report."""

    def __init__(
        self,
        provider: Provider,
        report: SyncReport,
        *,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.provider = provider
        self.report = report
        self._on_batch = on_batch or (lambda done: None)
        self._fatal: FatalProviderError | None = None
        self._done = 0

    async def execute(self, plan: Plan) -> None:
        limits = self.provider.limits
        send, receive = anyio.create_memory_object_stream[Batch](limits.concurrency)
        async with anyio.create_task_group() as group:

            async def produce() -> None:
                async with send:
                    for batch in plan.batches(limits.batch_rows):
                        await send.send(batch)

            group.start_soon(produce)
            async with receive:
                for _ in range(limits.concurrency):
                    group.start_soon(self._work, receive.clone(), group.cancel_scope)
        if self._fatal is not None:
            raise self._fatal

    async def _work(self, batches: ObjectReceiveStream[Batch], scope: anyio.CancelScope) -> None:
        async with batches:
            async for batch in batches:
                try:
                    outcome = await self.provider.apply(batch)
                except FatalProviderError as error:
                    self._fatal = error
                    self._record_failed(batch, error, stage="batch")
                    scope.cancel()
                    return
                except BatchRejectedError as error:
                    log.error(
                        "batch rejected", batch=batch.number, rows=len(batch), error=str(error)
                    )
                    self._record_failed(batch, error, stage="provider")
                except ProviderError as error:
                    log.error("batch failed", batch=batch.number, rows=len(batch), error=str(error))
                    self._record_failed(batch, error, stage="batch")
                else:
                    self._record(batch, outcome)
                self._done += 1
                self._on_batch(self._done)

    def _record(self, batch: Batch, outcome: BatchOutcome) -> None:
        report = self.report
        report.batches += 1
        for warning in outcome.warnings:
            report.warn(warning)
        special: dict[int, RowOutcome] = {row.index: row for row in outcome.rows}
        for index, change in enumerate(batch.changes):
            row = special.get(index)
            status = row.status if row is not None else RowStatus.OK
            if status in (RowStatus.OK, RowStatus.WARNING):
                if change.kind is ChangeKind.INSERT:
                    report.inserted += 1
                elif change.kind is ChangeKind.UPDATE:
                    report.updated += 1
                else:
                    report.removed += 1
                if row is not None and status is RowStatus.WARNING:
                    report.row_warnings += 1
                    report.warn(f"{row.code}: {row.message}" if row.code else row.message)
                continue
            assert row is not None
            if status is RowStatus.KEPT:
                report.plan.kept_by_consent += 1
                report.kept.append((change.key, row.message or row.code))
                continue
            if status is RowStatus.REJECTED:
                report.rejected += 1
            else:
                report.failed += 1
            report.problems.add(
                Problem(
                    stage="provider" if status is RowStatus.REJECTED else "batch",
                    reason=row.message or row.code,
                    key=change.key,
                    source=change.origin.source if change.origin else None,
                    line=change.origin.line if change.origin else None,
                    code=row.code,
                )
            )

    def _record_failed(self, batch: Batch, error: ProviderError, *, stage: str) -> None:
        """A batch that got no per-row answer: every row is recorded, none forgotten."""
        report = self.report
        report.batches += 1
        for change in batch.changes:
            if stage == "provider":
                report.rejected += 1
            else:
                report.failed += 1
            report.problems.add(
                Problem(
                    stage=stage,
                    reason=f"batch {batch.number} not applied: {error}",
                    key=change.key,
                    source=change.origin.source if change.origin else None,
                    line=change.origin.line if change.origin else None,
                    code=error.code or "",
                )
            )
