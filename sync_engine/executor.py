"""Fans batches out to the provider: bounded, concurrent, and every row accounted for.

A producer reads the spooled plan into a stream that holds at most ``concurrency``
batches; that many workers send them. Each row of each batch ends in exactly one
bucket of the report (applied, warned, rejected, kept, failed). A fatal answer (bad key)
cancels the rest at once and is raised after the task group has unwound.

Stopping is graceful: when the run is cancelled (SIGTERM, SIGINT, or a library caller
cancelling), no new batch starts, and the batches in flight get ``drain_timeout``
seconds to finish and be journaled; only then are they cut off (their journal entry
stays ``sent``, and the next run settles them). With a :class:`RunLedger`, batches an
earlier attempt of the same run already settled are replayed into the report instead
of being sent again.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import anyio
import structlog
from anyio.abc import ObjectReceiveStream

from .errors import (
    BatchRejectedError,
    FatalProviderError,
    JournalError,
    ProviderError,
    SyncEngineError,
)
from .journal.ledger import RunLedger, outcome_from_json
from .journal.store import BatchRecord, BatchState
from .plan import Batch, ChangeKind, Plan, batch_digest
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
        ledger: RunLedger | None = None,
        drain_timeout: float = 30.0,
    ) -> None:
        self.provider = provider
        self.report = report
        self.ledger = ledger
        self.drain_timeout = drain_timeout
        self._on_batch = on_batch or (lambda done: None)
        self._abort: SyncEngineError | None = None
        self._inflight: set[anyio.CancelScope] = set()
        self._done = 0

    async def execute(self, plan: Plan) -> None:
        limits = self.provider.limits
        send, receive = anyio.create_memory_object_stream[Batch](limits.concurrency)
        async with anyio.create_task_group() as outer:
            outer.start_soon(self._drain_on_cancel)
            async with anyio.create_task_group() as group:

                async def produce() -> None:
                    async with send:
                        for batch in plan.batches(limits.batch_rows):
                            await send.send(batch)

                group.start_soon(produce)
                async with receive:
                    for _ in range(limits.concurrency):
                        group.start_soon(self._work, receive.clone(), group.cancel_scope)
            outer.cancel_scope.cancel()
        if self._abort is not None:
            raise self._abort

    def hurry(self) -> None:
        """Cut off the batches in flight now (a second signal: stop without draining)."""
        for scope in list(self._inflight):
            scope.cancel()

    async def _drain_on_cancel(self) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            self._drain()

    def _drain(self) -> None:
        """Give the batches in flight a bounded time to finish."""
        deadline = anyio.current_time() + self.drain_timeout
        for scope in self._inflight:
            scope.deadline = min(scope.deadline, deadline)

    async def _work(self, batches: ObjectReceiveStream[Batch], scope: anyio.CancelScope) -> None:
        async with batches:
            async for batch in batches:
                with anyio.CancelScope(shield=True, deadline=math.inf) as guard:
                    self._inflight.add(guard)
                    try:
                        await self._handle(batch)
                    except SyncEngineError as error:
                        self._abort = error
                        self._drain()
                        scope.cancel()
                        return
                    finally:
                        self._inflight.discard(guard)
                if guard.cancelled_caught:
                    log.warning(
                        "batch cut off while stopping; the next run settles it", batch=batch.number
                    )
                    continue
                self._done += 1
                self._on_batch(self._done)

    async def _handle(self, batch: Batch) -> None:
        ledger = self.ledger
        if ledger is not None and not await self._resume(ledger, batch):
            return
        try:
            outcome = await self.provider.apply(
                batch, ledger.events(batch) if ledger is not None else None
            )
        except FatalProviderError as error:
            await self._failed(batch, str(error), error.code or "", "batch")
            raise
        except BatchRejectedError as error:
            log.error("batch rejected", batch=batch.number, rows=len(batch), error=str(error))
            await self._failed(batch, str(error), error.code or "", "provider")
        except ProviderError as error:
            log.error("batch failed", batch=batch.number, rows=len(batch), error=str(error))
            await self._failed(batch, str(error), error.code or "", "batch")
        else:
            if ledger is not None:
                await ledger.answered(batch, outcome)
            self._record(batch, outcome)

    async def _resume(self, ledger: RunLedger, batch: Batch) -> bool:
        """Journal the batch before it is sent; False if an earlier attempt settled it."""
        digest = batch_digest(batch)
        prior = ledger.prior(batch.number)
        if prior is None:
            await ledger.pending(batch, digest)
            return True
        if prior.digest != digest:
            raise JournalError(
                f"batch {batch.number} of the plan does not match the journal; the plan file"
                " has changed since it was journaled (run with --restart to plan afresh)"
            )
        if prior.state.settled:
            self._replay(batch, prior)
            return False
        if prior.state is not BatchState.SENT:
            return True
        safe = self.provider.resend_is_safe(batch)
        # A task id settles the batch exactly (and spares a resend); without one, an unsafe
        # batch still asks the provider, which may know by other means.
        if prior.task_id is not None or not safe:
            outcome = await self.provider.settle(batch, prior.task_id)
            if outcome is None and safe:
                log.info("resending a batch whose answer was lost", batch=batch.number)
                return True
            if outcome is None:
                reason = (
                    f"batch {batch.number} was sent by an earlier attempt and its outcome is"
                    " unknown; it is not resent, since resending is not safe for this call"
                )
                await ledger.unknown(batch, reason=reason)
                self._record_failed(batch, reason, "unknown_outcome", "batch")
            else:
                await ledger.answered(batch, outcome)
                self._record(batch, outcome)
            return False
        log.info("resending a batch whose answer was lost", batch=batch.number)
        return True

    def _replay(self, batch: Batch, prior: BatchRecord) -> None:
        self.report.resumed_batches += 1
        stored = prior.outcome or {}
        if prior.state is BatchState.ANSWERED:
            self._record(batch, outcome_from_json(stored))
        else:
            self._record_failed(
                batch,
                str(stored.get("reason", "")),
                str(stored.get("code", "")),
                str(stored.get("stage", "batch")),
            )

    async def _failed(self, batch: Batch, reason: str, code: str, stage: str) -> None:
        if self.ledger is not None:
            await self.ledger.failed(batch, reason=reason, code=code, stage=stage)
        self._record_failed(batch, reason, code, stage)

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

    def _record_failed(self, batch: Batch, reason: str, code: str, stage: str) -> None:
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
                    reason=f"batch {batch.number} not applied: {reason}",
                    key=change.key,
                    source=change.origin.source if change.origin else None,
                    line=change.origin.line if change.origin else None,
                    code=code,
                )
            )
