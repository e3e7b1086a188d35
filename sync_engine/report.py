"""What a run did: counts, problems with where to find them, timings, and exit codes.

Problem rows are kept in memory only up to a cap (the report of a run with a million
rejects must not cost a gigabyte); every one of them still reaches the rejects file,
which is written as the run goes.
"""

from __future__ import annotations

import csv
import enum
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from .plan import PlanSummary, SampleChange

__all__ = ["Outcome", "Problem", "ProblemSink", "SyncReport", "neutralise_formula"]

MEMORY_CAP = 1000
WARNINGS_CAP = 100


class Outcome(enum.Enum):
    SUCCESS = "success"
    REJECTED_ROWS = "completed with rejected rows"
    FAILED = "failed"
    REFUSED = "refused"
    CANCELLED = "cancelled"
    LOCKED = "locked"  # another run of the same target was in progress

    @property
    def exit_code(self) -> int:
        return {
            Outcome.SUCCESS: 0,
            Outcome.REJECTED_ROWS: 1,
            Outcome.FAILED: 3,
            Outcome.REFUSED: 3,
            Outcome.CANCELLED: 130,
            Outcome.LOCKED: 75,
        }[self]


@dataclass(frozen=True, slots=True)
class Problem:
    """A row that was not applied, with where it came from and why.

    ``stage`` is ``local`` (bad input), ``remote`` (an unreadable export row),
    ``provider`` (the provider rejected the row) or ``batch`` (the batch failed).
    """

    stage: str
    reason: str
    key: str | None = None
    source: str | None = None
    line: int | None = None
    field: str | None = None
    code: str = ""

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.source else (self.key or "")
        if self.field:
            where += f" field {self.field!r}"
        code = f" [{self.code}]" if self.code else ""
        return f"{where}: {self.reason}{code}"


def neutralise_formula(value: str) -> str:
    """Stop spreadsheets from running a cell as a formula (CSV injection)."""
    if value and value[0] in "=+-@\t\r":
        return "'" + value
    return value


class ProblemSink:
    """Collects problems: all to an optional CSV file, the first ones in memory."""

    COLUMNS = ("stage", "key", "source", "line", "field", "code", "reason")

    def __init__(self, path: Path | None = None, *, cap: int = MEMORY_CAP) -> None:
        self.cap = cap
        self.kept: list[Problem] = []
        self.counts: dict[str, int] = {}
        self._file: IO[str] | None = None
        self._writer: Any = None
        self._copy: IO[bytes] | None = None
        if path is not None:
            self._file = path.open("w", encoding="utf-8", newline="")
            self._writer = csv.writer(self._file)
            self._writer.writerow(self.COLUMNS)

    def copy_to(self, path: Path | None) -> None:
        """Also append every problem to ``path`` as JSON lines (None: stop copying).

        A journaled run copies its planning problems beside its plan file, so that a
        resumed run can report them again as one run.
        """
        if self._copy is not None:
            self._copy.flush()
            os.fsync(self._copy.fileno())
            self._copy.close()
            self._copy = None
        if path is not None:
            self._copy = path.open("ab")

    def replay(self, path: Path) -> None:
        """Add the problems an earlier attempt copied to ``path``."""
        if not path.exists():
            return
        with path.open("rb") as copied:
            for line in copied:
                if line.strip():
                    self.add(Problem(**orjson.loads(line)))

    def add(self, problem: Problem) -> None:
        if self._copy is not None:
            self._copy.write(orjson.dumps(asdict(problem), option=orjson.OPT_APPEND_NEWLINE))
        self.counts[problem.stage] = self.counts.get(problem.stage, 0) + 1
        if len(self.kept) < self.cap:
            self.kept.append(problem)
        if self._writer is not None:
            row = asdict(problem)
            self._writer.writerow(
                [neutralise_formula("" if row[c] is None else str(row[c])) for c in self.COLUMNS]
            )

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def close(self) -> None:
        self.copy_to(None)
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass(kw_only=True)
class SyncReport:
    """The result of a run or a dry run."""

    provider: str
    mode: str
    dry_run: bool = False
    full: bool = False
    outcome: Outcome = Outcome.SUCCESS
    message: str = ""
    plan: PlanSummary = field(default_factory=PlanSummary)
    inserted: int = 0
    updated: int = 0
    removed: int = 0
    rejected: int = 0
    failed: int = 0  # rows of batches that failed after every retry
    row_warnings: int = 0
    batches: int = 0
    run_id: int | None = None  # the journal's run number (None without a journal)
    attempt: int = 1  # 2 and up: this run resumed an interrupted one
    resumed_batches: int = 0  # settled by an earlier attempt, counted, not resent
    carried: dict[str, int] = field(default_factory=dict)  # applied by an earlier plan
    warnings: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (key, provider's reason)
    samples: list[SampleChange] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)  # calls/s: see ProviderStats
    problems: ProblemSink = field(default_factory=ProblemSink)

    @property
    def exit_code(self) -> int:
        return self.outcome.exit_code

    @property
    def invalid_local(self) -> int:
        return self.plan.invalid_local + self.plan.duplicates

    def warn(self, text: str) -> None:
        """Record a distinct warning; capped, since a provider may vary the text per row."""
        if len(self.warnings) < WARNINGS_CAP and text not in self.warnings:
            self.warnings.append(text)

    def settle(self) -> None:
        """Decide the outcome from the counts, unless a failure already decided it."""
        if self.outcome is not Outcome.SUCCESS:
            return
        if self.failed:
            self.outcome = Outcome.FAILED
            self.message = self.message or f"{self.failed} rows were not applied"
        elif self.rejected or self.invalid_local or self.plan.held_back:
            self.outcome = Outcome.REJECTED_ROWS

    def to_dict(self) -> dict[str, Any]:
        plan = asdict(self.plan)
        plan["local_valid"] = self.plan.local_valid
        return {
            "provider": self.provider,
            "mode": self.mode,
            "dry_run": self.dry_run,
            "full": self.full,
            "outcome": self.outcome.value,
            "exit_code": self.exit_code,
            "message": self.message,
            "plan": plan,
            "applied": {
                "inserted": self.inserted,
                "updated": self.updated,
                "removed": self.removed,
                "rejected": self.rejected,
                "failed": self.failed,
                "row_warnings": self.row_warnings,
                "batches": self.batches,
                "resumed_batches": self.resumed_batches,
                "carried": self.carried,
            },
            "run_id": self.run_id,
            "attempt": self.attempt,
            "kept_by_consent": [{"key": k, "reason": r} for k, r in self.kept],
            "warnings": self.warnings,
            "problems_total": self.problems.total,
            "problems": [asdict(p) for p in self.problems.kept],
            "samples": [
                {
                    "kind": s.kind.value,
                    "key": s.key,
                    "origin": str(s.origin) if s.origin else None,
                    "fields": [
                        {"field": c.field, "old": _jsonable(c.old), "new": _jsonable(c.new)}
                        for c in s.fields
                    ],
                }
                for s in self.samples
            ],
            "stages": {k: round(v, 4) for k, v in self.stages.items()},
            "calls": self.calls,
            "retries": self.retries,
            "rates": self.rates,
        }

    def render_text(self) -> str:
        return "\n".join(self._lines())

    def _lines(self) -> Iterator[str]:
        p = self.plan
        title = "plan (dry run)" if self.dry_run else "sync"
        yield f"{title}: {self.provider}, mode {self.mode}{', full resync' if self.full else ''}"
        yield f"  outcome: {self.outcome.value}" + (f": {self.message}" if self.message else "")
        if self.run_id is not None:
            resumed = f", attempt {self.attempt} (resumed)" if self.attempt > 1 else ""
            yield f"  run: #{self.run_id}{resumed}"
        yield (
            f"  local: {p.local_rows} rows read, {p.local_valid} valid, {p.invalid_local} invalid,"
            f" {p.duplicates} duplicate keys"
        )
        yield f"  remote: {p.remote_total} contacts ({p.remote_invalid} unreadable rows)"
        yield (
            f"  plan: {p.to_insert} to insert, {p.to_update} to update, {p.to_remove} to remove,"
            f" {p.unchanged} unchanged, {p.kept_by_consent} kept by consent"
            + (f", {p.skipped_by_mode} skipped by mode" if p.skipped_by_mode else "")
            + (f", {p.kept_from_removal} not removed (consent)" if p.kept_from_removal else "")
            + (f", {p.held_back} held back (rejected before, unchanged)" if p.held_back else "")
        )
        if not self.dry_run:
            yield (
                f"  applied: {self.inserted} inserted, {self.updated} updated, {self.removed}"
                f" removed, {self.rejected} rejected by the provider, {self.failed} failed"
                f" ({self.batches} batches"
                + (
                    f", {self.resumed_batches} settled before the resume"
                    if self.resumed_batches
                    else ""
                )
                + ")"
            )
            if self.carried:
                carried = ", ".join(f"{v} {k}" for k, v in self.carried.items() if v)
                yield f"  applied by the earlier plan of this run (included above): {carried}"
        if self.kept:
            shown = ", ".join(f"{k} ({r})" for k, r in self.kept[:10])
            more = p.kept_by_consent - min(len(self.kept), 10)
            yield f"  kept as the provider has them: {shown}" + (
                f" and {more} more" if more > 0 else ""
            )
        for warning in self.warnings:
            yield f"  warning: {warning}"
        if self.problems.total:
            yield f"  problems ({self.problems.total}):"
            for problem in self.problems.kept[:20]:
                yield f"    {problem}"
            if self.problems.total > 20:
                yield f"    ... and {self.problems.total - 20} more (use --rejects FILE for all)"
        for sample in self.samples:
            where = f" ({sample.origin})" if sample.origin else ""
            yield f"  {sample.kind.value} {sample.key}{where}"
            for change in sample.fields:
                yield f"      {change.field}: {_show(change.old)} -> {_show(change.new)}"
        if self.stages:
            yield "  time: " + ", ".join(f"{k} {v:.2f}s" for k, v in self.stages.items())
        if self.calls:
            calls = ", ".join(f"{k} {v}" for k, v in sorted(self.calls.items()))
            retries = sum(self.retries.values())
            yield f"  calls: {calls}" + (f"; {retries} retried" if retries else "")
        if "effective" in self.rates:
            rates = self.rates
            slowed = int(rates.get("slowdowns", 0))
            yield (
                f"  rate: {rates['effective']:.2f} calls/s effective"
                f" (configured {rates.get('configured', 0):.2f}/s"
                + (
                    f"; slowed down {slowed} times by the provider's refusals,"
                    f" lowest {rates.get('lowest', 0):.2f}/s"
                    if slowed
                    else ""
                )
                + ")"
            )


def _jsonable(value: object) -> object:
    if isinstance(value, frozenset):
        return sorted(value)
    return value


def _show(value: object) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, frozenset):
        return "{" + ", ".join(sorted(value)) + "}"
    return repr(value)
