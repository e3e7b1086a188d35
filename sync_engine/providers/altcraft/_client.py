"""Calls to one Altcraft install: auth, rate limit, retries, task polling, file downloads.

Every API call passes an ``AdaptiveLimiter`` before the fixed one: a rate-limit refusal
(HTTP 429 or Altcraft's error 429) slows it down and is resent at the learnt pace on a
budget of its own, so a configured rate above the install's real one still finishes
without a storm of refusals.

The token travels in ``Authorization: Bearer`` (or in the JSON body, ``token_in =
"body"``), never in a URL; every message is scrubbed of it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
import orjson
import structlog

from sync_engine.clock import Clock
from sync_engine.errors import (
    BatchRejectedError,
    ExportError,
    ProviderError,
    RetriableProviderError,
)
from sync_engine.providers import _http
from sync_engine.providers.base import ProviderStats
from sync_engine.ratelimit import AdaptiveLimiter, RateLimiter
from sync_engine.retry import RetryPolicy, call_with_retries, default_is_retriable, logged_retry

from ._config import AltcraftConfig
from ._wire import parse_answer

__all__ = ["DONE_STATUSES", "RATE_LIMIT_CODES", "RATE_LIMIT_PATIENCE", "AltcraftClient", "refused"]

log = structlog.get_logger("sync_engine.altcraft")

DONE_STATUSES = frozenset({"completed", "success", "done", "finished"})
_FAILED_STATUSES = frozenset({"error", "failed", "fail", "canceled", "cancelled"})
# Answers that mean "too fast": the call was not executed, and the limiter slows down.
RATE_LIMIT_CODES = frozenset({"http_429", "altcraft_429"})
RATE_LIMIT_PATIENCE = 20  # rate-limit refusals of one attempt, resent at the learnt pace


def refused(error: BaseException) -> bool:
    """Whether a call certainly did not reach the API's logic: only a rate-limit refusal.

    A timeout, a 5xx or a cut connection may come after Altcraft acted, so a call that
    must not run twice (import-and-trigger) is retried on this alone.
    """
    return isinstance(error, RetriableProviderError) and error.code in RATE_LIMIT_CODES


class AltcraftClient:
    """One Altcraft API, used for one run."""

    def __init__(
        self,
        config: AltcraftConfig,
        *,
        session: aiohttp.ClientSession,
        clock: Clock,
        rng: random.Random,
        stats: ProviderStats,
        on_progress: Callable[[str, Mapping[str, Any]], None],
    ) -> None:
        self.config = config
        self._session = session
        self._clock = clock
        self._rng = rng
        self._stats = stats
        self._on_progress = on_progress
        self.scrub = _http.Scrubber([config.api_key.reveal()])
        self._limiter = RateLimiter(
            config.rate_limit, config.rate_period, clock=clock, margin=0.01, name="api"
        )
        # In front of the fixed limiter: learns the install's real limit from its refusals.
        self._adaptive = AdaptiveLimiter(
            config.rate_limit / config.rate_period, clock=clock, name="api"
        )
        self._retry = RetryPolicy(max_attempts=config.max_attempts)

    # -- requests ---------------------------------------------------------------------
    def envelope(self, params: Mapping[str, object]) -> dict[str, object]:
        """A call's JSON object, with the token when it travels in the body."""
        if self.config.token_in == "body":  # noqa: S105 - a place, not a token
            return {"token": self.config.api_key.reveal(), **params}
        return dict(params)

    def _headers(self, *, json: bool) -> dict[str, str]:
        """JSON calls carry the token here unless it goes in the body; a file always does."""
        headers = {"Accept": "application/json"}
        if json:
            headers["Content-Type"] = "application/json"
        if not json or self.config.token_in == "header":  # noqa: S105 - a place, not a token
            headers["Authorization"] = f"Bearer {self.config.api_key.reveal()}"
        return headers

    def url(self, method: str) -> str:
        return f"{self.config.base_url}/api/v1.1/{method}"

    async def call(self, method: str, params: Mapping[str, object]) -> dict[str, Any]:
        """A read or an idempotent write, retried on anything transient."""
        return await self.post(method, orjson.dumps(self.envelope(params)))

    async def post(
        self,
        method: str,
        body: bytes,
        *,
        once: bool = False,
        rejected: type[ProviderError] | None = None,
    ) -> dict[str, Any]:
        """POST an encoded body; ``once``: retry only a refusal (see :func:`refused`)."""
        headers = self._headers(json=True)

        async def attempt() -> dict[str, Any]:
            # A refusal means the call was not executed (so even the trigger may go again):
            # resend at the slowed pace without spending the retry budget, up to
            # RATE_LIMIT_PATIENCE times.
            refusals = 0
            while True:
                await self._adaptive.acquire()
                await self._limiter.acquire()
                self._stats.count_call(method)
                try:
                    answer = await exchange()
                except RetriableProviderError as error:
                    if not refused(error):
                        raise
                    self._adaptive.rate_limited(error.retry_after)
                    self._stats.rates.update(self._adaptive.summary())
                    refusals += 1
                    if refusals >= RATE_LIMIT_PATIENCE:
                        raise
                    self._stats.count_retry(method)
                    log.info("rate limited; slowing down", method=method, rate=self._adaptive.rate)
                    continue
                self._adaptive.ok()
                self._stats.rates.update(self._adaptive.summary())
                return answer

        async def exchange() -> dict[str, Any]:
            response = await _http.request(
                self._session,
                "POST",
                self.url(method),
                data=body,
                headers=headers,
                timeout=self.config.timeout,
                scrub=self.scrub,
            )
            try:
                return parse_answer(response.status, response.body, method=method, scrub=self.scrub)
            except ProviderError as error:
                if rejected is not None and isinstance(error, BatchRejectedError):
                    raise rejected(str(error), code=error.code) from None
                raise

        on_retry = logged_retry(method, count=self._stats.count_retry, logger=log)
        return await call_with_retries(
            attempt,
            policy=self._retry,
            is_retriable=refused if once else default_is_retriable,
            clock=self._clock,
            rng=self._rng,
            on_retry=on_retry,
        )

    # -- tasks ------------------------------------------------------------------------
    async def wait_task(
        self, task_id: str, *, what: str, error: type[ProviderError] = ProviderError
    ) -> dict[str, Any]:
        """Poll ``tasks/status`` until the task is done; returns its ``data``."""
        started = self._clock.now()
        delay = self.config.task_poll_interval
        while True:
            answer = await self.call("tasks/status", {"task_id": task_id})
            data = answer.get("data")
            if not isinstance(data, dict):
                raise error(f"tasks/status: task {task_id} answered without data")
            status = str(data.get("status", "")).strip().lower()
            if what == "export":  # a trigger task would overwrite the batch counter
                self._on_progress(what, {"status": status, "waited": self._clock.now() - started})
            if status in DONE_STATUSES:
                return data
            if status in _FAILED_STATUSES:
                raise error(
                    f"{what} task {task_id} ended with status {status!r}", code="task_failed"
                )
            waited = self._clock.now() - started
            if waited + delay > self.config.task_timeout:
                raise error(
                    f"{what} task {task_id} not completed after {waited:.0f} s (status"
                    f" {status!r}); [provider] task_timeout = {self.config.task_timeout:g}",
                    code="task_timeout",
                )
            await self._clock.sleep(delay)
            delay = min(delay * 1.5, self.config.task_poll_max)

    # -- files ------------------------------------------------------------------------
    def file_url(self, link: str) -> tuple[str, bool]:
        """The absolute URL of an export file, and whether it may carry the token.

        Altcraft hands out paths on its own host; the token goes only there.
        """
        url = urljoin(self.config.base_url + "/", link)
        base, target = urlsplit(self.config.base_url), urlsplit(url)
        if target.scheme not in ("http", "https"):
            raise ExportError(f"export file link {_http.redact_url(url)!r} is not http(s)")
        same = (base.scheme, base.netloc) == (target.scheme, target.netloc)
        return url, same

    async def download(self, link: str, destination: Path) -> int:
        """Stream one export file to disk (bounded memory), retrying transient failures."""
        url, authorised = self.file_url(link)
        headers = self._headers(json=False) if authorised else None
        received = 0

        def on_bytes(count: int) -> None:
            nonlocal received
            received += count
            self._on_progress("download", {"bytes": received})

        async def attempt() -> int:
            nonlocal received
            received = 0
            self._stats.count_call("download")
            return await _http.download(
                self._session,
                url,
                destination,
                timeout=self.config.timeout,
                scrub=self.scrub,
                on_bytes=on_bytes,
                headers=headers,
            )

        on_retry = logged_retry("download", count=self._stats.count_retry, logger=log)

        return await call_with_retries(
            attempt,
            policy=self._retry,
            is_retriable=default_is_retriable,
            clock=self._clock,
            rng=self._rng,
            on_retry=on_retry,
        )
