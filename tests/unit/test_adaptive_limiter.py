"""AdaptiveLimiter: AIMD pacing learnt from the provider's refusals, on a fake clock."""

from __future__ import annotations

import itertools

import anyio
import pytest

from sync_engine.clock import FakeClock
from sync_engine.ratelimit import AdaptiveLimiter


async def starts_of(limiter: AdaptiveLimiter, clock: FakeClock, n: int) -> list[float]:
    """Start ``n`` acquirers at once; return their start times."""
    starts: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        starts.append(clock.now())

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)
    return starts


async def test_until_refused_it_lets_every_call_straight_through() -> None:
    """Untroubled, the adaptive layer adds no wait: the fixed limiter keeps the rate."""
    clock = FakeClock()
    limiter = AdaptiveLimiter(10.0, clock=clock)
    assert await starts_of(limiter, clock, 50) == [0.0] * 50
    assert not limiter.throttled


async def test_a_refusal_halves_the_rate_and_paces_the_starts() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(10.0, clock=clock)
    limiter.rate_limited()
    assert limiter.rate == 5.0
    starts = await starts_of(limiter, clock, 6)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps == pytest.approx([0.2] * 5)


async def test_refusals_inside_the_cooldown_count_once() -> None:
    """Calls in flight at the old rate are refused together; that is one signal, not many."""
    clock = FakeClock()
    limiter = AdaptiveLimiter(8.0, clock=clock, cooldown=1.0)
    for _ in range(5):
        limiter.rate_limited()
    assert (limiter.rate, limiter.slowdowns) == (4.0, 1)
    clock.advance(1.0)
    limiter.rate_limited()
    assert (limiter.rate, limiter.slowdowns) == (2.0, 2)


async def test_the_rate_never_falls_below_the_floor() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(8.0, floor=3.0, cooldown=0.0, clock=clock)
    for _ in range(10):
        limiter.rate_limited()
    assert limiter.rate == limiter.lowest == 3.0


async def test_successes_bring_the_rate_back_to_the_ceiling() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(10.0, recovery=20, clock=clock)
    limiter.rate_limited()
    for _ in range(9):
        limiter.ok()
    assert limiter.rate == pytest.approx(9.5)
    for _ in range(5):
        limiter.ok()
    assert limiter.rate == 10.0
    assert not limiter.throttled


async def test_retry_after_holds_every_start_until_it_passes() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(100.0, clock=clock)
    limiter.rate_limited(retry_after=3.0)
    starts = await starts_of(limiter, clock, 3)
    assert min(starts) == pytest.approx(3.0)


async def test_a_cancelled_waiter_takes_no_start() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(1.0, clock=clock, cooldown=0.0)
    limiter.rate_limited()  # 0.5/s: one start per 2 s
    await limiter.acquire()
    with anyio.move_on_after(0):  # real time is irrelevant: the scope is cancelled at once
        await limiter.acquire()
    assert limiter.acquired == 1
    await limiter.acquire()
    assert limiter.acquired == 2
    assert clock.now() == pytest.approx(2.0)


async def test_effective_rate_and_summary_report_what_happened() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(4.0, clock=clock)
    assert limiter.effective_rate is None
    limiter.rate_limited()
    await starts_of(limiter, clock, 5)  # 2/s: starts at 0, .5, 1, 1.5, 2
    assert limiter.effective_rate == pytest.approx(2.0)
    summary = limiter.summary()
    assert summary["configured"] == 4.0
    assert summary["lowest"] == 2.0
    assert summary["slowdowns"] == 1.0
    assert summary["calls"] == 5.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ceiling": 0.0}, "ceiling"),
        ({"ceiling": 1.0, "floor": 2.0}, "floor"),
        ({"ceiling": 1.0, "decrease": 1.0}, "decrease"),
        ({"ceiling": 1.0, "recovery": 0}, "recovery"),
        ({"ceiling": 1.0, "cooldown": -1.0}, "cooldown"),
    ],
)
def test_nonsense_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    ceiling = kwargs.pop("ceiling")
    with pytest.raises(ValueError, match=message):
        AdaptiveLimiter(ceiling, **kwargs)  # type: ignore[arg-type]
