"""Client-side rate limiting: never start more calls than the provider allows.

A ``RateLimiter`` keeps the start times of recent calls (a sliding-window log), so its
guarantee is exact for every window, the first one included: a token bucket that starts
full lets up to twice the rate through in its first window, which a provider counting
calls per rolling minute would refuse. A ``CompositeLimiter`` takes slots from several
limiters at one instant (the API-wide limit plus one method's own limit). An
``AdaptiveLimiter`` sits in front of either and learns the provider's real limit from
its refusals (AIMD), for a configured limit that is wrong or an account shared with
other clients.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from types import TracebackType

import anyio

from .clock import Clock, LoopClock

__all__ = ["AdaptiveLimiter", "CompositeLimiter", "RateLimiter"]

# Woken later than this after its slot came, a caller counts as late (see RateLimiter).
_LATE = 0.001


@dataclass(eq=False)
class _Waiter:
    """One task queued in a limiter; ``event`` is set when it becomes the head."""

    event: anyio.Event


class _Window:
    """At most ``limit`` starts in any half-open interval of length ``period``.

    Only the last ``limit`` start times matter: a new start is allowed once the oldest of
    them has left the window, so memory is O(limit).
    """

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self.starts: deque[float] = deque(maxlen=limit)

    def wait(self, now: float) -> float:
        """Seconds until one more start is allowed (zero or less: allowed now)."""
        if len(self.starts) < self.limit:
            return 0.0
        oldest = self.starts[0]
        # Both roundings of "now - oldest >= period" must agree (a provider may compute
        # either), so wait out the stricter one; at worst that is one float ulp longer.
        return max(oldest + self.period - now, oldest - (now - self.period))

    def due(self) -> float:
        """When one more start is allowed (minus infinity while the window has room)."""
        if len(self.starts) < self.limit:
            return float("-inf")
        return self.starts[0] + self.period

    def record(self, at: float) -> None:
        self.starts.append(max(at, self.starts[-1]) if self.starts else at)


class RateLimiter:
    """At most ``limit`` calls start in any ``period`` seconds; waiters are served FIFO.

    The window log alone is exact but lets all ``limit`` calls start at once. ``burst``
    adds smoothness: at most ``burst`` calls start within any ``period * burst / limit``
    seconds (same average rate, finer grain). The default, ``max(1, limit // 10)``, is a
    tenth of the window (120 per 6 s for 1200 per 60 s): small jobs still start at once,
    big ones are spread out, and only a tenth of a window's calls sit right at the window's
    edge, where network jitter could make the provider count them in the next window.
    ``burst=limit`` turns the smoothing off.

    A caller that waited for its slot but was woken late (the event loop was busy when
    the slot came) is dated, in the smoothing window only, when it could have started,
    at most one slot's spacing (``period / limit``) before it really did: otherwise
    every later start inherits the delay through that window's chain, and a long run
    falls behind its rate (~3% at 20 calls/s on a busy 2-core machine). The window of
    ``limit`` calls per ``period`` is always kept on the real start times.

    ``margin`` seconds are added to the window for the provider's sake: it counts a call
    when the call arrives, and arrivals wander by a few milliseconds (the network, a
    server still busy with the previous batch). Without a margin, two starts exactly
    ``period`` apart can arrive less than ``period`` apart and the second is refused.

    ``acquire`` waits for a slot; a waiter cancelled before it gets one consumes nothing.
    ``try_acquire`` never waits and never jumps the queue. ``acquired`` counts slots
    taken; ``waited_seconds`` totals the time callers spent waiting (clock seconds).
    """

    def __init__(
        self,
        limit: int,
        period: float,
        *,
        burst: int | None = None,
        margin: float = 0.0,
        clock: Clock | None = None,
        name: str = "",
    ) -> None:
        if limit < 1:
            raise ValueError(f"rate limit must be at least 1 call, got {limit!r}")
        if not 0 < period < float("inf"):
            raise ValueError(f"rate limit period must be positive and finite, got {period!r}")
        burst = max(1, limit // 10) if burst is None else burst
        if not 1 <= burst <= limit:
            raise ValueError(f"burst must be between 1 and limit ({limit}), got {burst!r}")
        if not 0.0 <= margin < float("inf"):
            raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
        self.limit = limit
        self.period = float(period)
        self.burst = burst
        self.name = name
        self._clock: Clock = LoopClock() if clock is None else clock
        self.margin = float(margin)
        self._windows = [_Window(limit, self.period + self.margin)]
        if burst < limit:
            self._windows.append(_Window(burst, self.period * burst / limit))
        self._queue: deque[_Waiter] = deque()
        self.acquired = 0
        self.waited_seconds = 0.0

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def rate(self) -> float:
        """Average calls per second this limiter allows."""
        return self.limit / self.period

    @property
    def waiting(self) -> int:
        """How many callers are queued in ``acquire`` right now."""
        return len(self._queue)

    def next_free_in(self) -> float:
        """Seconds until a slot frees (0.0: one is free now), ignoring queued waiters."""
        return max(0.0, self._wait(self._clock.now()))

    def try_acquire(self) -> bool:
        """Take a slot if one is free now and nobody is queued for it; never waits."""
        now = self._clock.now()
        if self._queue or self._wait(now) > 0:
            return False
        self._take(now)
        return True

    async def acquire(self) -> None:
        """Wait for a slot (first come, first served) and take it."""
        start = self._clock.now()
        if not self._queue and self._wait(start) <= 0:
            self._take(start)
            return
        waiter = _Waiter(anyio.Event())
        await self._wait_turn(waiter)
        now = self._clock.now()
        self._take(now, due=max(start, self._due()))
        self._leave(waiter)
        self.waited_seconds += now - start

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def __repr__(self) -> str:
        label = f"{self.name!r}, " if self.name else ""
        return (
            f"RateLimiter({label}{self.limit}/{self.period:g}s, burst={self.burst}, "
            f"waiting={len(self._queue)})"
        )

    # The three steps below are shared with CompositeLimiter, which must hold its place
    # at the head of several queues before it takes a slot from all of them at once.

    def _wait(self, now: float) -> float:
        return max(window.wait(now) for window in self._windows)

    def _due(self) -> float:
        return max(window.due() for window in self._windows)

    def _take(self, now: float, *, due: float | None = None) -> None:
        """Take a slot starting ``now``; ``due``: when the caller could first have."""
        limit, *smoothing = self._windows
        limit.record(now)
        at = now
        if due is not None and now - due > _LATE:
            at = max(due, now - self.period / self.limit)
        for window in smoothing:
            window.record(at)
        self.acquired += 1

    async def _wait_turn(self, waiter: _Waiter) -> None:
        """Queue ``waiter``; return when it heads the queue and a slot is free.

        Only the head waits on the clock; the others wait for their turn. While a waiter
        heads the queue nobody else can take a slot, so the free slot stays free until the
        caller takes it (``_take``) and steps aside (``_leave``). On cancellation the
        waiter leaves the queue at once, having taken nothing.
        """
        self._queue.append(waiter)
        try:
            while True:
                if self._queue[0] is waiter:
                    wait = self._wait(self._clock.now())
                    if wait <= 0:
                        return
                    await self._clock.sleep(wait)
                else:
                    await waiter.event.wait()
        except BaseException:
            self._leave(waiter)
            raise

    def _leave(self, waiter: _Waiter) -> None:
        was_head = self._queue[0] is waiter
        self._queue.remove(waiter)
        if was_head and self._queue:
            self._queue[0].event.set()


class CompositeLimiter:
    """Take one slot from each of several limiters for one call, all at the same instant.

    Slots are never held while waiting: a slot taken early would date the call too early
    and let the real starts crowd a window. Instead the composite queues in each limiter
    in turn and, once it heads every queue and each has a free slot, takes them all.

    Order: scarcest first (lowest ``rate``; ties by identity), one global order, so no
    two composites can each hold a queue the other waits for (no deadlock). Scarcest
    first also means that while we wait for the shared API-wide limiter we only hold up
    calls of our own scarce method, never the whole API behind a 20-per-minute queue.
    """

    def __init__(self, *limiters: RateLimiter, name: str = "") -> None:
        unique = list({id(limiter): limiter for limiter in limiters}.values())
        if not unique:
            raise ValueError("a composite limiter needs at least one limiter")
        self.limiters = tuple(sorted(unique, key=lambda lim: (lim.rate, id(lim))))
        self.name = name
        self.acquired = 0
        self.waited_seconds = 0.0

    def next_free_in(self) -> float:
        """Seconds until every limiter has a free slot, ignoring queued waiters."""
        return max(limiter.next_free_in() for limiter in self.limiters)

    def try_acquire(self) -> bool:
        """Take a slot from every limiter if all are free now with nobody queued."""
        if any(lim.waiting or lim.next_free_in() > 0 for lim in self.limiters):
            return False
        for limiter in self.limiters:
            limiter._take(limiter.clock.now())
        self.acquired += 1
        return True

    async def acquire(self) -> None:
        """Wait until every limiter has a slot for us, then take them all at once."""
        clock = self.limiters[0].clock
        start = clock.now()
        held: list[tuple[RateLimiter, _Waiter]] = []
        try:
            for limiter in self.limiters:
                waiter = _Waiter(anyio.Event())
                await limiter._wait_turn(waiter)  # leaves that queue itself if cancelled
                held.append((limiter, waiter))
            # Each limiter's slot has stayed free since we reached its head: nobody else
            # takes while we head the queue, and time only frees more.
            for limiter, _ in held:
                limiter._take(limiter.clock.now())
        finally:
            for limiter, waiter in held:
                limiter._leave(waiter)
        self.acquired += 1
        self.waited_seconds += clock.now() - start

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def __repr__(self) -> str:
        label = f"{self.name!r}, " if self.name else ""
        return f"CompositeLimiter({label}{', '.join(map(repr, self.limiters))})"


class AdaptiveLimiter:
    """Paces calls by what the provider accepts: halve on a refusal, creep back on success.

    The protocol for a provider (three calls, nothing else):

    - ``await acquire()`` before every call, before the fixed limiter's own ``acquire``;
    - ``rate_limited(retry_after)`` when the provider refused a call for its rate (a
      rate-limit code, HTTP 429), with its Retry-After in seconds if it sent one;
    - ``ok()`` when a call went through.

    Until the first refusal it lets every call straight through (the fixed limiter
    already keeps the configured rate). A refusal cuts the rate by ``decrease`` (not
    below ``floor``) and, with a Retry-After, holds every start until it has passed; one
    refusal per ``cooldown`` seconds counts, since the calls already in flight were sent
    at the old rate and will be refused together. Each success adds ``ceiling / recovery``
    calls/s, so after ``recovery`` successes a halved rate is back at the ceiling.

    ``effective_rate`` is calls started per second between the first and the last start;
    ``slowdowns`` counts the cuts and ``lowest`` is the lowest rate reached (calls/s).
    """

    def __init__(
        self,
        ceiling: float,
        *,
        floor: float | None = None,
        decrease: float = 0.5,
        recovery: int = 200,
        cooldown: float = 1.0,
        clock: Clock | None = None,
        name: str = "",
    ) -> None:
        if not 0 < ceiling < float("inf"):
            raise ValueError(f"ceiling must be a positive rate, got {ceiling!r}")
        floor = ceiling / 100 if floor is None else floor
        if not 0 < floor <= ceiling:
            raise ValueError(f"floor must be in (0, ceiling], got {floor!r}")
        if not 0 < decrease < 1:
            raise ValueError(f"decrease must be in (0, 1), got {decrease!r}")
        if recovery < 1:
            raise ValueError(f"recovery must be at least 1 call, got {recovery!r}")
        if not 0 <= cooldown < float("inf"):
            raise ValueError(f"cooldown must be a finite number >= 0, got {cooldown!r}")
        self.ceiling = float(ceiling)
        self.floor = float(floor)
        self.decrease = decrease
        self.step = self.ceiling / recovery
        self.cooldown = cooldown
        self.name = name
        self._clock: Clock = LoopClock() if clock is None else clock
        self._lock = anyio.Lock()  # FIFO: callers start in arrival order
        self.rate = self.ceiling
        self.lowest = self.ceiling
        self.slowdowns = 0
        self.acquired = 0
        self._not_before = float("-inf")
        self._last_cut = float("-inf")
        self._first: float | None = None
        self._last = float("-inf")

    @property
    def throttled(self) -> bool:
        """Whether the rate is below the ceiling (pacing is active)."""
        return self.rate < self.ceiling

    def _start_at(self, now: float) -> float:
        start = self._not_before
        if self.throttled:
            start = max(start, self._last + 1.0 / self.rate)
        return max(start, now)

    async def acquire(self) -> None:
        """Wait until the learnt rate allows one more start, then take it."""
        now = self._clock.now()
        if not self._lock.locked() and self._start_at(now) <= now:
            self._record(now)
            return
        async with self._lock:
            while True:  # the rate may change while we sleep: recompute each time
                now = self._clock.now()
                start = self._start_at(now)
                if start <= now:
                    break
                await self._clock.sleep(start - now)
            self._record(now)

    def _record(self, now: float) -> None:
        if self._first is None:
            self._first = now
        self._last = now
        self.acquired += 1

    def rate_limited(self, retry_after: float | None = None) -> None:
        """The provider refused a call for its rate: slow down (and pause for Retry-After)."""
        now = self._clock.now()
        if retry_after is not None and retry_after == retry_after and retry_after > 0:
            self._not_before = max(self._not_before, now + retry_after)
        if now - self._last_cut < self.cooldown:
            return
        self._last_cut = now
        self.rate = max(self.floor, self.rate * self.decrease)
        self.lowest = min(self.lowest, self.rate)
        self.slowdowns += 1

    def ok(self) -> None:
        """A call went through: speed up a little, up to the ceiling."""
        if self.throttled:
            self.rate = min(self.ceiling, self.rate + self.step)

    @property
    def effective_rate(self) -> float | None:
        """Calls started per second so far; None before two starts at different times."""
        if self._first is None or self._last <= self._first:
            return None
        return (self.acquired - 1) / (self._last - self._first)

    def summary(self) -> dict[str, float]:
        """Figures for a run report: rates in calls per second."""
        figures = {
            "configured": round(self.ceiling, 4),
            "current": round(self.rate, 4),
            "lowest": round(self.lowest, 4),
            "slowdowns": float(self.slowdowns),
            "calls": float(self.acquired),
        }
        if self.effective_rate is not None:
            figures["effective"] = round(self.effective_rate, 4)
        return figures

    def __repr__(self) -> str:
        label = f"{self.name!r}, " if self.name else ""
        return f"AdaptiveLimiter({label}{self.rate:.3g}/s of {self.ceiling:.3g}/s)"
