"""The provider-side call counter: a rolling window of accepted calls per API key.

This is what the provider enforces, not a client-side limiter: it only says whether a
call is over the limit. Refused calls are not counted, so a client that waits for the
window to roll recovers. Time comes from the emulator's injectable clock.
"""

from __future__ import annotations

from collections import deque

__all__ = ["CallWindow"]


class CallWindow:
    """At most ``limit`` accepted calls per key within any ``window`` seconds."""

    def __init__(self, *, limit: int, window: float) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a call window needs limit >= 1 and window > 0")
        self.limit = limit
        self.window = window
        # One deque per key; it never holds more than ``limit`` times.
        self._calls: dict[str, deque[float]] = {}

    def _live(self, key: str, now: float) -> deque[float]:
        calls = self._calls.setdefault(key, deque())
        while calls and calls[0] <= now - self.window:
            calls.popleft()
        return calls

    def has_room(self, key: str, now: float) -> bool:
        """Whether one more call would be accepted now."""
        return len(self._live(key, now)) < self.limit

    def record(self, key: str, now: float) -> None:
        """Count an accepted call."""
        self._live(key, now).append(now)

    def count(self, key: str, now: float) -> int:
        """Accepted calls inside the window ending now."""
        return len(self._live(key, now))
