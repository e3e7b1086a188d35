"""RetryPolicy, call_with_retries and default_is_retriable; waits run on a FakeClock."""

from __future__ import annotations

import asyncio
import math
import random

import aiohttp
import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_engine.clock import FakeClock
from sync_engine.errors import (
    BatchRejectedError,
    ConfigError,
    ExportError,
    FatalProviderError,
    RetriableProviderError,
)
from sync_engine.retry import RetryPolicy, call_with_retries, default_is_retriable


class TopRandom(random.Random):
    """Always draws the top of the range, so the jitter cap itself can be asserted."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Flaky:
    """An async callable that raises the given errors in turn, then returns ``result``."""

    def __init__(self, *errors: BaseException, result: str = "ok") -> None:
        self.errors = list(errors)
        self.result = result
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


def always_retriable(error: BaseException) -> bool:
    return True


# --- RetryPolicy.delay --------------------------------------------------------------


@settings(max_examples=200)
@given(
    attempt=st.integers(1, 2000),
    base=st.floats(0.0, 10.0),
    cap=st.floats(0.0, 100.0),
    seed=st.integers(0, 2**32),
)
def test_delay_is_full_jitter_under_the_exponential_cap(
    attempt: int, base: float, cap: float, seed: int
) -> None:
    policy = RetryPolicy(base_delay=base, max_delay=cap)
    bound = min(cap, base * 2.0 ** min(attempt - 1, 1023))
    delay = policy.delay(attempt, ValueError(), random.Random(seed))
    assert 0.0 <= delay <= bound
    assert policy.delay(attempt, ValueError(), TopRandom()) == bound


def test_delay_spreads_over_the_whole_range() -> None:
    # Full jitter: waits fill [0, cap], not just the top of it (that would be no jitter).
    policy = RetryPolicy(base_delay=1.0, max_delay=30.0)
    rng = random.Random(1)
    delays = [policy.delay(4, ValueError(), rng) for _ in range(2000)]
    assert max(delays) <= 8.0
    assert min(delays) < 0.5
    assert max(delays) > 7.5


def test_delay_doubles_then_stops_at_max_delay() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0)
    caps = [policy.delay(n, ValueError(), TopRandom()) for n in range(1, 10)]
    assert caps == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert policy.backoff_cap(10**6) == 30.0  # no overflow on absurd attempt numbers


@pytest.mark.parametrize(
    ("retry_after", "expected_floor"),
    [(7.0, 7.0), (1000.0, 300.0), (-3.0, 0.0), (math.nan, 0.0), (None, 0.0)],
)
def test_delay_honours_retry_after_capped(retry_after: float | None, expected_floor: float) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=2.0, max_retry_after=300.0)
    error = RetriableProviderError("slow down", code="retry_later", retry_after=retry_after)
    rng = random.Random(3)
    for attempt in range(1, 6):
        delay = policy.delay(attempt, error, rng)
        assert delay >= expected_floor
        assert delay <= max(expected_floor, policy.backoff_cap(attempt))


def test_retry_after_is_only_a_floor() -> None:
    policy = RetryPolicy(base_delay=10.0, max_delay=10.0)
    error = RetriableProviderError("slow down", retry_after=1.0)
    assert policy.delay(1, error, TopRandom()) == 10.0  # the longer backoff wins


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"base_delay": -1.0},
        {"max_delay": math.inf},
        {"max_retry_after": math.nan},
    ],
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_attempts_are_numbered_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        RetryPolicy().delay(0, ValueError(), random.Random(0))


# --- call_with_retries --------------------------------------------------------------


async def test_returns_after_transient_failures_and_reports_each_retry() -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=10.0)
    first, second = ConnectionResetError("reset"), TimeoutError()
    fn = Flaky(first, second, result="done")
    retries: list[tuple[int, BaseException, float]] = []

    result = await call_with_retries(
        fn,
        policy=policy,
        is_retriable=default_is_retriable,
        clock=clock,
        rng=random.Random(42),
        on_retry=lambda attempt, error, delay: retries.append((attempt, error, delay)),
    )

    assert result == "done"
    assert fn.calls == 3
    replay = random.Random(42)  # same seed: the delays are reproducible
    expected = [policy.delay(1, first, replay), policy.delay(2, second, replay)]
    assert retries == [(1, first, expected[0]), (2, second, expected[1])]
    assert clock.sleeps == expected
    assert clock.now() == pytest.approx(sum(expected))


async def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    clock = FakeClock()
    errors = [RetriableProviderError(f"try {n}", retry_after=2.0) for n in range(1, 5)]
    fn = Flaky(*errors)
    seen: list[int] = []

    with pytest.raises(RetriableProviderError) as raised:
        await call_with_retries(
            fn,
            policy=RetryPolicy(max_attempts=3),
            is_retriable=default_is_retriable,
            clock=clock,
            rng=random.Random(0),
            on_retry=lambda attempt, error, delay: seen.append(attempt),
        )

    assert raised.value is errors[2]
    assert fn.calls == 3
    assert seen == [1, 2]
    assert len(clock.sleeps) == 2
    assert all(delay >= 2.0 for delay in clock.sleeps)  # Retry-After honoured


async def test_single_attempt_policy_never_waits() -> None:
    clock = FakeClock()
    fn = Flaky(TimeoutError())
    with pytest.raises(TimeoutError):
        await call_with_retries(
            fn,
            policy=RetryPolicy(max_attempts=1),
            is_retriable=always_retriable,
            clock=clock,
            rng=random.Random(0),
        )
    assert fn.calls == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "error",
    [
        FatalProviderError("bad key", code="invalid_api_key"),
        BatchRejectedError("invalid_arg"),
        ValueError("bug"),
    ],
)
async def test_non_retriable_error_is_raised_at_once(error: Exception) -> None:
    clock = FakeClock()
    fn = Flaky(error)
    with pytest.raises(type(error)) as raised:
        await call_with_retries(
            fn,
            policy=RetryPolicy(),
            is_retriable=default_is_retriable,
            clock=clock,
            rng=random.Random(0),
            on_retry=lambda *_: pytest.fail("must not retry"),
        )
    assert raised.value is error
    assert fn.calls == 1
    assert clock.sleeps == []


@pytest.mark.parametrize("error", [asyncio.CancelledError(), KeyboardInterrupt()])
async def test_cancellation_and_interrupts_are_never_retried(error: BaseException) -> None:
    clock = FakeClock()
    fn = Flaky(error)
    with pytest.raises(type(error)):
        await call_with_retries(
            fn,
            policy=RetryPolicy(),
            is_retriable=always_retriable,  # even a careless predicate cannot retry these
            clock=clock,
            rng=random.Random(0),
        )
    assert fn.calls == 1
    assert clock.sleeps == []


async def test_cancelled_during_backoff_makes_no_further_attempt() -> None:
    clock = FakeClock(auto_advance=False)  # the backoff wait lasts until we say so
    fn = Flaky(*[TimeoutError() for _ in range(5)])
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: call_with_retries(
                fn,
                policy=RetryPolicy(),
                is_retriable=default_is_retriable,
                clock=clock,
                rng=random.Random(0),
            )
        )
        await anyio.wait_all_tasks_blocked()
        assert clock.pending == 1  # waiting out the first backoff
        tg.cancel_scope.cancel()
    assert fn.calls == 1
    assert clock.pending == 0


# --- default_is_retriable -----------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "retriable"),
    [
        (RetriableProviderError("5xx"), True),
        (aiohttp.ClientConnectionError("refused"), True),
        (aiohttp.ServerDisconnectedError(), True),
        (aiohttp.ClientPayloadError("truncated body"), True),
        (aiohttp.ClientOSError(104, "reset"), True),
        (TimeoutError(), True),
        (ConnectionResetError(), True),
        (BrokenPipeError(), True),
        (FatalProviderError("no money"), False),
        (BatchRejectedError("invalid_arg"), False),
        (ExportError("broken export"), False),
        (ConfigError("bad key"), False),
        (aiohttp.InvalidURL("::"), False),
        (ValueError(), False),
        (asyncio.CancelledError(), False),
    ],
)
def test_default_is_retriable(error: BaseException, retriable: bool) -> None:
    assert default_is_retriable(error) is retriable


def test_a_rejected_certificate_is_not_retried() -> None:
    # Built without __init__: the real one wants a live connection key.
    error = aiohttp.ClientConnectorCertificateError.__new__(aiohttp.ClientConnectorCertificateError)
    assert isinstance(error, aiohttp.ClientConnectionError)
    assert not default_is_retriable(error)
