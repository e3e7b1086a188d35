"""Time as a seam: the engine reads and waits on a ``Clock`` so tests never sleep.

``LoopClock`` is the real thing (the event loop's monotonic clock). ``FakeClock`` is a
virtual clock for tests: ``sleep`` does not wait in wall time, it parks the task until
virtual time reaches its deadline, and virtual time jumps straight to the earliest
deadline once every task on the event loop is waiting. Concurrent sleepers therefore
wake in deadline order, exactly as they would in real time, only instantly.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import weakref
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import anyio
import anyio.lowlevel

__all__ = ["Clock", "FakeClock", "LoopClock"]


class Clock(Protocol):
    """Where the engine gets the time and how it waits; inject ``FakeClock`` in tests."""

    def now(self) -> float:
        """Monotonic seconds; only differences between readings mean anything."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (zero or less: just yield to other tasks)."""
        ...


class LoopClock:
    """The event loop's own clock: ``anyio.current_time()`` and ``anyio.sleep``."""

    def now(self) -> float:
        return anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "LoopClock()"


# Consecutive quiet checkpoints before a driver calls the loop idle. Two, so that between
# them the event loop also polls its selector once (ready I/O would show up as callbacks).
_QUIET_ROUNDS = 2
# Without access to the loop's ready queue, "quiet" can only mean "nobody touched this
# clock": wait much longer before deciding, so short await chains elsewhere can finish.
_QUIET_ROUNDS_BLIND = 50

# Per event loop: how many FakeClock drivers are spinning on it right now. Each spinning
# driver keeps exactly one callback in the loop's ready queue, so a driver must not count
# the others' callbacks as work, or two FakeClocks on one loop would keep each other
# awake forever. Keyed weakly by loop; the only state shared between FakeClock instances.
_SPINNING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()


def _ready_queue() -> tuple[asyncio.AbstractEventLoop, deque[object]] | None:
    """The running asyncio loop and its queue of runnable callbacks, where it has one.

    ``_ready`` is private to asyncio's own loops, but it is the only way to see that
    nothing else can run; uvloop or trio have none, and we fall back to a heuristic.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not on asyncio
        return None
    ready = getattr(loop, "_ready", None)
    return (loop, ready) if isinstance(ready, deque) else None


@dataclass(eq=False)
class _Sleeper:
    """One task parked in ``FakeClock.sleep``."""

    deadline: float
    seq: int
    woken: bool = False
    # Set to wake the task: because its deadline came, or to hand it the driver's role.
    event: anyio.Event | None = field(default=None, repr=False)


class FakeClock:
    """Virtual time for tests; shared by every component of one test.

    Semantics:

    - ``now()`` is virtual time, starting at ``start``; it only moves forward.
    - ``sleep(s)`` records ``s`` in ``sleeps`` and parks the task until virtual time reaches
      ``now() + s``. Sleepers wake in (deadline, call order) order.
    - With ``auto_advance`` (the default), once no task on the event loop can run (all are
      waiting on this clock, on events, on queues...), virtual time jumps to the earliest
      deadline and only the sleepers due then wake; they run (and may sleep again) before
      the next jump. So concurrent sleepers do not serialise: tasks sleeping 3, 1 and 2
      seconds together wake at virtual 1, 2 and 3.
    - With ``auto_advance=False`` time moves only when the test calls ``advance``.

    Idle detection needs the asyncio event loop's ready queue; on other loops it falls back
    to "nobody used this clock for a while". A task waiting on real I/O (a socket, a worker
    thread) is not runnable, so time may jump while a request is in flight, which can make
    an in-process server see calls at other times than the client did. Bracket such work
    with ``hold()``/``release()`` (or ``with clock.holding():``), e.g. from aiohttp
    ``TraceConfig`` request start/end hooks: no jump happens while a hold is active. A task
    that spins forever without waiting keeps virtual time still, as it would starve a real
    loop. ``anyio.wait_all_tasks_blocked()`` never returns while an auto-advancing clock has
    sleepers (the one advancing time keeps yielding); use it with ``auto_advance=False``.
    """

    def __init__(self, start: float = 0.0, *, auto_advance: bool = True) -> None:
        self._now = float(start)
        self._auto_advance = auto_advance
        self._heap: list[tuple[float, int, _Sleeper]] = []
        self._seq = 0
        # The parked task currently responsible for advancing time (auto mode only).
        self._driver: _Sleeper | None = None
        # Bumped by every use of the clock: the blind idle check's sign of life.
        self._activity = 0
        # Active holds (real work in flight); set ``_released`` when they drop to zero.
        self._holds = 0
        self._released: anyio.Event | None = None
        self.sleeps: list[float] = []

    def now(self) -> float:
        self._activity += 1
        return self._now

    @property
    def pending(self) -> int:
        """How many tasks are parked in ``sleep`` right now."""
        return len(self._heap)

    def hold(self) -> None:
        """Keep auto-advance from jumping until the matching ``release()``; holds nest."""
        self._activity += 1
        self._holds += 1

    def release(self) -> None:
        """End one ``hold()``; time may jump again once every hold is released."""
        if self._holds <= 0:
            raise RuntimeError("FakeClock.release() without a matching hold()")
        self._activity += 1
        self._holds -= 1
        if self._holds == 0 and self._released is not None:
            self._released.set()
            self._released = None

    @contextmanager
    def holding(self) -> Iterator[None]:
        """``hold()`` for the duration of a ``with`` block."""
        self.hold()
        try:
            yield
        finally:
            self.release()

    def advance(self, seconds: float) -> None:
        """Move virtual time forward now, waking every sleeper that has become due.

        All due sleepers wake at the new time (in deadline order); with auto-advance,
        sleepers whose deadlines fall in between would instead wake one deadline at a time.
        """
        if not seconds >= 0:
            raise ValueError(f"cannot advance a clock by {seconds!r} seconds")
        self._activity += 1
        self._now += seconds
        while self._heap and self._heap[0][0] <= self._now:
            self._wake(heapq.heappop(self._heap)[2])

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._activity += 1
        if math.isnan(seconds):
            raise ValueError("cannot sleep for NaN seconds")
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        if math.isinf(seconds):
            # A deadline at infinity must never become the time to jump to.
            await anyio.sleep_forever()
            return
        deadline = self._now + seconds
        if deadline <= self._now:
            # Tiny sleeps must still move time, or a caller polling "until t" would spin.
            deadline = math.nextafter(self._now, math.inf)
        self._seq += 1
        me = _Sleeper(deadline, self._seq)
        heapq.heappush(self._heap, (deadline, me.seq, me))
        try:
            while not me.woken:
                if self._auto_advance and self._driver is None:
                    self._driver = me
                    try:
                        await self._drive(me)
                    finally:
                        self._driver = None
                else:
                    me.event = anyio.Event()
                    await me.event.wait()
        finally:
            if not me.woken:  # cancelled: leave no ghost deadline to jump to
                self._heap.remove((me.deadline, me.seq, me))
                heapq.heapify(self._heap)
            if self._auto_advance and self._driver is None:
                self._hand_off()

    def _wake(self, sleeper: _Sleeper) -> None:
        sleeper.woken = True
        if sleeper.event is not None:
            sleeper.event.set()

    def _hand_off(self) -> None:
        """Ask the earliest parked sleeper to take over advancing time."""
        if self._heap:
            event = self._heap[0][2].event
            if event is not None:
                event.set()

    async def _drive(self, me: _Sleeper) -> None:
        """Advance time deadline by deadline whenever the loop is idle, until ``me`` is due."""
        while True:
            await self._settle()
            if me.woken:  # a manual advance() got there first
                return
            if self._holds:
                # Block (rather than spin) until the held work is done, then re-check.
                if self._released is None:
                    self._released = anyio.Event()
                await self._released.wait()
                continue
            self._now = max(self._now, self._heap[0][0])
            while self._heap and self._heap[0][0] <= self._now:
                sleeper = heapq.heappop(self._heap)[2]
                self._wake(sleeper)
                if sleeper is me:
                    # Let the sleepers due before us resume first; the rest of this
                    # deadline's sleepers are woken by the next driver, in order.
                    await anyio.lowlevel.checkpoint()
                    return

    async def _settle(self) -> None:
        """Return once no other task on the event loop can run."""
        found = _ready_queue()
        if found is None:
            await self._settle_blind()
            return
        loop, ready = found
        _SPINNING[loop] = _SPINNING.get(loop, 0) + 1
        try:
            quiet = 0
            while quiet < _QUIET_ROUNDS:
                await anyio.lowlevel.checkpoint()
                # Our own callback has been taken off the queue; every other spinning
                # driver has exactly one there. Anything beyond those is real work.
                others = _SPINNING[loop] - 1
                quiet = quiet + 1 if len(ready) <= others else 0
        finally:
            _SPINNING[loop] -= 1

    async def _settle_blind(self) -> None:
        """Return once nobody has used this clock for a good many loop turns."""
        quiet = 0
        while quiet < _QUIET_ROUNDS_BLIND:
            before = self._activity
            await anyio.lowlevel.checkpoint()
            quiet = quiet + 1 if self._activity == before else 0

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r}, pending={len(self._heap)})"
