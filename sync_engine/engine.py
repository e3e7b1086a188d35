"""SyncEngine: the library entry point. ``async with SyncEngine(config) as engine``.

No global state and no event loop of its own: it runs inside the caller's loop, owns
an HTTP session and a scratch directory for the life of the ``async with`` block, and
cleans both up however the block ends. Cancelling ``run()`` stops the batches in flight;
``engine.last_report`` then describes what was done before the cancellation.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections.abc import AsyncIterable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import anyio
import structlog

from .clock import Clock
from .columnar import ColumnarPlan, PlanSettings, plan_columnar
from .config import CsvSourceConfig, SyncConfig
from .contact import Contact, ContactBuilder, RemoteContact
from .diff import Differ, Verdict
from .errors import FatalProviderError, RunRefusedError, SourceError, SyncEngineError
from .executor import Executor
from .normalise import Normaliser
from .plan import (
    Change,
    ChangeKind,
    DeletionGuard,
    FieldChange,
    Plan,
    PlanSpool,
    SampleChange,
)
from .progress import NullProgress, Progress
from .providers.base import RemoteSnapshot
from .providers.unisender import UniSenderProvider
from .records import RowProblem
from .report import Outcome, Problem, ProblemSink, SyncReport
from .schema import FieldKind
from .sources import CsvSource, IterableSource, JsonlSource, Source

__all__ = ["SyncEngine"]

log = structlog.get_logger("sync_engine")

KEPT_CAP = 1000

SourceLike = Source | AsyncIterable[Mapping[str, object]] | Iterable[Mapping[str, object]]


class SyncEngine:
    """Plans and applies syncs of one local source to one provider account."""

    def __init__(
        self,
        config: SyncConfig,
        *,
        source: SourceLike | None = None,
        rejects_path: Path | None = None,
        session: aiohttp.ClientSession | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        progress: Progress | None = None,
        columnar: bool = True,
    ) -> None:
        self.config = config
        self.source = _as_source(source) if source is not None else _source_from(config)
        self.rejects_path = rejects_path
        self.last_report: SyncReport | None = None
        self._given_session = session
        self._session: aiohttp.ClientSession | None = None
        self._clock = clock
        self._rng = rng
        self._progress = progress or NullProgress()
        self._work_dir: Path | None = None
        self._provider: UniSenderProvider | None = None
        # False forces the row path (for tests and benchmarks that compare the two).
        self._columnar = columnar

    async def __aenter__(self) -> SyncEngine:
        base = self.config.work_dir
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
        self._work_dir = Path(tempfile.mkdtemp(prefix="sync-engine-", dir=base))
        self._session = self._given_session or aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max(8, self.config.provider.concurrency * 2)),
            headers={"User-Agent": "sync-engine"},
        )
        self._provider = UniSenderProvider(
            self.config.provider,
            session=self._session,
            work_dir=self._work_dir,
            key=self.config.sync.key,
            removal=self.config.sync.removal,
            clock=self._clock,
            rng=self._rng,
            on_progress=self._progress.update,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release the session (if ours) and delete scratch files; safe to call twice."""
        with anyio.CancelScope(shield=True):
            if self._provider is not None:
                await self._provider.aclose()
                self._provider = None
            if self._session is not None and self._session is not self._given_session:
                await self._session.close()
            self._session = None
            if self._work_dir is not None:
                shutil.rmtree(self._work_dir, ignore_errors=True)
                self._work_dir = None
            self._progress.close()

    # -- public API -------------------------------------------------------------------
    async def plan(self, *, full: bool = False, samples: int = 10) -> SyncReport:
        """A dry run: what ``run`` would send, with field-level samples; changes nothing."""
        return await self.run(dry_run=True, full=full, samples=samples)

    async def run(
        self,
        *,
        dry_run: bool = False,
        full: bool = False,
        allow_deletes: int | None = None,
        samples: int = 10,
    ) -> SyncReport:
        """Plan and (unless ``dry_run``) apply; returns the report.

        Raises :class:`~sync_engine.errors.SyncEngineError` subclasses for runs that
        cannot go on (bad config, bad key, deletion guard); ``last_report`` still holds
        what was done up to that point.
        """
        if self._provider is None or self._work_dir is None:
            raise RuntimeError("use 'async with SyncEngine(config) as engine'")
        report = SyncReport(
            provider=self._provider.name,
            mode=self.config.sync.mode,
            dry_run=dry_run,
            full=full,
            problems=ProblemSink(self.rejects_path),
        )
        self.last_report = report
        try:
            await self._run(
                report, dry_run=dry_run, full=full, allow_deletes=allow_deletes, samples=samples
            )
        except anyio.get_cancelled_exc_class():
            report.outcome = Outcome.CANCELLED
            report.message = "cancelled; the report shows what was done before"
            raise
        except SyncEngineError as error:
            refused = isinstance(error, RunRefusedError)
            report.outcome = Outcome.REFUSED if refused else Outcome.FAILED
            report.message = f"{error}; {report.message}" if report.message else str(error)
            raise
        finally:
            report.problems.close()
            stats = self._provider.stats if self._provider else None
            if stats is not None:
                report.calls = dict(stats.calls)
                report.retries = dict(stats.retries)
            self._progress.close()
        report.settle()
        return report

    async def check(self) -> list[str]:
        """Ask the provider whether the key, the synced list and every field exist.

        Returns warnings; raises ConfigError or FatalProviderError as ``run`` would.
        """
        if self._provider is None:
            raise RuntimeError("use 'async with SyncEngine(config) as engine'")
        return await self._provider.check(self._builder(self._provider).fields)

    # -- the run ----------------------------------------------------------------------
    def _builder(self, provider: UniSenderProvider) -> ContactBuilder:
        return ContactBuilder(
            mapping=self.config.mapping,
            schema=provider.schema,
            normaliser=Normaliser(default_region=self.config.sync.default_region),
            key=self.config.sync.key,
            implicit_list_id=self.config.provider.list_id,
        )

    async def _run(
        self,
        report: SyncReport,
        *,
        dry_run: bool,
        full: bool,
        allow_deletes: int | None,
        samples: int,
    ) -> None:
        assert self._provider is not None
        assert self._work_dir is not None
        provider = self._provider
        settings = self.config.sync
        builder = self._builder(provider)
        with self._stage(report, "check"):
            for warning in await provider.check(builder.fields):
                report.warn(warning)
        with self._stage(report, "export"):
            snapshot = await provider.snapshot(builder.fields)
        # Issue #7: a CSV file against the CSV export is planned column-wise when both
        # files allow it (the same plan as below, proven by tests); None: plan by rows.
        columnar = await self._plan_columnar(snapshot, builder, report, full, samples)
        old_values: RemoteSnapshot = snapshot
        if columnar is not None:
            spool, removal_keys = columnar.spool, columnar.removal_keys
            sample_inserts, sample_updates = columnar.sample_inserts, columnar.sample_updates
            old_values = columnar.snapshot or snapshot
        else:
            differ = Differ(fields=builder.fields, additive=self._additive(builder), full=full)
            with self._stage(report, "index"):
                await self._index_remote(snapshot, builder, differ, report)
            spool = PlanSpool(self._work_dir / "plan.jsonl")
            sample_inserts = []
            sample_updates = []
            with self._stage(report, "plan"):
                await self._plan_local(
                    builder, differ, spool, report, sample_inserts, sample_updates, samples
                )
                removal_keys = self._plan_removals(builder, differ, spool, report, samples)
        spool.close()
        plan = Plan(summary=report.plan, spool=spool, full=full)
        guard = DeletionGuard(
            max_share=settings.max_delete_share, max_count=settings.max_delete_count
        )
        if dry_run:
            report.samples = await self._samples(
                old_values, builder, sample_inserts, sample_updates, removal_keys
            )
            try:
                guard.check(report.plan, allow_deletes=allow_deletes)
            except SyncEngineError as error:
                report.warn(f"run would be refused: {error}")
            return
        guard.check(report.plan, allow_deletes=allow_deletes)
        total = plan.batch_count(provider.limits.batch_rows)

        def on_batch(done: int) -> None:
            self._progress.update("batches", {"done": done, "total": total})

        with self._stage(report, "apply"):
            executor = Executor(provider, report, on_batch=on_batch)
            try:
                await executor.execute(plan)
            except FatalProviderError:
                sent = report.inserted + report.updated + report.removed + report.rejected
                report.message = f"stopped after {sent} of {report.plan.changes} changes"
                raise

    async def _plan_columnar(
        self,
        snapshot: RemoteSnapshot,
        builder: ContactBuilder,
        report: SyncReport,
        full: bool,
        samples: int,
    ) -> ColumnarPlan | None:
        """The columnar planner's plan, or None when it is off or the files need the rows."""
        if not self._columnar:
            return None
        assert self._work_dir is not None
        self._progress.stage("plan")
        return await plan_columnar(
            source=self.source,
            snapshot=snapshot,
            builder=builder,
            additive=self._additive(builder),
            settings=PlanSettings(
                mode=self.config.sync.mode, full=full, samples=samples, kept_cap=KEPT_CAP
            ),
            spool_path=self._work_dir / "plan.jsonl",
            report=report,
        )

    async def _index_remote(
        self, snapshot: RemoteSnapshot, builder: ContactBuilder, differ: Differ, report: SyncReport
    ) -> None:
        async for record in snapshot.records():
            if isinstance(record, RowProblem):
                report.plan.remote_invalid += 1
                report.problems.add(_problem("remote", record))
                continue
            contact = builder.remote(record)
            if isinstance(contact, RowProblem):
                report.plan.remote_invalid += 1
                report.problems.add(_problem("remote", contact))
                continue
            if not differ.add_remote(contact):
                report.warn("the provider's export lists some contacts twice; the first is used")
        report.plan.remote_total = differ.remote_total

    async def _plan_local(
        self,
        builder: ContactBuilder,
        differ: Differ,
        spool: PlanSpool,
        report: SyncReport,
        sample_inserts: list[Contact],
        sample_updates: list[Contact],
        samples: int,
    ) -> None:
        summary = report.plan
        mode = self.config.sync.mode
        check_columns = isinstance(self.source, CsvSource)
        async for item in self.source.read():
            summary.local_rows += 1
            if isinstance(item, RowProblem):
                summary.invalid_local += 1
                report.problems.add(_problem("local", item))
                continue
            if check_columns:
                self._check_columns(item.values, item.origin.source)
                check_columns = False
            built = builder.local(item)
            if isinstance(built, RowProblem):
                summary.invalid_local += 1
                report.problems.add(_problem("local", built))
                if built.key is not None:
                    differ.protect(built.key)
                continue
            decision = differ.judge(built)
            verdict = decision.verdict
            if verdict is Verdict.DUPLICATE:
                summary.duplicates += 1
                report.problems.add(
                    Problem(
                        stage="local",
                        reason=f"duplicate key {built.key!r}: first seen at line"
                        f" {decision.first_line}; this row is skipped",
                        key=built.key,
                        source=built.origin.source if built.origin else None,
                        line=built.origin.line if built.origin else None,
                        code="duplicate",
                    )
                )
            elif verdict is Verdict.UNCHANGED:
                summary.unchanged += 1
            elif verdict is Verdict.KEPT:
                summary.kept_by_consent += 1
                if len(report.kept) < KEPT_CAP:
                    report.kept.append((built.key, decision.locked or "locked"))
            elif verdict is Verdict.INSERT:
                if mode == "update-only":
                    summary.skipped_by_mode += 1
                    continue
                summary.to_insert += 1
                spool.write(Change(ChangeKind.INSERT, built.key, built.fields, built.origin))
                if len(sample_inserts) < samples:
                    sample_inserts.append(built)
            else:
                if mode == "insert-only":
                    summary.skipped_by_mode += 1
                    continue
                summary.to_update += 1
                spool.write(Change(ChangeKind.UPDATE, built.key, built.fields, built.origin))
                if len(sample_updates) < samples:
                    sample_updates.append(built)

    def _check_columns(self, values: Mapping[str, object], source: str) -> None:
        missing = [(f, c) for f, c in self.config.mapping.items() if c not in values]
        if missing:
            provider_field, column = missing[0]
            raise SourceError(
                f"{source}: column {column!r} (mapped to {provider_field}) is not in the header;"
                f" columns are: {', '.join(map(str, values))}"
            )

    def _plan_removals(
        self,
        builder: ContactBuilder,
        differ: Differ,
        spool: PlanSpool,
        report: SyncReport,
        samples: int,
    ) -> list[str]:
        shown: list[str] = []
        if self.config.sync.mode != "mirror":
            return shown
        for key, locked in differ.unseen():
            if locked is not None:
                report.plan.kept_from_removal += 1
                continue
            report.plan.to_remove += 1
            spool.write(Change(ChangeKind.REMOVE, key, builder.identity(key)))
            if len(shown) < samples:
                shown.append(key)
        return shown

    async def _samples(
        self,
        snapshot: RemoteSnapshot,
        builder: ContactBuilder,
        inserts: list[Contact],
        updates: list[Contact],
        removals: list[str],
    ) -> list[SampleChange]:
        """Field-level old -> new for a few changes; re-reads the snapshot for old values."""
        wanted = {c.key: c for c in updates}
        remote: dict[str, RemoteContact] = {}
        if wanted:
            async for record in snapshot.records():
                if isinstance(record, RowProblem):
                    continue
                known = builder.remote(record)
                if isinstance(known, RemoteContact) and known.key in wanted:
                    remote[known.key] = known
                    if len(remote) == len(wanted):
                        break
        result = [
            SampleChange(
                ChangeKind.INSERT,
                c.key,
                c.origin,
                tuple(FieldChange(n, None, v) for n, v in c.fields.items() if v),
            )
            for c in inserts
        ]
        for contact in updates:
            old = remote.get(contact.key)
            changes = tuple(
                FieldChange(name, old.fields.get(name) if old else None, value)
                for name, value in contact.fields.items()
                if old is None or old.fields.get(name) != value
            )
            result.append(SampleChange(ChangeKind.UPDATE, contact.key, contact.origin, changes))
        result.extend(SampleChange(ChangeKind.REMOVE, key, None, ()) for key in removals)
        return result

    def _additive(self, builder: ContactBuilder) -> frozenset[str]:
        provider = self.config.provider
        additive = set()
        for name in builder.fields:
            kind = builder.schema.kind(name)
            if (kind is FieldKind.TAGS and not provider.overwrite_tags) or (
                kind is FieldKind.IDS and not provider.overwrite_lists
            ):
                additive.add(name)
        return frozenset(additive)

    @contextmanager
    def _stage(self, report: SyncReport, name: str) -> Iterator[None]:
        self._progress.stage(name)
        log.info("stage", stage=name)
        started = time.perf_counter()
        try:
            yield
        finally:
            report.stages[name] = report.stages.get(name, 0.0) + time.perf_counter() - started


def _problem(stage: str, problem: RowProblem) -> Problem:
    return Problem(
        stage=stage,
        reason=problem.reason,
        key=problem.key,
        source=problem.origin.source,
        line=problem.origin.line,
        field=problem.field,
    )


def _source_from(config: SyncConfig) -> Source:
    source = config.source
    if isinstance(source, CsvSourceConfig):
        return CsvSource(source.path, delimiter=source.delimiter, encoding=source.encoding)
    return JsonlSource(source.path, encoding=source.encoding)


def _as_source(source: Any) -> Source:
    if hasattr(source, "read") and hasattr(source, "name"):
        return source  # type: ignore[no-any-return]
    return IterableSource(source)
