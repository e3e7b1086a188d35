"""UniSender and Selzy: one API on two hosts.

Apply is ``importContacts`` (an idempotent upsert by email/phone, up to 500 rows a
call); the remote snapshot is ``async/exportContacts`` -> poll ``async/getTaskResult`` ->
stream ``file_to_download`` to disk -> parse row by row.
"""

from __future__ import annotations

import csv
import random
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
import structlog

from sync_engine.clock import Clock, LoopClock
from sync_engine.config import SyncConfig, UniSenderConfig, check_unisender, parse_unisender
from sync_engine.contact import RemoteRecord
from sync_engine.errors import (
    ConfigError,
    ExportError,
    FatalProviderError,
    ProviderError,
    RetriableProviderError,
)
from sync_engine.normalise import FieldValue
from sync_engine.plan import Batch, BatchKind
from sync_engine.ratelimit import AdaptiveLimiter, CompositeLimiter, RateLimiter
from sync_engine.records import RowProblem, SourceRow
from sync_engine.retry import RetryPolicy, call_with_retries, default_is_retriable, logged_retry
from sync_engine.schema import FieldKind, FieldSchema
from sync_engine.sources._threaded import iterate_in_thread
from sync_engine.tabular import sniff_delimiter

from . import _http
from ._unisender_wire import encode_form, import_pairs, parse_answer, parse_import_result
from .base import BatchEvents, BatchOutcome, ProviderLimits, ProviderStats
from .export_file import iter_export_rows
from .registry import ProviderContext, ProviderSpec

__all__ = ["LOCKED_EMAIL_STATUSES", "SPEC", "UNISENDER_SCHEMA", "UniSenderProvider"]

log = structlog.get_logger("sync_engine.unisender")

# Fields the sync may write. Everything else UniSender calls a system field belongs to
# the provider: statuses and unsubscriptions are consent, times and IPs are its records.
UNISENDER_SCHEMA = FieldSchema(
    system={
        "email": FieldKind.EMAIL,
        "phone": FieldKind.PHONE,
        "tags": FieldKind.TAGS,
        "email_list_ids": FieldKind.IDS,
        "phone_list_ids": FieldKind.IDS,
        "email_unsubscribed_list_ids": FieldKind.IDS,
        "email_excluded_list_ids": FieldKind.IDS,
    },
    reserved=frozenset(
        {
            "id",
            "delete",
            "email_status",
            "email_availability",
            "email_add_time",
            "email_request_ip",
            "email_confirm_time",
            "email_confirm_ip",
            "email_subscribe_times",
            "email_unsubscribed_list_ids",
            "email_excluded_list_ids",
            "phone_status",
            "phone_availability",
            "phone_add_time",
            "phone_request_ip",
            "phone_subscribe_times",
            "phone_unsubscribed_list_ids",
            "phone_excluded_list_ids",
        }
    ),
)

# An import cannot change these statuses, and a sync must not try: the contact (or the
# provider's staff) decided, and the local system should learn of it instead.
LOCKED_EMAIL_STATUSES = frozenset({"unsubscribed", "blocked", "activation_requested"})
LOCKED_PHONE_STATUSES = frozenset({"unsubscribed", "blocked"})
# What _lock_reason reads: these export columns by value, and "email" only for whether it
# is blank. The columnar planner relies on it to decide once per distinct combination
# (a test checks the declaration against the function).
LOCK_COLUMNS = ("email_status", "phone_status", "email_unsubscribed_list_ids")
LOCK_PRESENCE = ("email",)
_WAITING_STATUSES = frozenset({"new", "processing", "queued"})
# The provider counts calls as they arrive; this much slack per window absorbs the
# jitter between a call's start here and its arrival there (see RateLimiter), but at
# most 1/40 of the window, 2.5% of the rate (against 1200 per minute: 0.17%). A server
# busy with earlier batches dates a call tens of ms late: against the emulator at 20
# calls/s on 2 cores, 25 ms let 1-3 calls in 400 be refused (each costing seconds, as
# the pace then halves), 100 ms none.
ARRIVAL_MARGIN = 0.1
# A snapshot is re-requested from scratch (a new task, a new link) this many times at
# most when a task fails or stalls, its link expires or its download keeps breaking off.
EXPORT_ATTEMPTS = 3
_EXPORT_LOST = frozenset(
    {"export_failed", "export_stalled", "link_expired", "download_failed", "export_short"}
)
# An export may hold this share fewer rows than the provider counted a moment before
# (other systems change the list meanwhile); fewer still is a partial export.
EXPORT_SHORTFALL = 0.05
RATE_LIMIT_PATIENCE = 20  # rate-limit refusals of one attempt, resent at the learnt pace
# Answers that mean "too fast": they slow the adaptive limiter down.
RATE_LIMIT_CODES = frozenset(
    {"api_call_limit_exceeded_for_api_key", "api_call_limit_exceeded_for_ip", "http_429"}
)


class UniSenderProvider:
    """A UniSender or Selzy account, used for one run."""

    schema = UNISENDER_SCHEMA

    def __init__(
        self,
        config: UniSenderConfig,
        *,
        session: aiohttp.ClientSession,
        work_dir: Path,
        key: str = "email",
        removal: str = "exclude",
        clock: Clock | None = None,
        rng: random.Random | None = None,
        on_progress: Callable[[str, Mapping[str, Any]], None] | None = None,
    ) -> None:
        self.config = config
        self.name: str = config.kind
        self.limits = ProviderLimits(batch_rows=config.batch_size, concurrency=config.concurrency)
        self.stats = ProviderStats()
        self._session = session
        self._work_dir = work_dir
        self._key = key
        self._removal = removal
        self._clock = clock or LoopClock()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._scrub = _http.Scrubber([config.api_key.reveal()])
        margin = min(ARRIVAL_MARGIN, config.rate_period / 40)
        self._api_limiter = RateLimiter(
            config.rate_limit, config.rate_period, margin=margin, clock=self._clock, name="api"
        )
        export_limiter = RateLimiter(
            config.export_rate_limit,
            config.rate_period,
            margin=margin,
            clock=self._clock,
            name="export",
        )
        # Both slots are taken at one instant, so neither window is overrun while the
        # other is awaited.
        self._export_limiter = CompositeLimiter(export_limiter, self._api_limiter, name="export")
        # In front of both: learns the account's real limit when the configured one is
        # wrong (or another client shares the key) instead of retrying into a storm.
        self._adaptive = AdaptiveLimiter(
            config.rate_limit / config.rate_period, clock=self._clock, name="api"
        )
        self._retry = RetryPolicy(max_attempts=config.max_attempts)
        self._on_progress = on_progress or (lambda stage, info: None)

    async def aclose(self) -> None:
        """Nothing to release: the session belongs to the engine."""

    @property
    def synced_list_id(self) -> int | None:
        return self.config.list_id

    def additive(self, fields: Sequence[str]) -> frozenset[str]:
        """Tags and list ids are added to, unless the config says to overwrite them."""
        additive = set()
        for name in fields:
            kind = self.schema.kind(name)
            if (kind is FieldKind.TAGS and not self.config.overwrite_tags) or (
                kind is FieldKind.IDS and not self.config.overwrite_lists
            ):
                additive.add(name)
        return frozenset(additive)

    # -- calls ------------------------------------------------------------------------
    def _url(self, method: str) -> str:
        return f"{self.config.base_url}/{self.config.lang}/api/{method}?format=json"

    async def call(
        self,
        method: str,
        params: Sequence[tuple[str, str]],
        *,
        limiter: RateLimiter | CompositeLimiter | None = None,
        rejected_error: type[ProviderError] | None = None,
    ) -> tuple[Any, list[str]]:
        """One API method with rate limiting and retries; returns (result, warnings)."""
        body = encode_form(
            [
                *params,
                ("api_key", self.config.api_key.reveal()),
                ("platform", self.config.platform),
            ]
        )
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        extra = {"rejected_error": rejected_error} if rejected_error else {}

        async def attempt() -> tuple[Any, list[str]]:
            # A rate-limit refusal means the call was not executed and the limiter has
            # slowed down: resend at the new pace without spending the retry budget,
            # up to RATE_LIMIT_PATIENCE times, so a wrong configured limit still finishes.
            refusals = 0
            while True:
                await self._adaptive.acquire()
                await (limiter if limiter is not None else self._api_limiter).acquire()
                self.stats.count_call(method)
                try:
                    answer = await exchange()
                except RetriableProviderError as error:
                    if error.code not in RATE_LIMIT_CODES:
                        raise
                    self._adaptive.rate_limited(error.retry_after)
                    self.stats.rates.update(self._adaptive.summary())
                    refusals += 1
                    if refusals >= RATE_LIMIT_PATIENCE:
                        raise
                    self.stats.count_retry(method)
                    continue
                self._adaptive.ok()
                self.stats.rates.update(self._adaptive.summary())
                return answer

        async def exchange() -> tuple[Any, list[str]]:
            response = await _http.request(
                self._session,
                "POST",
                self._url(method),
                data=body,
                headers=headers,
                timeout=self.config.timeout,
                scrub=self._scrub,
            )
            if response.status != 200:
                # 5xx and 429 were raised as retriable already; any other status means a
                # wrong base_url or path, which no retry will fix.
                raise FatalProviderError(
                    f"{method}: HTTP {response.status} from"
                    f" {_http.redact_url(self._url(method))}; check [provider] base_url",
                    code=f"http_{response.status}",
                )
            return parse_answer(
                response.body,
                method=method,
                retry_after=_http.retry_after_seconds(response.headers),
                scrub=self._scrub,
                **extra,
            )

        on_retry = logged_retry(method, count=self.stats.count_retry, logger=log)
        return await call_with_retries(
            attempt,
            policy=self._retry,
            is_retriable=default_is_retriable,
            clock=self._clock,
            rng=self._rng,
            on_retry=on_retry,
        )

    # -- pre-flight -----------------------------------------------------------------
    async def check(self, fields: Sequence[str]) -> list[str]:
        """Verify the key, the synced list and every user field before any change."""
        warnings: list[str] = []
        if self.config.list_id is not None:
            lists, _ = await self.call("getLists", [])
            ids = {str(item.get("id")) for item in lists or [] if isinstance(item, dict)}
            if str(self.config.list_id) not in ids:
                raise ConfigError(
                    f"[provider] list_id = {self.config.list_id}: no such list in the account"
                    f" (lists: {', '.join(sorted(ids)) or 'none'})"
                )
        user_fields = [f for f in fields if f not in self.schema.system]
        if user_fields:
            known, _ = await self.call("getFields", [])
            names = {str(item.get("name")) for item in known or [] if isinstance(item, dict)}
            missing = [f for f in user_fields if f not in names]
            if missing:
                raise ConfigError(
                    f"[mapping] {missing[0]}: no such user field in the account; create it"
                    f" (createField) or fix the mapping (fields: {', '.join(sorted(names))})"
                )
        return warnings

    # -- snapshot -------------------------------------------------------------------
    def export_fields(self, fields: Sequence[str]) -> list[str]:
        """The synced fields plus what consent decisions need."""
        wanted = list(fields)
        extra = []
        if "email" in wanted:
            extra += ["email_status", "email_unsubscribed_list_ids"]
        if "phone" in wanted:
            extra += ["phone_status"]
        return wanted + [f for f in extra if f not in wanted]

    async def snapshot(self, fields: Sequence[str]) -> ExportSnapshot:
        """Export the synced list (or the whole base) to a local file."""
        export_fields = self.export_fields(fields)
        params = [("field_names[]", name) for name in export_fields]
        if self.config.list_id is not None:
            params.append(("list_id", str(self.config.list_id)))
        path = self._work_dir / f"export-{uuid.uuid4().hex}.csv"
        for attempt in range(1, EXPORT_ATTEMPTS + 1):
            try:
                size = await self._export_once(params, path)
                break
            except (ExportError, RetriableProviderError) as error:
                if error.code not in _EXPORT_LOST:
                    raise
                path.unlink(missing_ok=True)  # never let a partial file be read
                if attempt == EXPORT_ATTEMPTS:
                    raise ExportError(
                        f"no complete export after {EXPORT_ATTEMPTS} attempts; last: {error}",
                        code=error.code,
                    ) from None
                self.stats.count_retry("export")
                log.warning("export lost; requesting a new one", attempt=attempt, error=str(error))
        log.info("export downloaded", bytes=size)
        return ExportSnapshot(
            path,
            fields=export_fields,
            lock=self._lock_reason,
            lock_columns=LOCK_COLUMNS,
            lock_presence=LOCK_PRESENCE,
        )

    async def _export_once(self, params: list[tuple[str, str]], path: Path) -> int:
        """One export task, start to file; a lost task or file raises with an _EXPORT_LOST code."""
        expected = await self._contact_count()
        url = await self._wait_for_export(params)
        shape = _FileShape()
        try:
            size = await self._download(url, path, shape)
        except RetriableProviderError as error:
            # The download's own retries are spent: the link may be bad, not the network.
            raise RetriableProviderError(str(error), code="download_failed") from None
        fields = [value for name, value in params if name == "field_names[]"]
        rows = shape.rows_at_most(fields[0] if fields else "")
        if expected and rows is not None and rows < expected * (1 - EXPORT_SHORTFALL):
            raise ExportError(
                f"the export holds at most {rows} rows, but the provider counted {expected}"
                f" contacts in list {self.config.list_id}: a partial export is never diffed",
                code="export_short",
            )
        return size

    async def _contact_count(self) -> int | None:
        """The provider's own count of the synced list, to check the export by; None: unknown.

        Only a check: an account without the method, or an answer that makes no sense,
        leaves the export unchecked (and says so) rather than failing the run.
        """
        if self.config.list_id is None:
            return None
        try:
            result, _ = await self.call("getContactCount", [("list_id", str(self.config.list_id))])
        except FatalProviderError as error:
            if error.code != "unknown_method":
                raise
            result = None
        except ProviderError as error:
            log.warning("no contact count; the export is not checked by it", error=str(error))
            return None
        count = result.get("count") if isinstance(result, dict) else None
        if isinstance(count, int | str) and str(count).isdigit():
            return int(count)
        log.warning("no contact count; the export is not checked by it", answer=repr(result)[:80])
        return None

    async def _wait_for_export(self, params: list[tuple[str, str]]) -> str:
        result, _ = await self.call(
            "async/exportContacts",
            params,
            limiter=self._export_limiter,
            rejected_error=ExportError,
        )
        task = str(result.get("task_uuid", "")) if isinstance(result, dict) else ""
        if not task:
            raise ExportError("async/exportContacts: the answer has no task_uuid")
        started = self._clock.now()
        delay = self.config.export_poll_interval
        status = str(result.get("status", "new"))
        while True:
            self._on_progress("export", {"status": status, "waited": self._clock.now() - started})
            waited = self._clock.now() - started
            if waited + delay > self.config.export_timeout:
                raise ExportError(
                    f"export task {task} not completed after {waited:.0f} s"
                    f" (status {status!r}); [provider] export_timeout ="
                    f" {self.config.export_timeout:g}",
                    code="export_stalled",
                )
            await self._clock.sleep(delay)
            delay = min(delay * 1.5, self.config.export_poll_max)
            answer, _ = await self.call(
                "async/getTaskResult", [("task_uuid", task)], rejected_error=ExportError
            )
            if not isinstance(answer, dict):
                raise ExportError("async/getTaskResult: result is not an object")
            status = str(answer.get("status", ""))
            if status == "completed":
                link = answer.get("file_to_download")
                if not isinstance(link, str) or not link:
                    raise ExportError(f"export task {task} completed without file_to_download")
                return urljoin(self.config.base_url + "/", link)
            if status not in _WAITING_STATUSES:
                raise ExportError(
                    f"export task {task} reported status {status!r}"
                    " (expected new, processing or completed)",
                    code="export_failed",
                )

    async def _download(self, url: str, path: Path, shape: _FileShape) -> int:
        on_retry = logged_retry("download", count=self.stats.count_retry, logger=log)

        received = 0

        def on_bytes(count: int) -> None:
            nonlocal received
            received += count
            self._on_progress("download", {"bytes": received})

        async def attempt() -> int:
            nonlocal received
            received = 0
            shape.reset()
            self.stats.count_call("download")
            return await _http.download(
                self._session,
                url,
                path,
                timeout=self.config.timeout,
                scrub=self._scrub,
                on_bytes=on_bytes,
                on_chunk=shape,
            )

        return await call_with_retries(
            attempt,
            policy=self._retry,
            is_retriable=default_is_retriable,
            clock=self._clock,
            rng=self._rng,
            on_retry=on_retry,
        )

    def _lock_reason(self, values: Mapping[str, object]) -> str | None:
        """Why the provider owns this contact, judged on the sync key's channel."""
        email_status = str(values.get("email_status") or "").strip().lower()
        phone_status = str(values.get("phone_status") or "").strip().lower()
        has_email = bool(str(values.get("email") or "").strip())
        use_email = self._key == "email" or (self._key == "email_or_phone" and has_email)
        if use_email:
            if email_status in LOCKED_EMAIL_STATUSES:
                return f"email_status={email_status}"
            list_id = self.config.list_id
            unsubscribed = str(values.get("email_unsubscribed_list_ids") or "")
            if list_id is not None and str(list_id) in {
                part.strip() for part in unsubscribed.split(",")
            }:
                return f"unsubscribed from list {list_id}"
            return None
        if phone_status in LOCKED_PHONE_STATUSES:
            return f"phone_status={phone_status}"
        return None

    # -- apply ----------------------------------------------------------------------
    def resend_is_safe(self, batch: Batch) -> bool:
        """importContacts is an upsert (or a removal) by key: sending it twice is harmless."""
        return True

    async def settle(self, batch: Batch, task_id: str | None) -> BatchOutcome | None:
        """Never needed (every batch is safe to resend); importContacts has no task id."""
        return None

    async def apply(self, batch: Batch, events: BatchEvents | None = None) -> BatchOutcome:
        """One importContacts call for the batch (an idempotent upsert: safe to resend)."""
        field_names, rows = self._encode(batch)
        if events is not None:
            await events.sent()
        options = {"overwrite_tags": "0", "overwrite_lists": "0"}
        if batch.kind is BatchKind.UPSERT:
            options = {
                "overwrite_tags": "1" if self.config.overwrite_tags else "0",
                "overwrite_lists": "1" if self.config.overwrite_lists else "0",
            }
        result, warnings = await self.call(
            "importContacts", import_pairs(field_names, rows, options)
        )
        return parse_import_result(result, warnings, len(rows))

    def _encode(self, batch: Batch) -> tuple[list[str], list[list[str]]]:
        if batch.kind is BatchKind.UPSERT:
            field_names = list(batch.changes[0].fields)
            for change in batch.changes[1:]:
                for name in change.fields:
                    if name not in field_names:
                        field_names.append(name)
            rows = [
                [_cell(change.fields.get(name, "")) for name in field_names]
                for change in batch.changes
            ]
            return field_names, rows
        identity = ["email", "phone"] if self._key == "email_or_phone" else [self._key]
        if self._removal == "delete":
            field_names = [*identity, "delete"]
            rows = [[*_identity_cells(c.key, identity), "1"] for c in batch.changes]
            return field_names, rows
        list_id = str(self.config.list_id)
        field_names = [*identity, *(f"{channel}_excluded_list_ids" for channel in identity)]
        rows = []
        for change in batch.changes:
            cells = _identity_cells(change.key, identity)
            rows.append([*cells, *(list_id if cell else "" for cell in cells)])
        return field_names, rows


class _FileShape:
    """Counts an export's lines as it downloads, for an upper bound on its rows.

    Quoted line breaks and a header only add lines, and a UTF-16/32 text only adds stray
    0x0A bytes, so the line count never undercounts the rows: an export with fewer lines
    than the provider's count is short. Compressed files are left to their own checksums.
    """

    _HEAD = 65536

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.lines = 0
        self.head = b""
        self.last = b""

    def __call__(self, chunk: bytes) -> None:
        if len(self.head) < self._HEAD:
            self.head += chunk[: self._HEAD - len(self.head)]
        self.lines += chunk.count(b"\n")
        if chunk:
            self.last = chunk[-1:]

    def rows_at_most(self, first_field: str) -> int | None:
        """At most this many data rows; None for a compressed file (not counted)."""
        if self.head.startswith((b"\x1f\x8b", b"PK", b"BZh")):
            return None
        lines = self.lines + (1 if self.last not in (b"", b"\n") else 0)
        first = self.head.split(b"\n", 1)[0].decode("utf-8-sig", "replace").strip()
        cells = next(csv.reader([first], delimiter=sniff_delimiter(first)), [])
        has_header = first_field.lower() in {cell.strip().lower() for cell in cells}
        return max(0, lines - 1) if has_header else lines


def _identity_cells(key: str, identity: Sequence[str]) -> list[str]:
    is_email = "@" in key
    return [key if (name == "email") == is_email else "" for name in identity]


def _cell(value: FieldValue) -> str:
    if isinstance(value, frozenset):
        return ",".join(sorted(value, key=_natural))
    return value


def _natural(text: str) -> tuple[int, str]:
    return (int(text), "") if text.isdigit() else (0, text)


class ExportSnapshot:
    """A downloaded export file, parsed lazily and re-readable (for dry-run samples)."""

    def __init__(
        self,
        path: Path,
        *,
        fields: Sequence[str],
        lock: Callable[[Mapping[str, object]], str | None],
        lock_columns: Sequence[str] | None = None,
        lock_presence: Sequence[str] = (),
    ) -> None:
        self.path = path
        self.fields = list(fields)
        self.lock = lock
        # What ``lock`` reads (columns by value, ``lock_presence`` only for blankness);
        # None: unknown, and the columnar planner leaves this snapshot to the row path.
        self.lock_columns = lock_columns
        self.lock_presence = lock_presence

    async def records(self) -> AsyncIterator[RemoteRecord | RowProblem]:
        lowered = [(name, name.lower()) for name in self.fields]
        async for item in iterate_in_thread(
            lambda: iter_export_rows(self.path, expected_fields=self.fields)
        ):
            if isinstance(item, SourceRow):
                raw = item.values
                values = {name: raw.get(low) for name, low in lowered}
                yield RemoteRecord(item.origin, values, self.lock(values))
            else:
                yield item


def _open(config: SyncConfig, context: ProviderContext) -> UniSenderProvider:
    assert isinstance(config.provider, UniSenderConfig)
    return UniSenderProvider(
        config.provider,
        session=context.session,
        work_dir=context.work_dir,
        key=config.sync.key,
        removal=config.sync.removal,
        clock=context.clock,
        rng=context.rng,
        on_progress=context.on_progress,
    )


SPEC = ProviderSpec(
    schema=UNISENDER_SCHEMA,
    parse_config=parse_unisender,
    validate=check_unisender,
    open=_open,
)
