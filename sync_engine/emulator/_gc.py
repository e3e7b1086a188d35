"""Keeping a big emulated contact base out of the cyclic garbage collector's way.

An emulated base lives as long as its server, as millions of small tracked objects
(contacts, their sets and dicts). CPython's full collections scan every one of them and
free nothing: at 200,000 contacts each pause took 0.2-0.8 s on a 2-core machine,
stalling every call in flight, so the emulator answered late in bursts and its call
counter (which dates a call when it arrives) saw calls crowd together that the client
had spaced. ``gc.freeze`` moves every object tracked so far into a generation that
collections skip; objects are still freed by reference counting as usual. Only a cycle
that is live at a freeze and dropped later is never reclaimed, so freezes are rare: one
per ``FREEZE_EVERY`` contacts stored (with 5,000, the longest pause at 200,000 contacts
was 34 ms). The collector is the whole process's: only a server that has the process
to itself (``serve_forever``) turns freezing on; an emulator inside a test leaves the
test's objects alone.
"""

from __future__ import annotations

import gc

__all__ = ["FREEZE_EVERY", "LongLived", "freeze_long_lived_objects"]

FREEZE_EVERY = 5_000


class LongLived:
    """Counts stored long-lived objects; freezes the collector's view every so many
    (when the process has turned freezing on)."""

    freezing = False  # for the whole process: see freeze_long_lived_objects

    def __init__(self, every: int = FREEZE_EVERY) -> None:
        self.every = every
        self.freezes = 0
        self._pending = 0

    def stored(self, count: int = 1) -> None:
        self._pending += count
        if LongLived.freezing and self._pending >= self.every:
            gc.freeze()
            self.freezes += 1
            self._pending = 0


def freeze_long_lived_objects() -> None:
    """Let emulated bases freeze the collector's view as they grow (process-wide)."""
    LongLived.freezing = True
