"""RateLimiter, CompositeLimiter and the FakeClock they are tested with; no wall-clock sleeps."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sync_engine.clock
from sync_engine.clock import FakeClock, LoopClock
from sync_engine.ratelimit import CompositeLimiter, RateLimiter


def assert_window(starts: Sequence[float], limit: int, period: float) -> None:
    """No half-open interval of length ``period`` holds more than ``limit`` of ``starts``.

    Such an interval holding limit + 1 starts would hold some s[i] and s[i + limit] less
    than ``period`` apart, so checking those pairs checks every window. Both roundings of
    the difference are checked, as a provider may compute either.
    """
    s = sorted(starts)
    for i in range(len(s) - limit):
        assert s[i + limit] >= s[i] + period, (i, s[i], s[i + limit])
        assert s[i + limit] - period >= s[i], (i, s[i], s[i + limit])


async def run_at_zero(limiter: RateLimiter, clock: FakeClock, n: int) -> list[float]:
    """Start ``n`` acquirers at once; return their start times in acquisition order."""
    starts: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        starts.append(clock.now())

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)
    return starts


# --- FakeClock ----------------------------------------------------------------------


async def test_fake_clock_concurrent_sleepers_wake_in_deadline_order() -> None:
    clock = FakeClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    async with anyio.create_task_group() as tg:
        for name, seconds in [("c", 3.0), ("a", 1.0), ("b", 2.0), ("a2", 1.0)]:
            tg.start_soon(sleeper, name, seconds)

    assert woke == [("a", 1.0), ("a2", 1.0), ("b", 2.0), ("c", 3.0)]
    assert clock.now() == 3.0  # jumps to each deadline; the waits did not add up
    assert sorted(clock.sleeps) == [1.0, 1.0, 2.0, 3.0]
    assert clock.pending == 0


async def test_fake_clock_woken_sleepers_run_before_the_next_jump() -> None:
    clock = FakeClock(start=100.0)
    log: list[tuple[str, float]] = []

    async def ticker() -> None:
        for _ in range(3):
            await clock.sleep(1.0)
            log.append(("tick", clock.now()))

    async def once() -> None:
        await clock.sleep(1.5)
        log.append(("once", clock.now()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        tg.start_soon(once)

    assert log == [("tick", 101.0), ("once", 101.5), ("tick", 102.0), ("tick", 103.0)]


async def test_fake_clock_does_not_jump_while_other_tasks_can_run() -> None:
    clock = FakeClock()
    woke: list[str] = []

    async def busy_then_short() -> None:
        for _ in range(25):  # runnable the whole time: time must stay put
            await anyio.lowlevel.checkpoint()
        await clock.sleep(0.5)
        woke.append("short")

    async def long() -> None:
        await clock.sleep(1.0)
        woke.append("long")

    async with anyio.create_task_group() as tg:
        tg.start_soon(long)
        tg.start_soon(busy_then_short)

    assert woke == ["short", "long"]
    assert clock.now() == 1.0


async def test_fake_clock_zero_negative_and_tiny_sleeps() -> None:
    clock = FakeClock(start=1e9)
    await clock.sleep(0)
    await clock.sleep(-5)
    assert clock.now() == 1e9
    await clock.sleep(1e-12)  # smaller than an ulp at 1e9: time must still move
    assert clock.now() > 1e9
    assert clock.sleeps == [0, -5, 1e-12]
    with pytest.raises(ValueError, match="NaN"):
        await clock.sleep(math.nan)


async def test_fake_clock_infinite_sleep_waits_for_cancellation() -> None:
    clock = FakeClock()
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(clock.sleep, math.inf)
            await clock.sleep(2.0)  # time never jumps to infinity
            scope.cancel()
    assert clock.now() == 2.0


async def test_fake_clock_cancelled_sleeper_leaves_no_deadline() -> None:
    clock = FakeClock()
    scope = anyio.CancelScope()

    async def doomed() -> None:
        with scope:
            await clock.sleep(100.0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(doomed)
        await clock.sleep(1.0)
        scope.cancel()
        await clock.sleep(5.0)
    assert clock.now() == 6.0
    assert clock.pending == 0


async def test_fake_clock_cancelled_driver_hands_over() -> None:
    clock = FakeClock()
    woke: list[float] = []

    async def sleeper(seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(clock.now())

    async def cancel_after(seconds: float, scope: anyio.CancelScope) -> None:
        await clock.sleep(seconds)
        scope.cancel()

    async with anyio.create_task_group() as tg:
        with anyio.CancelScope() as scope:
            tg.start_soon(sleeper, 3.0)
            tg.start_soon(sleeper, 4.0)
            tg.start_soon(cancel_after, 1.0, scope)
            # Sleeping first, this task advances time for all; it is cancelled at t=1.
            await clock.sleep(10.0)
        assert clock.now() == 1.0
    assert woke == [3.0, 4.0]
    assert clock.pending == 0


async def test_fake_clock_manual_mode_moves_only_on_advance() -> None:
    clock = FakeClock(auto_advance=False)
    woke: list[float] = []

    async def sleeper(seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(clock.now())

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper, 5.0)
        tg.start_soon(sleeper, 2.0)
        await anyio.wait_all_tasks_blocked()
        clock.advance(1.0)
        await anyio.wait_all_tasks_blocked()
        assert woke == []
        clock.advance(9.0)
    assert woke == [10.0, 10.0]
    with pytest.raises(ValueError, match="advance"):
        clock.advance(-1.0)


async def test_fake_clock_manual_advance_also_works_with_auto_advance() -> None:
    clock = FakeClock()
    woke: list[float] = []

    async def sleeper() -> None:
        await clock.sleep(10.0)
        woke.append(clock.now())

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper)
        await anyio.lowlevel.checkpoint()  # the sleeper is parked, advancing time
        clock.advance(4.0)
        clock.advance(6.0)
    assert woke == [10.0]


async def test_fake_clock_hold_keeps_time_still_during_off_loop_work() -> None:
    clock = FakeClock()
    woke: list[float] = []

    async def sleeper() -> None:
        await clock.sleep(1.0)
        woke.append(clock.now())

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper)
        with clock.holding():
            # Stands in for real I/O: nothing on the loop is runnable meanwhile, so
            # without the hold virtual time would jump to 1.0 right here.
            await anyio.to_thread.run_sync(time.sleep, 0.01)
            assert (clock.now(), woke) == (0.0, [])
    assert woke == [1.0]
    with pytest.raises(RuntimeError, match="hold"):
        clock.release()


async def test_fake_clock_without_a_visible_ready_queue_still_orders_sleepers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As on uvloop or trio: idleness is judged by the clock going unused for a while.
    monkeypatch.setattr(sync_engine.clock, "_ready_queue", lambda: None)
    clock = FakeClock()
    woke: list[float] = []

    async def sleeper(seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(clock.now())

    async with anyio.create_task_group() as tg:
        for seconds in (2.0, 0.5, 1.0):
            tg.start_soon(sleeper, seconds)
    assert woke == [0.5, 1.0, 2.0]


async def test_two_fake_clocks_on_one_loop_do_not_stall_each_other() -> None:
    first, second = FakeClock(), FakeClock(start=50.0)

    async def ticks(clock: FakeClock, step: float) -> None:
        for _ in range(20):
            await clock.sleep(step)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticks, first, 1.0)
        tg.start_soon(ticks, second, 0.25)
    assert first.now() == 20.0
    assert second.now() == 55.0


async def test_loop_clock_reads_and_sleeps_on_the_loop() -> None:
    clock = LoopClock()
    before = clock.now()
    await clock.sleep(-1.0)  # a past deadline is no wait and no error
    assert clock.now() >= before


# --- RateLimiter --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "period", "burst"),
    [(0, 1.0, None), (1, 0.0, None), (1, math.inf, None), (5, 1.0, 0), (5, 1.0, 6)],
)
def test_rejects_impossible_limits(limit: int, period: float, burst: int | None) -> None:
    with pytest.raises(ValueError, match="must"):
        RateLimiter(limit, period, burst=burst)


async def test_no_initial_burst_beyond_the_limit() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1200, 60.0, burst=1200, clock=clock, name="api")
    starts = await run_at_zero(limiter, clock, 3000)

    assert starts.count(0.0) == 1200  # a full first window, and not one call more
    assert starts.count(60.0) == 1200
    assert starts.count(120.0) == 600
    assert_window(starts, 1200, 60.0)
    assert limiter.acquired == 3000


async def test_default_burst_spreads_a_window_into_tenths() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1200, 60.0, clock=clock)
    assert limiter.burst == 120
    starts = await run_at_zero(limiter, clock, 1300)

    assert starts.count(0.0) == 120
    assert starts.count(6.0) == 120
    assert max(starts) == 60.0  # call 1201 waits for the first window to roll
    assert_window(starts, 1200, 60.0)
    assert_window(starts, 120, 6.0)


@pytest.mark.parametrize(("limit", "n"), [(1, 5), (7, 7), (7, 8), (7, 50), (10, 100)])
async def test_ready_calls_start_as_early_as_the_limit_allows(limit: int, n: int) -> None:
    clock = FakeClock()
    limiter = RateLimiter(limit, 2.5, burst=limit, clock=clock)
    starts = await run_at_zero(limiter, clock, n)
    assert max(starts) == (math.ceil(n / limit) - 1) * 2.5


async def test_every_window_exact_over_a_long_run_with_many_acquirers() -> None:
    clock = FakeClock()
    limiter = RateLimiter(50, 10.0, burst=5, clock=clock)
    rng = random.Random(7)
    starts: list[float] = []

    async def worker() -> None:
        for _ in range(40):
            await clock.sleep(rng.choice([0.0, 0.0, 0.1, 0.5, 2.0, 7.5]))
            await limiter.acquire()
            starts.append(clock.now())

    async with anyio.create_task_group() as tg:
        for _ in range(40):
            tg.start_soon(worker)

    assert len(starts) == 1600
    assert clock.now() > 300.0  # a long virtual run, many windows deep
    assert_window(starts, 50, 10.0)
    assert_window(starts, 5, 1.0)
    assert limiter.acquired == 1600


async def test_waiters_are_served_first_come_first_served() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, 1.0, clock=clock)
    served: list[int] = []

    async def caller(i: int) -> None:
        await clock.sleep(i * 0.01)  # arrive in index order, all within the first slot
        await limiter.acquire()
        served.append(i)

    async with anyio.create_task_group() as tg:
        for i in reversed(range(10)):
            tg.start_soon(caller, i)

    assert served == list(range(10))
    assert clock.now() == 9.0


async def test_cancelled_head_waiter_consumes_no_slot() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, 10.0, clock=clock)
    await limiter.acquire()  # t=0: the window is full until t=10
    started: list[tuple[str, float]] = []
    doomed = anyio.CancelScope()

    async def caller(name: str) -> None:
        await limiter.acquire()
        started.append((name, clock.now()))

    async def doomed_caller() -> None:
        with doomed:
            await caller("doomed")

    async with anyio.create_task_group() as tg:
        tg.start_soon(doomed_caller)  # first in line, so it waits on the clock
        tg.start_soon(caller, "patient")
        await clock.sleep(1.0)
        assert limiter.waiting == 2
        doomed.cancel()

    assert started == [("patient", 10.0)]  # not pushed back to t=20
    assert limiter.acquired == 2
    assert limiter.waiting == 0


async def test_cancelled_waiter_anywhere_in_the_queue_consumes_no_slot() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, 10.0, burst=2, clock=clock)
    await limiter.acquire()
    await limiter.acquire()
    started: list[tuple[str, float]] = []
    scopes = {name: anyio.CancelScope() for name in "abcd"}

    async def caller(name: str) -> None:
        with scopes[name]:
            await limiter.acquire()
            started.append((name, clock.now()))

    async with anyio.create_task_group() as tg:
        for name in "abcd":
            tg.start_soon(caller, name)
        await clock.sleep(1.0)
        assert limiter.waiting == 4
        scopes["a"].cancel()  # the head
        scopes["c"].cancel()  # one in the middle

    assert started == [("b", 10.0), ("d", 10.0)]
    assert limiter.acquired == 4


async def test_try_acquire_and_next_free_in() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, 4.0, burst=2, clock=clock)
    assert limiter.next_free_in() == 0.0
    assert limiter.try_acquire()
    await clock.sleep(1.0)
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    assert limiter.next_free_in() == 3.0
    await clock.sleep(3.0)
    assert limiter.next_free_in() == 0.0
    assert limiter.try_acquire()
    assert limiter.acquired == 3
    assert limiter.waited_seconds == 0.0


async def test_try_acquire_never_jumps_the_queue() -> None:
    clock = FakeClock(auto_advance=False)
    limiter = RateLimiter(1, 1.0, clock=clock)
    assert limiter.try_acquire()
    async with anyio.create_task_group() as tg:
        tg.start_soon(limiter.acquire)
        await anyio.wait_all_tasks_blocked()
        assert limiter.waiting == 1
        clock.advance(1.0)  # a slot is free, but it is the waiter's
        assert not limiter.try_acquire()
    assert limiter.acquired == 2


async def test_waited_seconds_and_context_manager() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, 2.0, clock=clock, name="export")
    async with limiter:
        pass
    async with limiter:
        assert clock.now() == 2.0
    assert limiter.waited_seconds == 2.0
    assert limiter.acquired == 2
    assert "export" in repr(limiter)
    assert repr(clock).startswith("FakeClock(")


# --- CompositeLimiter ---------------------------------------------------------------


async def test_composite_respects_every_limit_with_shared_traffic() -> None:
    clock = FakeClock()
    api = RateLimiter(10, 1.0, burst=10, clock=clock, name="api")
    export = RateLimiter(2, 1.0, burst=2, clock=clock, name="export")
    both = CompositeLimiter(api, export)
    also_both = CompositeLimiter(export, api)  # another order: still no deadlock
    api_starts: list[float] = []
    export_starts: list[float] = []

    async def plain_call() -> None:
        await api.acquire()
        api_starts.append(clock.now())

    async def export_call(limiter: CompositeLimiter) -> None:
        await limiter.acquire()
        api_starts.append(clock.now())
        export_starts.append(clock.now())

    async with anyio.create_task_group() as tg:
        for i in range(120):
            if i % 3 == 0:
                tg.start_soon(export_call, both if i % 2 else also_both)
            else:
                tg.start_soon(plain_call)

    assert len(export_starts) == 40
    assert_window(api_starts, 10, 1.0)  # checked on real start times, composite included
    assert_window(export_starts, 2, 1.0)
    assert api.acquired == 120
    assert export.acquired == 40
    assert both.acquired + also_both.acquired == 40
    assert both.waited_seconds > 0


async def test_composite_takes_all_slots_at_one_instant() -> None:
    clock = FakeClock()
    slow = RateLimiter(1, 5.0, clock=clock)
    fast = RateLimiter(1, 1.0, clock=clock)
    both = CompositeLimiter(fast, slow)
    assert both.limiters == (slow, fast)  # scarcest first
    await fast.acquire()  # fast is busy until t=1; slow is free all along
    await both.acquire()
    assert clock.now() == 1.0
    # The slow slot is dated when the call really started (t=1), not when it was free.
    assert slow.next_free_in() == 5.0
    assert both.next_free_in() == 5.0


async def test_composite_cancelled_takes_nothing_and_releases_its_place() -> None:
    clock = FakeClock()
    export = RateLimiter(2, 60.0, burst=2, clock=clock)
    api = RateLimiter(1, 10.0, clock=clock)
    both = CompositeLimiter(api, export, api)  # a repeated limiter counts once
    assert both.limiters == (export, api)
    await api.acquire()  # api busy until t=10
    async with anyio.create_task_group() as tg:
        tg.start_soon(both.acquire)  # heads the export queue, then waits on api
        await clock.sleep(5.0)
        assert (export.waiting, api.waiting) == (1, 1)
        tg.cancel_scope.cancel()
    assert (api.acquired, export.acquired, both.acquired) == (1, 0, 0)
    assert (api.waiting, export.waiting) == (0, 0)
    assert export.try_acquire()  # its place at the head of export was given up


async def test_composite_try_acquire_and_context_manager() -> None:
    clock = FakeClock()
    api = RateLimiter(3, 1.0, burst=3, clock=clock)
    export = RateLimiter(1, 1.0, clock=clock)
    both = CompositeLimiter(api, export, name="export")
    assert both.try_acquire()
    assert not both.try_acquire()
    assert api.acquired == 1  # a refused try takes nothing anywhere
    async with both:
        assert clock.now() == 1.0
    assert both.acquired == 2
    assert "export" in repr(both)
    with pytest.raises(ValueError, match="at least one"):
        CompositeLimiter()


# --- properties ---------------------------------------------------------------------


def fastest_schedule(
    arrivals: Sequence[float], limit: int, period: float, burst: int
) -> list[float]:
    """The earliest FIFO start times any limiter obeying both windows could give."""
    fine = period * burst / limit
    starts: list[float] = []
    for k, arrival in enumerate(arrivals):
        start = max(arrival, starts[-1]) if starts else arrival
        if k >= limit:
            start = max(start, starts[k - limit] + period)
        if burst < limit and k >= burst:
            start = max(start, starts[k - burst] + fine)
        starts.append(start)
    return starts


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(1, 6),
    period=st.sampled_from([0.1, 1.0, 2.5, 60.0]),
    burst_share=st.none() | st.floats(0.0, 1.0),
    gaps=st.lists(st.sampled_from([0.0, 0.0, 0.01, 0.3, 1.0, 2.5, 7.0]), min_size=1, max_size=40),
)
def test_property_never_over_the_limit_and_never_slower_than_needed(
    limit: int, period: float, burst_share: float | None, gaps: list[float]
) -> None:
    burst = None if burst_share is None else max(1, round(burst_share * limit))
    arrivals: list[float] = []
    for gap in gaps:
        arrivals.append((arrivals[-1] if arrivals else 0.0) + gap)

    async def scenario() -> tuple[list[float], RateLimiter]:
        clock = FakeClock()
        limiter = RateLimiter(limit, period, burst=burst, clock=clock)
        starts: list[tuple[int, float]] = []

        async def caller(i: int) -> None:
            await clock.sleep(arrivals[i])
            await limiter.acquire()
            starts.append((i, clock.now()))

        async with anyio.create_task_group() as tg:
            for i in range(len(arrivals)):
                tg.start_soon(caller, i)
        assert [i for i, _ in starts] == list(range(len(arrivals)))  # FIFO
        return [t for _, t in starts], limiter

    starts, limiter = anyio.run(scenario)
    assert_window(starts, limit, period)
    assert_window(starts, limiter.burst, period * limiter.burst / limit)
    expected = fastest_schedule(arrivals, limit, period, limiter.burst)
    assert starts == pytest.approx(expected, rel=1e-9, abs=1e-9)


class LateClock(FakeClock):
    """A FakeClock whose sleepers wake ``late`` seconds after their deadline, as on an
    event loop busy with other work when the deadline comes."""

    def __init__(self, late: float) -> None:
        super().__init__()
        self.late = late

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds + self.late if seconds > 0 else seconds)


async def test_late_wakeups_do_not_pile_up_through_the_smoothing_window() -> None:
    """400 ready calls at 20/s (smoothed to 2 per 0.1 s), every wakeup 10 ms late: the
    run still ends near N/R. The limit itself holds on the real start times, and the
    smoothing window within one slot of spacing."""
    late = 0.01
    clock = LateClock(late)
    limiter = RateLimiter(200, 10.0, burst=2, clock=clock)
    starts = await run_at_zero(limiter, clock, 400)
    assert_window(starts, 200, 10.0)
    s = sorted(starts)
    assert all(s[i + 3] >= s[i] + 0.1 - 1e-9 for i in range(len(s) - 3))
    # Dated by the real starts, the chain of 199 smoothed slots would end 2 s later.
    assert max(starts) < 19.95 + 10 * late


async def test_a_margin_widens_the_window_the_provider_counts() -> None:
    """With margin m, the call after a full window waits period + m, not period."""
    clock = FakeClock(auto_advance=False)
    limiter = RateLimiter(2, 1.0, burst=2, margin=0.25, clock=clock)
    assert limiter.try_acquire()
    assert limiter.try_acquire()
    clock.advance(1.0)
    assert not limiter.try_acquire()
    assert limiter.next_free_in() == pytest.approx(0.25)
    clock.advance(0.25)
    assert limiter.try_acquire()


def test_a_negative_margin_is_refused() -> None:
    with pytest.raises(ValueError, match="margin"):
        RateLimiter(1, 1.0, margin=-0.1)
