"""eSputnik and Yespo: one API (v1) on two hosts.

Apply is ``POST /api/v1/contacts`` (up to 3000 contacts; an asynchronous import whose
``asyncSessionId`` is polled at ``GET /api/v1/importstatus/{id}`` until FINISHED or
ERROR). The session ids go to the journal as the batch's task id, so a run stopped while
a session is still importing settles it on the next run instead of sending it again.
The snapshot is a paged search (see :mod:`._esputnik_read`); removal leaves the synced
group, or deletes contacts one call each when ``[sync] removal = "delete"``.
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import anyio
import orjson
import structlog

from sync_engine.clock import Clock, LoopClock
from sync_engine.config import SyncConfig
from sync_engine.errors import (
    BatchRejectedError,
    ExportError,
    FatalProviderError,
    ProviderError,
    RetriableProviderError,
)
from sync_engine.plan import Batch, BatchKind
from sync_engine.ratelimit import AdaptiveLimiter, CompositeLimiter, RateLimiter
from sync_engine.retry import RetryPolicy, call_with_retries, default_is_retriable, logged_retry

from . import _http
from ._esputnik_config import ESputnikConfig, check_esputnik, parse_esputnik
from ._esputnik_read import Page, SearchSnapshot, read_consistent
from ._esputnik_wire import (
    ESPUTNIK_SCHEMA,
    Request,
    dedupe_for,
    encode_requests,
    failed_contacts,
    merge,
    outcome_for,
)
from .base import BatchEvents, BatchOutcome, ProviderLimits, ProviderStats, RowOutcome, RowStatus
from .registry import ProviderContext, ProviderSpec

__all__ = ["SPEC", "ESputnikConfig", "ESputnikProvider"]

log = structlog.get_logger("sync_engine.esputnik")

# Calls are counted where they arrive; this slack per 1 s window absorbs the jitter
# between a call's start here and its arrival there.
ARRIVAL_MARGIN = 0.025
_WAITING = frozenset({"STARTED", "IMPORTING"})
# HTTP 429 refusals of one attempt, resent at the learnt pace without spending the retry
# budget (the call was not executed), so a configured limit that is wrong still finishes.
RATE_LIMIT_PATIENCE = 20
RATE_WINDOW = 1.0  # seconds: eSputnik counts calls "per 1 second"
ADAPTIVE_COOLDOWN = 0.2  # seconds: refusals within this long of a cut are one refusal
ADAPTIVE_RECOVERY = 1000  # successes from a halved rate back to the configured one
# Import sessions per request when they end in ERROR (the first one included).
IMPORT_ATTEMPTS = 3
_SEARCH = "/api/v1/contacts"  # GET: the contact search, with its own 50/s limit


class ESputnikProvider:
    """An eSputnik or Yespo account, used for one run."""

    schema = ESPUTNIK_SCHEMA

    def __init__(
        self,
        config: ESputnikConfig,
        *,
        session: aiohttp.ClientSession,
        work_dir: Path,
        key: str = "email",
        key_field: str | None = None,
        removal: str = "exclude",
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.name: str = config.kind
        self.limits = ProviderLimits(batch_rows=config.batch_size, concurrency=config.concurrency)
        self.stats = ProviderStats()
        self._session = session
        self._work_dir = work_dir
        self._dedupe = dedupe_for(key, key_field)
        self._removal = removal
        self._clock = clock or LoopClock()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        secret = config.api_key.reveal()
        token = base64.b64encode(f"sync-engine:{secret}".encode()).decode("ascii")
        self._auth = f"Basic {token}"
        self._scrub = _http.Scrubber([secret, token])
        self._api_limiter = RateLimiter(
            config.rate_limit, 1.0, margin=ARRIVAL_MARGIN, clock=self._clock, name="api"
        )
        search = RateLimiter(
            config.search_rate_limit, 1.0, margin=ARRIVAL_MARGIN, clock=self._clock, name="search"
        )
        # Both slots are taken at one instant: a search counts against both limits.
        self._search_limiter = CompositeLimiter(search, self._api_limiter, name="search")
        # In front of the fixed limiters, two learners: every call paces by the API's, a
        # search also by its own. A 429 does not say which limit it hit, so it slows the
        # learner of the refused call's own limit (the scarcer one for a search): searches
        # refused for their 50/s do not hold up imports, and the imports' refusals (the
        # API-wide limit) slow searches too, since searches pass the API learner as well.
        # eSputnik counts calls per 1 s window at up to 200/s, so a limit configured far
        # too high must be learnt within a fraction of a window (one cut per 0.2 s, not per
        # second) and recovered slowly (5 s of full-rate successes), or the refusals of
        # the learning, and of every probe back up, pile into a storm.
        self._adaptive = AdaptiveLimiter(
            config.rate_limit,
            cooldown=ADAPTIVE_COOLDOWN,
            recovery=ADAPTIVE_RECOVERY,
            clock=self._clock,
            name="api",
        )
        self._search_adaptive = AdaptiveLimiter(
            config.search_rate_limit,
            cooldown=ADAPTIVE_COOLDOWN,
            recovery=ADAPTIVE_RECOVERY,
            clock=self._clock,
            name="search",
        )
        self._retry = RetryPolicy(max_attempts=config.max_attempts)

    async def aclose(self) -> None:
        """Nothing to release: the session belongs to the engine."""

    @property
    def synced_list_id(self) -> int | None:
        """Group membership is a request option (``groupNames``), not a field."""
        return None

    def additive(self, fields: Sequence[str]) -> frozenset[str]:
        """Every eSputnik field is replaced, none added to."""
        return frozenset()

    # -- calls ------------------------------------------------------------------------
    async def call(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
        search: bool = False,
        allow: Collection[int] = (),
        expect_json: bool = True,
    ) -> _http.HttpResponse:
        """One API call with rate limiting and retries (429, 5xx, network, garbled JSON).

        Every eSputnik call this provider makes is idempotent (an upsert by the dedupe
        key, a read, a delete that accepts 404), so a call whose answer was lost or cut
        is simply made again. ``search`` calls also count against the 50/s search limit.
        Answers other than 2xx (and the ``allow`` ed statuses) raise; with ``expect_json``
        a 2xx body that is not JSON is retried like a lost answer.
        """
        url = self.config.base_url + path + (f"?{urlencode(query)}" if query else "")
        headers = {"Authorization": self._auth, "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        name = _call_name(method, path)
        learner = self._search_adaptive if search else self._adaptive

        async def attempt() -> _http.HttpResponse:
            refusals = 0
            while True:
                if search:
                    await self._search_adaptive.acquire()
                await self._adaptive.acquire()
                await (self._search_limiter if search else self._api_limiter).acquire()
                self.stats.count_call(name)
                try:
                    response = await exchange()
                except RetriableProviderError as error:
                    if error.code != "http_429":
                        raise
                    # Without a Retry-After the documented window (1 s) is full: every
                    # start waits for it to roll, instead of knocking at the full window.
                    pause = RATE_WINDOW if error.retry_after is None else error.retry_after
                    learner.rate_limited(pause)
                    self._report_rates()
                    refusals += 1
                    if refusals >= RATE_LIMIT_PATIENCE:
                        raise
                    self.stats.count_retry(name)
                    continue
                if search:
                    self._search_adaptive.ok()
                self._adaptive.ok()
                self._report_rates()
                return response

        async def exchange() -> _http.HttpResponse:
            response = await _http.request(
                self._session,
                method,
                url,
                data=body,
                headers=headers,
                timeout=self.config.timeout,
                scrub=self._scrub,
            )
            if response.status not in allow:
                self._classify(response, name)
            if expect_json and 200 <= response.status < 300 and response.body:
                try:
                    orjson.loads(response.body)
                except orjson.JSONDecodeError:
                    # Cut off or garbled on the way: the call may have run, and running it
                    # again is harmless, so this is a lost answer, not a wrong one.
                    raise RetriableProviderError(
                        f"{name}: the answer is not JSON (cut off?)", code="bad_json"
                    ) from None
            return response

        on_retry = logged_retry(name, count=self.stats.count_retry, logger=log)
        return await call_with_retries(
            attempt,
            policy=self._retry,
            is_retriable=default_is_retriable,
            clock=self._clock,
            rng=self._rng,
            on_retry=on_retry,
        )

    def _report_rates(self) -> None:
        """The API learner's figures for the report; the search learner's as ``search_*``."""
        self.stats.rates.update(self._adaptive.summary())
        self.stats.rates.update(
            {f"search_{k}": v for k, v in self._search_adaptive.summary().items()}
        )

    def _classify(self, response: _http.HttpResponse, name: str) -> None:
        """2xx passes; 429/5xx were raised as retriable by _http; the rest are errors."""
        status = response.status
        if 200 <= status < 300:
            return
        detail = self._scrub(response.body[:300].decode("utf-8", "replace")).strip()
        where = _http.redact_url(self.config.base_url)
        if status in (401, 403):
            raise FatalProviderError(
                f"{name}: HTTP {status}: eSputnik refused the API key ([provider] api_key)",
                code="unauthorized",
            )
        if status == 400:
            raise BatchRejectedError(
                f"{name}: HTTP 400: {detail or 'bad request'}", code="http_400"
            )
        if status == 409:
            # PUT/POST repeated within a minute: the same request is already being handled.
            raise RetriableProviderError(f"{name}: HTTP 409: {detail}", code="http_409")
        raise FatalProviderError(
            f"{name}: HTTP {status} from {where}; check [provider] base_url",
            code=f"http_{status}",
        )

    def _json(self, response: _http.HttpResponse, name: str) -> Any:
        try:
            return orjson.loads(response.body) if response.body else None
        except orjson.JSONDecodeError:
            raise ProviderError(f"{name}: the answer is not JSON") from None

    # -- pre-flight -----------------------------------------------------------------
    async def check(self, fields: Sequence[str]) -> list[str]:
        """Verify the key with one search row; warn about confirmed contacts."""
        await self.call("GET", "/api/v1/contacts", query=[("maxrows", "1")], search=True)
        warnings = self.config.warnings()
        if self.config.group is not None and await self._group_id() is None:
            warnings.append(
                f"[provider] group = {self.config.group!r} does not exist yet; the first"
                " import creates it"
            )
        return warnings

    async def _group_id(self) -> int | None:
        group = self.config.group
        assert group is not None
        response = await self.call("GET", "/api/v1/groups", query=[("name", group)])
        found = self._json(response, "GET /api/v1/groups")
        for item in found if isinstance(found, list) else ():
            if isinstance(item, Mapping) and item.get("name") == group:
                group_id = item.get("id")
                if isinstance(group_id, int):
                    return group_id
        return None

    # -- snapshot -------------------------------------------------------------------
    async def snapshot(self, fields: Sequence[str]) -> SearchSnapshot:
        """Page through the synced group's contacts (or the whole base) into a spool."""
        path = self._work_dir / f"esputnik-{uuid.uuid4().hex}.jsonl"
        if self.config.group is not None:
            group_id = await self._group_id()
            if group_id is None:
                path.write_bytes(b"")
                return SearchSnapshot(path)
            where, extra = f"/api/v1/group/{group_id}/contacts", [("orderByTs", "false")]
        else:
            where, extra = _SEARCH, [("sortBy", "contactId")]

        async def fetch(start: int, rows: int) -> Page:
            query = [*extra, ("startindex", str(start)), ("maxrows", str(rows))]
            # Segment pages are paced as searches too, as they always were: a read of many
            # pages must not crowd out the imports that follow it.
            response = await self.call("GET", where, query=query, search=True)
            contacts = self._json(response, f"GET {where}")
            if not isinstance(contacts, list):
                raise ExportError(f"GET {where}: the answer is not a list of contacts")
            total = response.headers.get("TotalCount")
            return Page(
                [c for c in contacts if isinstance(c, Mapping)],
                int(total) if total is not None and total.isdigit() else None,
            )

        count = await read_consistent(
            fetch,
            path,
            page_size=self.config.page_size,
            concurrency=self.config.read_concurrency,
            attempts=self.config.read_attempts,
        )
        log.info("contacts read", contacts=count)
        return SearchSnapshot(path)

    # -- apply ----------------------------------------------------------------------
    def resend_is_safe(self, batch: Batch) -> bool:
        """An upsert by the dedupe key, a group exclusion or a delete: all idempotent."""
        return True

    async def apply(self, batch: Batch, events: BatchEvents | None = None) -> BatchOutcome:
        """Send the batch and wait until every import session it started has finished."""
        if batch.kind is BatchKind.REMOVE and self._removal == "delete":
            if events is not None:
                await events.sent()
            return await self._delete(batch)
        requests = self._requests(batch)
        if events is not None:
            await events.sent()
        record = _TaskRecord()
        parts: list[list[RowOutcome]] = []
        for number, request in enumerate(requests):
            answer = await self._post(request)
            failed = failed_contacts(answer)
            session = answer.get("asyncSessionId")
            if not isinstance(session, str) or not session:
                message = answer.get("errorMessage")
                if message and not failed:
                    raise BatchRejectedError(f"POST /api/v1/contacts: {self._scrub(str(message))}")
                parts.append(outcome_for(batch, request.indexes, failed, self._dedupe))
                continue
            rows = outcome_for(batch, request.indexes, failed, self._dedupe)
            record.add(number, session, rows)
            if events is not None:
                await events.task(record.dump())
            parts.append(rows)
        return await self._finish(batch, requests, record, parts, events)

    async def _post(self, request: Request) -> Mapping[str, Any]:
        """One ``POST /api/v1/contacts``; its answer object."""
        response = await self.call("POST", "/api/v1/contacts", body=request.body)
        answer = self._json(response, "POST /api/v1/contacts")
        if not isinstance(answer, Mapping):
            raise ProviderError("POST /api/v1/contacts: the answer is not an object")
        return answer

    async def settle(self, batch: Batch, task_id: str | None) -> BatchOutcome | None:
        """Wait for the import sessions an earlier attempt started, instead of resending.

        Requests of the batch whose session was never journaled are reported transient
        (the next run plans them again); without any task id the batch is simply resent.
        """
        if task_id is None:
            return None
        record = _TaskRecord.load(task_id)
        if record is None:
            return None
        requests = self._requests(batch)
        parts: list[list[RowOutcome]] = [list(rows) for rows in record.failed.values()]
        for number, request in enumerate(requests):
            if number not in record.sessions:
                parts.append(
                    [
                        RowOutcome(i, RowStatus.TRANSIENT, "not_sent", "not sent before the stop")
                        for i in request.indexes
                    ]
                )
        log.info("settling import sessions from the journal", batch=batch.number)
        return await self._finish(batch, requests, record, parts)

    def _requests(self, batch: Batch) -> list[Request]:
        return encode_requests(
            batch,
            dedupe=self._dedupe,
            group=self.config.group,
            restore_deleted=self.config.restore_deleted,
            event_key=self.config.event_key,
            max_body_bytes=self.config.max_body_bytes,
        )

    async def _finish(
        self,
        batch: Batch,
        requests: Sequence[Request],
        record: _TaskRecord,
        parts: list[list[RowOutcome]],
        events: BatchEvents | None = None,
    ) -> BatchOutcome:
        for number, session in list(record.sessions.items()):
            error = await self._wait_for(session)
            if error is not None:
                error = await self._import_again(requests[number], number, record, error, events)
            if error is not None:
                indexes = requests[number].indexes
                failed_rows = {row.index for row in record.failed.get(number, ())}
                parts.append(
                    outcome_for(
                        batch,
                        [i for i in indexes if i not in failed_rows],
                        (),
                        self._dedupe,
                        session_error=error,
                    )
                )
        return merge(parts)

    async def _import_again(
        self,
        request: Request,
        number: int,
        record: _TaskRecord,
        error: str,
        events: BatchEvents | None,
    ) -> str | None:
        """Resend a request whose import session ended in ERROR (an upsert by key: safe),
        after a jittered backoff, up to IMPORT_ATTEMPTS sessions in all; the last error
        (None once one finished). Its contacts' failures came with the first answer (the
        same body is checked the same way), so a resend's are not counted again.
        """
        last: str | None = error
        for attempt in range(1, IMPORT_ATTEMPTS):
            if last is None:
                break
            wait = self._retry.delay(attempt, ProviderError(last), self._rng)
            self.stats.count_retry("import session")
            log.warning(
                "import session ended in ERROR; sending its contacts again",
                attempt=attempt,
                wait=round(wait, 2),
                error=last,
            )
            await self._clock.sleep(wait)
            answer = await self._post(request)
            session = answer.get("asyncSessionId")
            if not isinstance(session, str) or not session:
                break
            record.sessions[number] = session
            if events is not None:
                await events.task(record.dump())
            last = await self._wait_for(session)
        return last

    async def _wait_for(self, session: str) -> str | None:
        """Poll one import session; None when FINISHED, its description on ERROR."""
        path = f"/api/v1/importstatus/{quote(session, safe='')}"
        started = self._clock.now()
        delay = self.config.import_poll_interval
        while True:
            waited = self._clock.now() - started
            if waited + delay > self.config.import_timeout:
                raise ProviderError(
                    f"import session {session} not finished after {waited:.0f} s;"
                    f" [provider] import_timeout = {self.config.import_timeout:g}",
                    code="import_timeout",
                )
            await self._clock.sleep(delay)
            delay = min(delay * 1.5, self.config.import_poll_max)
            response = await self.call("GET", path)
            answer = self._json(response, "GET /api/v1/importstatus")
            status = str(answer.get("status", "")) if isinstance(answer, Mapping) else ""
            if status == "FINISHED":
                return None
            if status == "ERROR":
                assert isinstance(answer, Mapping)
                return self._scrub(str(answer.get("description") or "ERROR"))
            if status not in _WAITING:
                raise ProviderError(
                    f"import session {session}: unexpected status {status!r}",
                    code="import_status",
                )

    # -- delete ---------------------------------------------------------------------
    async def _delete(self, batch: Batch) -> BatchOutcome:
        """One DELETE per contact, ``concurrency`` at a time, paced by the limiter."""
        rows: list[RowOutcome] = []
        pending = iter(range(len(batch.changes)))

        async def worker() -> None:
            for index in pending:
                try:
                    await self._delete_one(batch.changes[index].key)
                except FatalProviderError:
                    raise
                except ProviderError as error:
                    rows.append(
                        RowOutcome(index, RowStatus.TRANSIENT, error.code or "", str(error))
                    )

        async with anyio.create_task_group() as group:
            for _ in range(self.config.concurrency):
                group.start_soon(worker)
        return BatchOutcome(rows=tuple(sorted(rows, key=lambda row: row.index)))

    async def _delete_one(self, key: str) -> None:
        erase = [("erase", "true" if self.config.erase else "false")]
        if self._dedupe.on == "externalCustomerId":
            # 404: already gone, which is what a removal wants.
            await self.call(
                "DELETE",
                "/api/v1/contact",
                query=[("externalCustomerId", key), *erase],
                allow=(404,),
                expect_json=False,
            )
            return
        by = "email" if "@" in key else "sms"
        value = key if by == "email" else key.lstrip("+")
        response = await self.call("GET", _SEARCH, query=[(by, value)], search=True)
        found = self._json(response, "GET /api/v1/contacts")
        for contact in found if isinstance(found, list) else ():
            contact_id = contact.get("id") if isinstance(contact, Mapping) else None
            if isinstance(contact_id, int):
                await self.call(
                    "DELETE",
                    f"/api/v1/contact/{contact_id}",
                    query=erase,
                    allow=(404,),
                    expect_json=False,
                )


def _call_name(method: str, path: str) -> str:
    """The call as the report counts it: ids left out, so one line per endpoint, not one
    per import session or contact (``GET /api/v1/importstatus/{id}``)."""
    parts = path.split("?")[0].split("/")
    named = [
        "{id}" if part.isdigit() or (i and parts[i - 1] == "importstatus") else part
        for i, part in enumerate(parts)
    ]
    return f"{method} {'/'.join(named)}"


class _TaskRecord:
    """What the journal keeps of a sent batch: each request's session and its failures.

    The failed contacts come only in the answer to the POST, so they are journaled with
    the session id: a batch settled on the next run still reports them as rejected.
    """

    def __init__(self) -> None:
        self.sessions: dict[int, str] = {}
        self.failed: dict[int, list[RowOutcome]] = {}

    def add(self, number: int, session: str, rows: Sequence[RowOutcome]) -> None:
        self.sessions[number] = session
        if rows:
            self.failed[number] = list(rows)

    def dump(self) -> str:
        return orjson.dumps(
            {
                "sessions": {str(n): s for n, s in self.sessions.items()},
                "failed": {
                    str(n): [[r.index, r.message] for r in rows] for n, rows in self.failed.items()
                },
            }
        ).decode()

    @classmethod
    def load(cls, text: str) -> _TaskRecord | None:
        try:
            data = orjson.loads(text)
            record = cls()
            for number, session in data["sessions"].items():
                record.sessions[int(number)] = str(session)
            for number, rows in data["failed"].items():
                record.failed[int(number)] = [
                    RowOutcome(int(i), RowStatus.REJECTED, "failed_contact", str(m))
                    for i, m in rows
                ]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return None
        return record


def _open(config: SyncConfig, context: ProviderContext) -> ESputnikProvider:
    assert isinstance(config.provider, ESputnikConfig)
    return ESputnikProvider(
        config.provider,
        session=context.session,
        work_dir=context.work_dir,
        key=config.sync.key,
        key_field=config.sync.key_field,
        removal=config.sync.removal,
        clock=context.clock,
        rng=context.rng,
    )


SPEC = ProviderSpec(
    schema=ESPUTNIK_SCHEMA,
    parse_config=parse_esputnik,
    validate=check_esputnik,
    open=_open,
)
