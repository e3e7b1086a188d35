"""An Altcraft database as a sync target.

Apply is ``profiles/import_batch`` (synchronous, an upsert: safe to resend) or, with a
``trigger_id``, ``campaigns/triggers/import_and_start_batch_task`` (it sends a campaign,
so it is never resent: a lost answer is settled through ``tasks/status``, and a batch
with nothing to check is reported as an unknown outcome). Removals are
``profiles/delete``, one profile per call. The snapshot is ``profiles/get_all`` -> poll
``tasks/status`` -> stream each file of ``result.urls`` to disk; an export whose task
fails or stalls, whose link expires, whose download keeps breaking off or whose files
hold fewer rows than the task counted is requested afresh (a partial one is never diffed).

A plan batch whose encoded body would pass ``max_body_bytes`` is cut into several
requests here, not in the planner: the cut needs the exact wire bytes, which only the
provider knows, and one journal entry per plan batch keeps resume unchanged. The task
ids of a cut trigger batch are journaled together, one per part (see :func:`task_refs`).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson
import structlog

from sync_engine.clock import Clock, LoopClock
from sync_engine.config import SyncSettings
from sync_engine.errors import (
    BatchRejectedError,
    ExportError,
    FatalProviderError,
    ProviderError,
    RetriableProviderError,
)
from sync_engine.plan import Batch, BatchKind, Change
from sync_engine.providers.base import (
    BatchEvents,
    BatchOutcome,
    ProviderLimits,
    ProviderStats,
    RowOutcome,
    RowStatus,
)

from ._client import AltcraftClient, refused
from ._config import AltcraftConfig, matching_for
from ._schema import ALTCRAFT_SCHEMA
from ._snapshot import AltcraftSnapshot
from ._wire import Body, encode_profile, row_outcomes, split_body

__all__ = ["IMPORT_METHOD", "TRIGGER_METHOD", "AltcraftProvider", "task_refs"]

log = structlog.get_logger("sync_engine.altcraft")

IMPORT_METHOD = "profiles/import_batch"
TRIGGER_METHOD = "campaigns/triggers/import_and_start_batch_task"
DELETE_METHOD = "profiles/delete"
# A snapshot is requested afresh (a new task, new links) this many times at most.
EXPORT_ATTEMPTS = 3
_EXPORT_LOST = frozenset({"task_failed", "task_timeout", "link_expired", "export_short"})
# The files may hold this share fewer rows than the task counted (profiles deleted
# meanwhile); fewer still is a partial export.
EXPORT_SHORTFALL = 0.05
# Journal markers for the parts of a trigger batch that got no task id.
_REJECTED = "-"  # Altcraft refused the part: nothing was imported or sent
_UNKNOWN = "?"  # the answer was lost: the part may have been imported and triggered
_REFUSED = "0"  # refused before Altcraft acted (rate limit, retries spent): not applied


def task_refs(text: str | None) -> list[str]:
    """The per-part references journaled for a trigger batch (``task,-,?,task``)."""
    return text.split(",") if text else []


class AltcraftProvider:
    """An Altcraft database, used for one run."""

    schema = ALTCRAFT_SCHEMA

    def __init__(
        self,
        config: AltcraftConfig,
        *,
        session: aiohttp.ClientSession,
        work_dir: Path,
        sync: SyncSettings | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        on_progress: Callable[[str, Mapping[str, Any]], None] | None = None,
    ) -> None:
        sync = sync or SyncSettings()
        self.config = config
        self.name: str = config.kind
        self.limits = ProviderLimits(batch_rows=config.batch_size, concurrency=config.concurrency)
        self.stats = ProviderStats()
        self.matching = matching_for(config, sync)
        self._key_kind = sync.key
        self._key_field = sync.key_field
        self._work_dir = work_dir
        self._client = AltcraftClient(
            config,
            session=session,
            clock=clock or LoopClock(),
            rng=rng or random.Random(),  # noqa: S311 - jitter, not cryptography
            stats=self.stats,
            on_progress=on_progress or (lambda stage, info: None),
        )

    async def aclose(self) -> None:
        """Nothing to release: the session belongs to the engine."""

    @property
    def synced_list_id(self) -> int | None:
        """Altcraft has no list ids in profile fields: the database is the scope."""
        return None

    def additive(self, fields: Sequence[str]) -> frozenset[str]:
        """Every synced field is replaced as a whole."""
        return frozenset()

    async def check(self, fields: Sequence[str]) -> list[str]:
        """Config-level warnings; the token itself is proven by the export, before any change.

        Altcraft documents no cheap "who am I" call, and the export call runs first in every
        run, so a bad token still stops the run before anything is written.
        """
        return self.config.warnings()

    # -- snapshot -------------------------------------------------------------------
    async def snapshot(self, fields: Sequence[str]) -> AltcraftSnapshot:
        """Export the synced database (or segment) to local files, complete or not at all."""
        for attempt in range(1, EXPORT_ATTEMPTS + 1):
            paths: list[Path] = []
            try:
                return await self._export_once(fields, paths)
            except (ExportError, RetriableProviderError) as error:
                for path in paths:
                    path.unlink(missing_ok=True)  # never let a partial file be read
                lost = isinstance(error, RetriableProviderError) or error.code in _EXPORT_LOST
                if not lost:
                    raise
                if attempt == EXPORT_ATTEMPTS:
                    raise ExportError(
                        f"no complete export after {EXPORT_ATTEMPTS} attempts; last: {error}",
                        code=error.code,
                    ) from None
                self.stats.count_retry("export")
                log.warning("export lost; requesting a new one", attempt=attempt, error=str(error))
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _export_once(self, fields: Sequence[str], paths: list[Path]) -> AltcraftSnapshot:
        """One export task, start to files (appended to ``paths`` as they are written)."""
        config = self.config
        source = ("segment", config.segment_id) if config.segment_id else ("database", config.db_id)
        answer = await self._client.post(
            "profiles/get_all",
            _json(
                self._client.envelope(
                    {
                        "source_type": source[0],
                        "source_id": source[1],
                        "file_format": config.export_format,
                    }
                )
            ),
            rejected=ExportError,
        )
        data = answer.get("data")
        task_id = (data if isinstance(data, dict) else answer).get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise ExportError("profiles/get_all: the answer has no task_id")
        done = await self._client.wait_task(task_id, what="export", error=ExportError)
        result = done.get("result")
        urls = result.get("urls") if isinstance(result, dict) else None
        if not isinstance(urls, list) or not all(isinstance(u, str) and u for u in urls):
            raise ExportError(f"export task {task_id} completed without result.urls")
        for number, link in enumerate(urls):
            path = self._work_dir / f"altcraft-export-{uuid.uuid4().hex}-{number}"
            paths.append(path)
            size = await self._client.download(link, path)
            log.info("export downloaded", file=number + 1, of=len(urls), bytes=size)
        snapshot = AltcraftSnapshot(paths, fields=fields, resource_id=config.resource_id)
        total = result.get("total") if isinstance(result, dict) else None
        if isinstance(total, int) and not isinstance(total, bool) and total > 0:
            rows = await anyio.to_thread.run_sync(snapshot.count_rows)
            if rows < total * (1 - EXPORT_SHORTFALL):
                raise ExportError(
                    f"export task {task_id} counted {total} profiles but its files hold {rows}:"
                    " a partial export is never diffed",
                    code="export_short",
                )
        return snapshot

    # -- apply ----------------------------------------------------------------------
    def resend_is_safe(self, batch: Batch) -> bool:
        """Imports and deletes are idempotent; import-and-trigger sends a campaign."""
        return batch.kind is BatchKind.REMOVE or self.config.trigger_id is None

    def _envelope(self) -> dict[str, object]:
        config = self.config
        params: dict[str, object] = {"db_id": config.db_id, "matching": self.matching}
        if self._key_field is not None:
            params["field_name"] = self._key_field
        if config.resource_id is not None:
            params["resource_id"] = config.resource_id
        for flag in ("skip_triggers", "skip_invalid_subscriptions", "detect_geo"):
            if getattr(config, flag):
                params[flag] = True
        if config.trigger_id is not None:
            params["trigger_id"] = config.trigger_id
            extras = {
                "timeout": config.trigger_timeout,
                "content": config.trigger_content,
                "custom_data": config.trigger_custom_data,
            }
            params.update({k: v for k, v in extras.items() if v is not None})
        return self._client.envelope(params)

    def _bodies(self, batch: Batch) -> tuple[list[Body], list[RowOutcome]]:
        """The batch as request bodies within the size limit, and the rows too big to send."""
        config = self.config
        profiles = [
            encode_profile(
                change.fields,
                resource_id=config.resource_id,
                subscribe=config.subscribe,
                wrap=config.trigger_id is not None,
            )
            for change in batch.changes
        ]
        bodies, oversize = split_body(self._envelope(), profiles, limit=config.max_body_bytes)
        too_large = [
            RowOutcome(
                index,
                RowStatus.REJECTED,
                "too_large",
                f"the profile alone encodes to more than max_body_bytes"
                f" ({config.max_body_bytes} bytes)",
            )
            for index in oversize
        ]
        return bodies, too_large

    async def apply(self, batch: Batch, events: BatchEvents | None = None) -> BatchOutcome:
        """Send one plan batch: one request, or several when its body would pass the limit."""
        if batch.kind is BatchKind.REMOVE:
            if events is not None:
                await events.sent()
            return await self._delete(batch)
        bodies, rows = self._bodies(batch)
        if len(bodies) > 1:
            log.info("batch split by body size", batch=batch.number, requests=len(bodies))
        if events is not None:
            await events.sent()
        if self.config.trigger_id is None:
            return await self._import(bodies, rows)
        return await self._import_and_trigger(bodies, rows, events)

    async def _import(self, bodies: list[Body], rows: list[RowOutcome]) -> BatchOutcome:
        warnings: list[str] = []
        for body in bodies:
            try:
                answer = await self._client.post(IMPORT_METHOD, body.payload)
            except BatchRejectedError as error:
                rows += _all_rows(body, RowStatus.REJECTED, error)
                continue
            except RetriableProviderError as error:
                rows += _all_rows(body, RowStatus.TRANSIENT, error)
                continue
            outcomes, notes = row_outcomes(answer.get("result"), body.rows)
            rows += outcomes
            warnings += notes
        return _outcome(rows, warnings, bodies)

    async def _import_and_trigger(
        self, bodies: list[Body], rows: list[RowOutcome], events: BatchEvents | None
    ) -> BatchOutcome:
        """Start one task per body, journaling each reference before the next body leaves."""
        refs: list[str] = []
        for body in bodies:
            try:
                answer = await self._client.post(TRIGGER_METHOD, body.payload, once=True)
            except BatchRejectedError as error:
                refs.append(_REJECTED)
                rows += _all_rows(body, RowStatus.REJECTED, error)
            except RetriableProviderError as error:
                if refused(error):
                    refs.append(_REFUSED)
                    rows += _all_rows(body, RowStatus.TRANSIENT, error)
                else:
                    refs.append(_UNKNOWN)
                    rows += _unknown(body, f"the answer was lost ({error}); not resent")
            else:
                task_id = answer.get("task_id")
                if not isinstance(task_id, str) or not task_id or "," in task_id:
                    refs.append(_UNKNOWN)
                    rows += _unknown(body, "Altcraft answered without a usable task_id")
                else:
                    refs.append(task_id)
            if events is not None:
                await events.task(",".join(refs))
        warnings: list[str] = []
        for body, ref in zip(bodies, refs, strict=True):
            if ref not in (_REJECTED, _UNKNOWN, _REFUSED):
                outcomes, notes = await self._task_outcome(body, ref)
                rows += outcomes
                warnings += notes
        return _outcome(rows, warnings, bodies)

    async def _task_outcome(self, body: Body, task_id: str) -> tuple[list[RowOutcome], list[str]]:
        """Per-row results of a finished import-and-trigger task."""
        try:
            data = await self._client.wait_task(task_id, what="trigger")
        except FatalProviderError:
            raise
        except ProviderError as error:
            return _unknown(body, f"task {task_id} could not be read: {error}"), []
        result = data.get("result")
        if not isinstance(result, dict):
            return [], [f"trigger task {task_id} completed without a result"]
        code = result.get("error")
        if code not in (0, None, "0", ""):
            text = str(result.get("error_text") or "task failed")
            return _all_rows(
                body, RowStatus.REJECTED, ProviderError(text, code=f"altcraft_{code}")
            ), []
        return row_outcomes(result.get("result"), body.rows)

    async def settle(self, batch: Batch, task_id: str | None) -> BatchOutcome | None:
        """A trigger batch from an earlier attempt, told from its journaled task ids.

        Parts with a task id are read from ``tasks/status`` (never resent); the part that
        was in flight when the run stopped is unknown, and parts after it were never sent.
        Without any task id nothing can be told: None (reported unknown, not resent).
        """
        refs = task_refs(task_id)
        if batch.kind is BatchKind.REMOVE or not refs:
            return None
        bodies, rows = self._bodies(batch)
        warnings: list[str] = []
        for number, body in enumerate(bodies):
            ref = refs[number] if number < len(refs) else None
            if ref is None and number == len(refs):
                rows += _unknown(body, "the run stopped while this part was being sent")
            elif ref is None:
                rows += [
                    RowOutcome(
                        i, RowStatus.TRANSIENT, "not_sent", "the run stopped before this part"
                    )
                    for i in body.rows
                ]
            elif ref == _REJECTED:
                rows += [
                    RowOutcome(i, RowStatus.REJECTED, "rejected", "rejected by Altcraft")
                    for i in body.rows
                ]
            elif ref == _REFUSED:
                rows += [
                    RowOutcome(
                        i, RowStatus.TRANSIENT, "refused", "refused by Altcraft; not applied"
                    )
                    for i in body.rows
                ]
            elif ref == _UNKNOWN:
                rows += _unknown(body, "the answer was lost; not resent")
            else:
                outcomes, notes = await self._task_outcome(body, ref)
                rows += outcomes
                warnings += notes
        log.info("settled a batch through tasks/status", batch=batch.number, tasks=len(refs))
        return _outcome(rows, warnings, bodies)

    # -- removals -------------------------------------------------------------------
    def _identity(self, change: Change) -> dict[str, object]:
        """The matching parameters of profiles/delete for one contact."""
        key = change.key
        if self._key_field is not None:
            return {"matching": "custom", "field_name": self._key_field, "field_value": key}
        if self._key_kind == "email" or (self._key_kind == "email_or_phone" and "@" in key):
            return {"matching": "email", "email": key}
        return {"matching": "phone", "phone": key}

    async def _delete(self, batch: Batch) -> BatchOutcome:
        """One profiles/delete per contact, ``concurrency`` at a time under the rate limit."""
        rows: list[RowOutcome] = []
        fatal: list[FatalProviderError] = []
        slots = anyio.CapacityLimiter(self.config.concurrency)

        async def delete(index: int, change: Change, scope: anyio.CancelScope) -> None:
            params = {"db_id": self.config.db_id, **self._identity(change)}
            async with slots:
                try:
                    await self._client.call(DELETE_METHOD, params)
                except FatalProviderError as error:
                    fatal.append(error)
                    scope.cancel()
                except BatchRejectedError as error:
                    if error.code == "altcraft_404" or "not found" in str(error).lower():
                        return  # already gone: what a removal wants
                    rows.append(RowOutcome(index, RowStatus.REJECTED, error.code or "", str(error)))
                except ProviderError as error:
                    rows.append(
                        RowOutcome(index, RowStatus.TRANSIENT, error.code or "", str(error))
                    )

        async with anyio.create_task_group() as group:
            for index, change in enumerate(batch.changes):
                group.start_soon(delete, index, change, group.cancel_scope)
        if fatal:
            raise fatal[0]
        return BatchOutcome(rows=tuple(sorted(rows, key=lambda r: r.index)))


def _json(params: Mapping[str, object]) -> bytes:
    return orjson.dumps(params)


def _all_rows(body: Body, status: RowStatus, error: ProviderError) -> list[RowOutcome]:
    return [RowOutcome(i, status, error.code or "", str(error)) for i in body.rows]


def _unknown(body: Body, reason: str) -> list[RowOutcome]:
    return [RowOutcome(i, RowStatus.TRANSIENT, "unknown_outcome", reason) for i in body.rows]


def _outcome(rows: list[RowOutcome], warnings: list[str], bodies: list[Body]) -> BatchOutcome:
    return BatchOutcome(
        rows=tuple(sorted(rows, key=lambda r: r.index)),
        warnings=tuple(dict.fromkeys(warnings)),
        counters={"requests": len(bodies)},
    )
