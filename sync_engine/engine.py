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
from contextlib import aclosing, closing, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import anyio
import structlog

from .clock import Clock
from .columnar import ColumnarPlan, PlanSettings, plan_columnar
from .config import (
    CsvSourceConfig,
    JsonlSourceConfig,
    PostgresSourceConfig,
    SqliteSourceConfig,
    SyncConfig,
)
from .contact import Contact, ContactBuilder, RemoteContact
from .diff import Differ, Verdict
from .duplicates import Duplicate
from .errors import (
    FatalProviderError,
    JournalError,
    RunLockedError,
    RunRefusedError,
    SyncEngineError,
)
from .executor import Executor
from .journal import open_journal, target_of
from .journal.session import RejectFilter, ResumablePlan, RunSession
from .local import LocalContacts, needed_columns
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
from .providers.base import Provider, RemoteSnapshot
from .providers.registry import ProviderContext, open_provider
from .records import RowOrigin, RowProblem
from .report import Outcome, Problem, ProblemSink, SyncReport
from .sources import (
    CsvSource,
    IterableSource,
    JsonlSource,
    PostgresSource,
    Source,
    SqliteSource,
)

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
        self._provider: Provider | None = None
        self._executor: Executor | None = None
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
        self._provider = open_provider(
            self.config,
            ProviderContext(
                session=self._session,
                work_dir=self._work_dir,
                clock=self._clock,
                rng=self._rng,
                on_progress=self._progress.update,
            ),
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
        restart: bool = False,
        lock_wait: float | None = None,
    ) -> SyncReport:
        """Plan and (unless ``dry_run``) apply; returns the report.

        With the journal on (the default), a run holds its target's lock, resumes an
        interrupted run of the same target (``restart`` discards it instead), and is
        recorded in the history. Cancelling it stops new batches, lets those in flight
        finish (up to ``[journal] drain_timeout``) and leaves the run to be resumed.

        Raises :class:`~sync_engine.errors.SyncEngineError` subclasses for runs that
        cannot go on (bad config, bad key, deletion guard, the lock is held);
        ``last_report`` still holds what was done up to that point.
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
        journaled = self.config.journal.enabled and not dry_run
        try:
            if journaled:
                await self._journaled(
                    report,
                    full=full,
                    allow_deletes=allow_deletes,
                    restart=restart,
                    lock_wait=self.config.journal.lock_wait if lock_wait is None else lock_wait,
                )
            else:
                await self._run(
                    report,
                    dry_run=dry_run,
                    full=full,
                    allow_deletes=allow_deletes,
                    samples=samples,
                    session=None,
                )
                report.settle()
        except anyio.get_cancelled_exc_class():
            report.outcome = Outcome.CANCELLED
            report.message = "interrupted; the next run resumes where this one stopped"
            if not journaled:
                report.message = "cancelled; the report shows what was done before"
            raise
        except SyncEngineError as error:
            _fail(report, error)
            raise
        finally:
            report.problems.close()
            stats = self._provider.stats if self._provider else None
            if stats is not None:
                report.calls = dict(stats.calls)
                report.retries = dict(stats.retries)
                report.rates = dict(stats.rates)
            self._progress.close()
        return report

    def hurry(self) -> None:
        """Stop now: cut off batches in flight instead of letting them finish.

        For a second Ctrl-C; the journal keeps them as sent, and the next run settles them.
        """
        if self._executor is not None:
            self._executor.hurry()

    async def _journaled(
        self,
        report: SyncReport,
        *,
        full: bool,
        allow_deletes: int | None,
        restart: bool,
        lock_wait: float,
    ) -> None:
        handle = await open_journal(self.config.journal, target_of(self.config), clock=self._clock)
        try:
            await handle.lock.acquire(wait=lock_wait)
            try:
                session = RunSession(handle, self.config)
                await session.start(report, full=full, restart=restart)
                try:
                    await self._run(
                        report,
                        dry_run=False,
                        full=report.full,
                        allow_deletes=allow_deletes,
                        samples=0,
                        session=session,
                    )
                except anyio.get_cancelled_exc_class():
                    await session.interrupted()
                    raise
                except SyncEngineError as error:
                    if not isinstance(error, JournalError):
                        _fail(report, error)
                        await session.finished(report)
                    raise
                report.settle()
                await session.finished(report)
            finally:
                await handle.lock.release()
        finally:
            await handle.journal.aclose()

    async def check(self) -> list[str]:
        """Ask the provider whether the key, the synced list and every field exist.

        Returns warnings; raises ConfigError or FatalProviderError as ``run`` would.
        """
        if self._provider is None:
            raise RuntimeError("use 'async with SyncEngine(config) as engine'")
        return await self._provider.check(self._builder(self._provider).fields)

    # -- the run ----------------------------------------------------------------------
    def _builder(self, provider: Provider) -> ContactBuilder:
        return ContactBuilder(
            mapping=self.config.mapping,
            schema=provider.schema,
            normaliser=Normaliser(default_region=self.config.sync.default_region),
            key=self.config.sync.key,
            key_field=self.config.sync.key_field,
            implicit_list_id=provider.synced_list_id,
        )

    async def _run(
        self,
        report: SyncReport,
        *,
        dry_run: bool,
        full: bool,
        allow_deletes: int | None,
        samples: int,
        session: RunSession | None,
    ) -> None:
        assert self._provider is not None
        provider = self._provider
        builder = self._builder(provider)
        with self._stage(report, "check"):
            for warning in await provider.check(builder.fields):
                report.warn(warning)
        plan: Plan | None
        if session is not None and session.resume is not None:
            plan = self._resumed_plan(session.resume, report, full=full)
        else:
            plan = await self._make_plan(
                report,
                builder,
                dry_run=dry_run,
                full=full,
                allow_deletes=allow_deletes,
                samples=samples,
                session=session,
            )
        if plan is None:
            return
        total = plan.batch_count(provider.limits.batch_rows)

        def on_batch(done: int) -> None:
            self._progress.update("batches", {"done": done, "total": total})

        with self._stage(report, "apply"):
            executor = Executor(
                provider,
                report,
                on_batch=on_batch,
                ledger=await session.ledger() if session is not None else None,
                drain_timeout=self.config.journal.drain_timeout,
            )
            self._executor = executor
            try:
                await executor.execute(plan)
            except FatalProviderError:
                sent = report.inserted + report.updated + report.removed + report.rejected
                report.message = f"stopped after {sent} of {report.plan.changes} changes"
                raise
            finally:
                self._executor = None

    def _resumed_plan(self, resume: ResumablePlan, report: SyncReport, *, full: bool) -> Plan:
        """The interrupted attempt's plan, with its counts, kept rows and problems."""
        report.plan = resume.summary
        report.kept = list(resume.kept)
        for warning in resume.warnings:
            report.warn(warning)
        report.problems.replay(resume.problems)
        return Plan(summary=report.plan, spool=resume.spool, full=full)

    async def _make_plan(
        self,
        report: SyncReport,
        builder: ContactBuilder,
        *,
        dry_run: bool,
        full: bool,
        allow_deletes: int | None,
        samples: int,
        session: RunSession | None,
    ) -> Plan | None:
        """Export, index and diff into a spooled plan; None for a dry run (report only)."""
        assert self._provider is not None
        assert self._work_dir is not None
        provider = self._provider
        settings = self.config.sync
        with self._stage(report, "export"):
            snapshot = await provider.snapshot(builder.fields)
        local = LocalContacts(self.source, self.config, builder, work_dir=self._work_dir)
        spool_path = session.plan_path() if session else self._work_dir / "plan.jsonl"
        rejects = session.rejects if session is not None else None
        old_values: RemoteSnapshot = snapshot
        if session is not None:
            report.problems.copy_to(session.problems_path())
        try:
            # Issue #7: a plain CSV file against the CSV export is planned column-wise when
            # both files allow it (the same plan as the rows give, proven by tests); the
            # mapping rules and duplicate rules of issue #6 need the rows.
            columnar = None
            if local.plain and self.config.source.duplicates == "first":
                columnar = await self._plan_columnar(
                    snapshot, builder, report, full, samples, spool_path
                )
            if columnar is not None:
                spool, removal_keys = columnar.spool, columnar.removal_keys
                sample_inserts, sample_updates = columnar.sample_inserts, columnar.sample_updates
                old_values = columnar.snapshot or snapshot
                if rejects is not None and rejects.remembered:
                    spool = self._hold_back_spooled(spool, report, rejects)
            else:
                differ = Differ(
                    fields=builder.fields,
                    additive=self._additive(builder),
                    full=full,
                    optional=local.optional_fields,
                )
                with self._stage(report, "index"):
                    await self._index_remote(snapshot, builder, differ, report)
                spool = PlanSpool(spool_path)
                sample_inserts = []
                sample_updates = []
                # closing(): a source that fails mid-way must not leave the spool file open.
                with self._stage(report, "plan"), closing(spool):
                    await self._plan_local(
                        local,
                        differ,
                        spool,
                        report,
                        sample_inserts,
                        sample_updates,
                        samples,
                        rejects,
                    )
                    removal_keys = self._plan_removals(builder, differ, spool, report, samples)
        finally:
            report.problems.copy_to(None)
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
            return None
        guard.check(report.plan, allow_deletes=allow_deletes)
        if session is not None:
            await session.planned(spool, report)
        return plan

    async def _plan_columnar(
        self,
        snapshot: RemoteSnapshot,
        builder: ContactBuilder,
        report: SyncReport,
        full: bool,
        samples: int,
        spool_path: Path,
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
            spool_path=spool_path,
            report=report,
        )

    def _hold_back_spooled(
        self, spool: PlanSpool, report: SyncReport, rejects: RejectFilter
    ) -> PlanSpool:
        """Apply the remembered rejects to a plan spooled in bulk (the columnar path).

        The row path holds rows back as it plans; here the finished spool is copied
        without them, so both paths hold back, report and count exactly the same rows.
        """
        kept = PlanSpool(spool.path.with_suffix(".held.jsonl"))
        with closing(kept):
            for change in spool.read():
                if change.kind is not ChangeKind.REMOVE:
                    contact = Contact(key=change.key, fields=change.fields, origin=change.origin)
                    if self._held_back(contact, rejects, report):
                        if change.kind is ChangeKind.INSERT:
                            report.plan.to_insert -= 1
                        else:
                            report.plan.to_update -= 1
                        continue
                kept.write(change)
        kept.path.replace(spool.path)
        return PlanSpool.existing(spool.path)

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
        local: LocalContacts,
        differ: Differ,
        spool: PlanSpool,
        report: SyncReport,
        sample_inserts: list[Contact],
        sample_updates: list[Contact],
        samples: int,
        rejects: RejectFilter | None = None,
    ) -> None:
        summary = report.plan
        mode = self.config.sync.mode
        async with aclosing(local.read()) as items:
            async for built in items:
                summary.local_rows += 1
                if isinstance(built, Duplicate):
                    summary.duplicates += 1
                    report.problems.add(built.problem())
                    continue
                if isinstance(built, RowProblem):
                    summary.invalid_local += 1
                    report.problems.add(_problem("local", built))
                    if built.key is not None:
                        differ.protect(built.key)
                    continue
                decision = differ.judge(built)
                verdict = decision.verdict
                if verdict is Verdict.DUPLICATE:
                    assert built.origin is not None
                    summary.duplicates += 1
                    kept = RowOrigin(built.origin.source, decision.first_line or 0)
                    report.problems.add(Duplicate(built.key, kept, built.origin, "first").problem())
                elif verdict is Verdict.UNCHANGED:
                    summary.unchanged += 1
                elif verdict is Verdict.KEPT:
                    summary.kept_by_consent += 1
                    if len(report.kept) < KEPT_CAP:
                        report.kept.append((built.key, decision.locked or "locked"))
                elif rejects is not None and self._held_back(built, rejects, report):
                    continue
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

    def _held_back(self, contact: Contact, rejects: RejectFilter, report: SyncReport) -> bool:
        """A row the provider rejected before, unchanged since: reported, not resent."""
        record = rejects.hold(contact.key, contact.fields)
        if record is None:
            return False
        report.plan.held_back += 1
        report.problems.add(
            Problem(
                stage="held",
                reason=f"rejected by the provider on run #{record.last_run} ({record.reason})"
                f" and unchanged since; held back ({record.held + 1} of"
                f" {rejects.retry_after} runs, then offered again)",
                key=contact.key,
                source=contact.origin.source if contact.origin else None,
                line=contact.origin.line if contact.origin else None,
                code=record.code,
            )
        )
        return True

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
        assert self._provider is not None
        return self._provider.additive(builder.fields)

    @contextmanager
    def _stage(self, report: SyncReport, name: str) -> Iterator[None]:
        self._progress.stage(name)
        log.info("stage", stage=name)
        started = time.perf_counter()
        try:
            yield
        finally:
            report.stages[name] = report.stages.get(name, 0.0) + time.perf_counter() - started


def _fail(report: SyncReport, error: SyncEngineError) -> None:
    """Set the outcome of a run that stopped on ``error`` (once, however it is reached)."""
    if report.outcome in (Outcome.FAILED, Outcome.REFUSED, Outcome.LOCKED):
        return
    if isinstance(error, RunLockedError):
        report.outcome = Outcome.LOCKED
    elif isinstance(error, RunRefusedError):
        report.outcome = Outcome.REFUSED
    else:
        report.outcome = Outcome.FAILED
    report.message = f"{error}; {report.message}" if report.message else str(error)


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
        return CsvSource(
            source.path, delimiter=source.delimiter, encoding=source.encoding, name=source.name
        )
    if isinstance(source, JsonlSourceConfig):
        return JsonlSource(source.path, encoding=source.encoding, name=source.name)
    if isinstance(source, SqliteSourceConfig):
        return SqliteSource(
            source.path,
            query=source.query,
            table=source.table,
            columns=source.columns,
            required=needed_columns(config),
            chunk_size=source.chunk_size,
            timeout=source.timeout,
            statement_timeout=source.statement_timeout,
            name=source.name,
        )
    assert isinstance(source, PostgresSourceConfig)
    return PostgresSource(
        source.dsn,
        query=source.query,
        table=source.table,
        columns=source.columns,
        required=needed_columns(config),
        chunk_size=source.chunk_size,
        connect_timeout=source.connect_timeout,
        statement_timeout=source.statement_timeout,
        name=source.name,
    )


def _as_source(source: Any) -> Source:
    if hasattr(source, "read") and hasattr(source, "name"):
        return source  # type: ignore[no-any-return]
    return IterableSource(source)
