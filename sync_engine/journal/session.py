"""One journaled run from lock to finish: start or resume, persist the plan, close.

The engine asks a :class:`RunSession` three things: is there a plan to resume (and if
not, why a resumed run must re-plan), where the plan goes, and which remembered
rejects hold a row back. Everything durable lives here, so the engine stays about
syncing and the journal stays about storage.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from sync_engine.config import JournalConfig, SyncConfig
from sync_engine.normalise import FieldValue
from sync_engine.plan import PlanSpool, PlanSummary, change_digest
from sync_engine.report import SyncReport

from . import JournalHandle
from .identity import config_digest, target_of
from .ledger import RunLedger
from .store import BatchState, Journal, RejectRecord, RunRecord, RunStatus

__all__ = ["RejectFilter", "ResumablePlan", "RunSession"]

log = structlog.get_logger("sync_engine.journal")

KEPT_CAP = 1000


@dataclass(frozen=True)
class ResumablePlan:
    """The plan of an interrupted attempt, verified against its journaled digest."""

    spool: PlanSpool
    summary: PlanSummary
    kept: list[tuple[str, str]]
    warnings: list[str]
    problems: Path


@dataclass
class RejectFilter:
    """Holds back rows the provider rejected before, unless they changed since.

    A rejected row is offered again as soon as its payload changes, or after
    ``retry_after`` runs in which it was held back unchanged (the provider's rules may
    have changed). Held rows are reported, never dropped silently.
    """

    remembered: Mapping[str, RejectRecord]
    retry_after: int
    held: list[str] = field(default_factory=list)
    retried: set[str] = field(default_factory=set)

    def hold(self, key: str, fields: Mapping[str, FieldValue]) -> RejectRecord | None:
        record = self.remembered.get(key)
        if record is None:
            return None
        if record.digest == change_digest(fields) and record.held < self.retry_after:
            self.held.append(key)
            return record
        self.retried.add(key)
        return None

    def stale(self) -> list[str]:
        """Remembered keys this plan neither held nor resent: fixed or gone."""
        live = set(self.held) | self.retried
        return [key for key in self.remembered if key not in live]


class RunSession:
    """A journaled run of one target, holding that target's lock throughout."""

    def __init__(self, handle: JournalHandle, config: SyncConfig) -> None:
        self.journal: Journal = handle.journal
        self.lock = handle.lock
        self.settings: JournalConfig = config.journal
        self.config = config
        self.target = target_of(config)
        self.digest = config_digest(config)
        self.run_id = 0
        self.plan_no = 1
        self.resume: ResumablePlan | None = None
        self.rejects: RejectFilter = RejectFilter({}, self.settings.retry_rejects_after_runs)
        self._prior_record: RunRecord | None = None
        self._started = time.monotonic()

    # -- start -----------------------------------------------------------------------
    async def start(self, report: SyncReport, *, full: bool, restart: bool) -> None:
        journal = self.journal
        record = await journal.unfinished_run(self.target)
        if record is not None and restart:
            await journal.finish_run(
                record.id,
                status=RunStatus.ABANDONED,
                outcome=None,
                report=None,
                message="discarded by --restart",
            )
            self._remove_plan_files(record.id)
            report.warn(f"discarded the unfinished run #{record.id} (--restart)")
            record = None
        remembered = await journal.rejects(self.target)
        self.rejects = RejectFilter(remembered, self.settings.retry_rejects_after_runs)
        if record is None:
            self.run_id = await journal.begin_run(
                target=self.target,
                config_digest=self.digest,
                mode=self.config.sync.mode,
                full=full,
            )
            report.run_id = self.run_id
            return
        self.run_id = record.id
        self._prior_record = record
        await journal.resumed(record.id)
        report.run_id = record.id
        report.attempt = record.attempts + 1
        report.full = record.full
        why = self._why_replan(record)
        if why is None:
            self.plan_no = record.plan_no
            self.resume = self._resumable(record)
            log.warning("resuming an interrupted run", run=record.id, attempt=report.attempt)
            return
        report.warn(f"resuming run #{record.id}: {why}; planning afresh")
        log.warning("re-planning an interrupted run", run=record.id, reason=why)
        await self._carry(record, report)
        self.plan_no = record.plan_no + 1

    def _why_replan(self, record: RunRecord) -> str | None:
        if record.plan_path is None or record.planned_at is None or record.plan_state is None:
            return "the interrupted attempt stopped before its plan was complete"
        if record.config_digest != self.digest:
            return "the config has changed since the plan was made"
        age = time.time() - record.planned_at
        if age > self.settings.max_plan_age:
            limit = _duration(self.settings.max_plan_age)
            return (
                f"its plan is {_duration(age)} old, more than the {limit} allowed by"
                " [journal] max_plan_age"
            )
        path = Path(record.plan_path)
        if not path.exists():
            return f"its plan file {path} is missing"
        if PlanSpool.existing(path).file_digest() != record.plan_digest:
            return f"its plan file {path} has changed since it was journaled"
        return None

    def _resumable(self, record: RunRecord) -> ResumablePlan:
        assert record.plan_path is not None
        assert record.plan_state is not None
        state = record.plan_state
        path = Path(record.plan_path)
        return ResumablePlan(
            spool=PlanSpool.existing(path),
            summary=PlanSummary(**state["summary"]),
            kept=[(k, r) for k, r in state.get("kept", [])],
            warnings=list(state.get("warnings", [])),
            problems=_problems_path(path),
        )

    async def _carry(self, record: RunRecord, report: SyncReport) -> None:
        """Count what the abandoned plan applied, and settle what it left in doubt."""
        counts = {"inserted": 0, "updated": 0, "removed": 0, "rejected": 0, "failed": 0}
        for plan_no in range(1, record.plan_no + 1):
            for batch in (await self.journal.batches(record.id, plan_no)).values():
                if batch.state is BatchState.SENT:
                    # Superseded: the new plan sees whatever it did on the provider's side.
                    await self.journal.batch_settled(
                        record.id,
                        plan_no,
                        batch.number,
                        state=BatchState.UNKNOWN,
                        outcome={
                            "reason": "superseded by a new plan",
                            "code": "superseded",
                            "stage": "batch",
                        },
                    )
                    continue
                for name, value in ((batch.outcome or {}).get("counts") or {}).items():
                    counts[name] = counts.get(name, 0) + int(value)
        report.carried = {k: v for k, v in counts.items() if v}
        report.inserted += counts["inserted"]
        report.updated += counts["updated"]
        report.removed += counts["removed"]
        report.rejected += counts["rejected"]
        report.failed += counts["failed"]
        self._remove_plan_files(record.id)

    # -- planning --------------------------------------------------------------------
    def plan_path(self) -> Path:
        folder = self.settings.dir / "plans"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"run-{self.run_id}-plan-{self.plan_no}.jsonl"

    def problems_path(self) -> Path:
        return _problems_path(self.plan_path())

    async def planned(self, spool: PlanSpool, report: SyncReport) -> None:
        """The plan is complete and on disk: journal its identity and the held rejects."""
        with spool.path.open("rb") as written:  # whoever wrote it, it is durable first
            os.fsync(written.fileno())
        state: dict[str, Any] = {
            "summary": dataclasses.asdict(report.plan),
            "kept": report.kept[:KEPT_CAP],
            "warnings": report.warnings,
        }
        await self.journal.planned(
            self.run_id,
            plan_no=self.plan_no,
            digest=spool.file_digest(),
            path=str(spool.path),
            state=state,
        )
        await self.journal.hold_rejects(self.target, self.rejects.held)
        await self.journal.forget_rejects(self.target, self.rejects.stale())

    async def ledger(self) -> RunLedger:
        prior = await self.journal.batches(self.run_id, self.plan_no)
        return RunLedger(
            self.journal,
            run_id=self.run_id,
            plan_no=self.plan_no,
            target=self.target,
            prior=prior,
            rejects=self.rejects.remembered,
        )

    # -- finish ----------------------------------------------------------------------
    async def finished(self, report: SyncReport) -> None:
        """The run ended (success, rejected rows, failure or refusal): close it."""
        await self._add_time()
        summary = {
            key: value
            for key, value in report.to_dict().items()
            if key in ("plan", "applied", "exit_code", "dry_run", "full", "mode", "stages")
        }
        await self.journal.finish_run(
            self.run_id,
            status=RunStatus.FINISHED,
            outcome=report.outcome.value,
            report=summary,
            message=report.message or None,
        )
        self._remove_plan_files(self.run_id)
        await self.journal.prune_batches(self.target, keep_runs=self.settings.keep_batches_of_runs)

    async def interrupted(self) -> None:
        """Stopped by a signal or cancellation: the run stays open for the next one."""
        await self._add_time()

    async def _add_time(self) -> None:
        elapsed, self._started = time.monotonic() - self._started, time.monotonic()
        await self.journal.add_active_time(self.run_id, elapsed)

    def _remove_plan_files(self, run_id: int) -> None:
        folder = self.settings.dir / "plans"
        if folder.exists():
            for path in folder.glob(f"run-{run_id}-plan-*"):
                path.unlink(missing_ok=True)


def _problems_path(plan: Path) -> Path:
    return plan.with_suffix(".problems.jsonl")


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
