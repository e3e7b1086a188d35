"""Retrying transient failures: bounded attempts, full-jitter backoff, Retry-After.

Full jitter (a uniform wait between zero and the exponential cap) keeps many clients
that failed together from retrying together; a provider's own Retry-After is honoured
as a floor, capped so a bogus header cannot stall a run for hours.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from .clock import Clock
from .errors import RetriableProviderError

__all__ = ["RetryPolicy", "call_with_retries", "default_is_retriable", "logged_retry"]

T = TypeVar("T")

# 2.0 ** 1024 overflows a float; any exponent past this already exceeds every max_delay.
_MAX_EXPONENT = 1023


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how long to retry.

    ``max_attempts`` counts every attempt, the first included (1 = never retry). The wait
    before retry ``n`` is uniform in [0, min(max_delay, base_delay * 2 ** (n - 1))], and at
    least the provider's Retry-After (capped at ``max_retry_after``) when it sent one.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts!r}")
        for name in ("base_delay", "max_delay", "max_retry_after"):
            value = getattr(self, name)
            if not 0 <= value < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    def backoff_cap(self, attempt: int) -> float:
        """The upper bound of the jittered wait after failed attempt ``attempt`` (1-based)."""
        if attempt < 1:
            raise ValueError(f"attempts are numbered from 1, got {attempt!r}")
        exponent = min(attempt - 1, _MAX_EXPONENT)
        return min(self.max_delay, self.base_delay * 2.0**exponent)

    def delay(self, attempt: int, error: BaseException, rng: random.Random) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based) before the next one."""
        wait = rng.uniform(0.0, self.backoff_cap(attempt))
        if isinstance(error, RetriableProviderError) and error.retry_after is not None:
            retry_after = error.retry_after
            if not math.isnan(retry_after):  # a garbled header is no floor at all
                wait = max(wait, min(max(retry_after, 0.0), self.max_retry_after))
        return wait


def default_is_retriable(error: BaseException) -> bool:
    """Whether trying the same call again could succeed: transient network or provider trouble.

    A certificate the client rejects will be rejected again, so it is not retried even
    though aiohttp files it under connection errors.
    """
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        return False
    return isinstance(
        error,
        RetriableProviderError
        | aiohttp.ClientConnectionError  # includes ServerDisconnectedError
        | aiohttp.ClientPayloadError
        | TimeoutError
        | ConnectionError,
    )


def logged_retry(
    method: str, *, count: Callable[[str], None], logger: Any
) -> Callable[[int, BaseException, float], None]:
    """The ``on_retry`` every provider uses: count the retry for the report, log it.

    ``logger`` is a structlog logger; the error text must already be scrubbed of secrets.
    """

    def on_retry(attempt: int, error: BaseException, delay: float) -> None:
        count(method)
        logger.warning(
            "retrying", method=method, attempt=attempt, wait=round(delay, 2), error=str(error)
        )

    return on_retry


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    is_retriable: Callable[[BaseException], bool],
    clock: Clock,
    rng: random.Random,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """Await ``fn()`` until it succeeds, retrying retriable errors after a backoff.

    At most ``policy.max_attempts`` calls; after the last one, or on an error that is not
    retriable, that error propagates unchanged. Only ``Exception`` subclasses are ever
    retried: cancellation (a ``BaseException`` on every anyio backend), KeyboardInterrupt
    and the like propagate at once, whatever ``is_retriable`` says.
    ``on_retry(attempt, error, delay)`` runs before each wait (``attempt`` = the one that
    failed), for logs and metrics.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return await fn()
        except Exception as error:
            if attempt >= policy.max_attempts or not is_retriable(error):
                raise
            delay = policy.delay(attempt, error, rng)
            if on_retry is not None:
                on_retry(attempt, error, delay)
        # Wait outside the except block, so an error (or cancellation) during the wait
        # is not chained onto the failure we are about to retry.
        await clock.sleep(delay)
