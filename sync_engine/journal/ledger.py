"""The executor's side of the journal: one run, one plan, batch by batch.

It turns batch events into journal writes, remembers which rows the provider rejected
(and forgets them once they are applied), and hands back what an earlier attempt of
the same run already settled, so a resumed run sends nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync_engine.plan import Batch, ChangeKind, change_digest
from sync_engine.providers.base import BatchOutcome, RowOutcome, RowStatus

from .store import BatchRecord, BatchState, Journal, RejectRecord

__all__ = ["RunLedger", "outcome_from_json", "outcome_to_json"]


def outcome_to_json(batch: Batch, outcome: BatchOutcome) -> dict[str, Any]:
    """The answer as journaled: special rows, warnings, and the counts it adds up to."""
    return {
        "rows": [[r.index, r.status.value, r.code, r.message] for r in outcome.rows],
        "warnings": list(outcome.warnings),
        "counts": count_outcome(batch, outcome),
    }


def count_outcome(batch: Batch, outcome: BatchOutcome) -> dict[str, int]:
    """Per-bucket row counts of an answered batch (as the executor reports them)."""
    counts = {"inserted": 0, "updated": 0, "removed": 0, "rejected": 0, "failed": 0}
    special = {row.index: row.status for row in outcome.rows}
    applied = {ChangeKind.INSERT: "inserted", ChangeKind.UPDATE: "updated"}
    for index, change in enumerate(batch.changes):
        status = special.get(index, RowStatus.OK)
        if status in (RowStatus.OK, RowStatus.WARNING):
            counts[applied.get(change.kind, "removed")] += 1
        elif status is RowStatus.REJECTED:
            counts["rejected"] += 1
        elif status is RowStatus.TRANSIENT:
            counts["failed"] += 1
    return counts


def outcome_from_json(data: Mapping[str, Any]) -> BatchOutcome:
    return BatchOutcome(
        rows=tuple(
            RowOutcome(index=int(i), status=RowStatus(s), code=c, message=m)
            for i, s, c, m in data.get("rows", ())
        ),
        warnings=tuple(data.get("warnings", ())),
    )


class _Events:
    def __init__(self, ledger: RunLedger, number: int) -> None:
        self._ledger = ledger
        self._number = number

    async def sent(self) -> None:
        ledger = self._ledger
        await ledger.journal.batch_sent(ledger.run_id, ledger.plan_no, self._number)

    async def task(self, task_id: str) -> None:
        ledger = self._ledger
        await ledger.journal.batch_task(ledger.run_id, ledger.plan_no, self._number, task_id)


class RunLedger:
    """Journal writes for the batches of one plan of one run."""

    def __init__(
        self,
        journal: Journal,
        *,
        run_id: int,
        plan_no: int,
        target: str,
        prior: Mapping[int, BatchRecord] | None = None,
        rejects: Mapping[str, RejectRecord] | None = None,
    ) -> None:
        self.journal = journal
        self.run_id = run_id
        self.plan_no = plan_no
        self.target = target
        self._prior = dict(prior or {})
        self._rejects = rejects or {}

    def prior(self, number: int) -> BatchRecord | None:
        return self._prior.get(number)

    def events(self, batch: Batch) -> _Events:
        return _Events(self, batch.number)

    async def pending(self, batch: Batch, digest: str) -> None:
        await self.journal.batch_pending(
            self.run_id,
            self.plan_no,
            batch.number,
            kind=batch.kind.value,
            keys=[change.key for change in batch.changes],
            digest=digest,
        )

    async def answered(self, batch: Batch, outcome: BatchOutcome) -> None:
        await self.journal.batch_settled(
            self.run_id,
            self.plan_no,
            batch.number,
            state=BatchState.ANSWERED,
            outcome=outcome_to_json(batch, outcome),
        )
        await self._learn(batch, outcome)

    async def failed(self, batch: Batch, *, reason: str, code: str, stage: str) -> None:
        bucket = "rejected" if stage == "provider" else "failed"
        await self._unanswered(batch, BatchState.FAILED, reason, code, stage, bucket)

    async def unknown(self, batch: Batch, *, reason: str) -> None:
        await self._unanswered(
            batch, BatchState.UNKNOWN, reason, "unknown_outcome", "batch", "failed"
        )

    async def _unanswered(
        self, batch: Batch, state: BatchState, reason: str, code: str, stage: str, bucket: str
    ) -> None:
        """A batch settled without per-row answers: every row counts in one bucket."""
        await self.journal.batch_settled(
            self.run_id,
            self.plan_no,
            batch.number,
            state=state,
            outcome={
                "reason": reason,
                "code": code,
                "stage": stage,
                "counts": {bucket: len(batch)},
            },
        )

    async def _learn(self, batch: Batch, outcome: BatchOutcome) -> None:
        """Remember rows the provider rejected; forget remembered ones now applied."""
        rejected: list[tuple[str, str, str, str]] = []
        special = {row.index: row for row in outcome.rows}
        applied: list[str] = []
        for index, change in enumerate(batch.changes):
            row = special.get(index)
            if row is not None and row.status is RowStatus.REJECTED:
                rejected.append(
                    (change.key, change_digest(change.fields), row.code, row.message or row.code)
                )
            elif (row is None or row.status in (RowStatus.OK, RowStatus.WARNING)) and (
                change.key in self._rejects
            ):
                applied.append(change.key)
        await self.journal.remember_rejects(self.target, self.run_id, rejected)
        await self.journal.forget_rejects(self.target, applied)
