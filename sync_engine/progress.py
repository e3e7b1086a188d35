"""Progress display: a status line on a terminal, nothing under cron."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import IO, Any, Protocol

__all__ = ["NullProgress", "Progress", "TerminalProgress"]


class Progress(Protocol):
    """Receives progress events; implementations must be cheap and never raise."""

    def stage(self, name: str) -> None: ...
    def update(self, stage: str, info: Mapping[str, Any]) -> None: ...
    def close(self) -> None: ...


class NullProgress:
    """The default: library users and cron jobs want no output."""

    def stage(self, name: str) -> None:
        pass

    def update(self, stage: str, info: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class TerminalProgress:
    """One self-overwriting status line on a TTY, at most ten redraws a second."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self._last = 0.0
        self._width = 0

    def stage(self, name: str) -> None:
        self._draw(f"{name}...", force=True)

    def update(self, stage: str, info: Mapping[str, Any]) -> None:
        if stage == "export":
            text = f"export: task {info.get('status')}, waited {info.get('waited', 0):.0f}s"
        elif stage == "download":
            text = f"export: downloaded {info.get('bytes', 0) / 1e6:.1f} MB"
        elif stage == "batches":
            text = f"apply: {info.get('done')}/{info.get('total')} batches"
        else:
            text = f"{stage}: {dict(info)}"
        self._draw(text)

    def close(self) -> None:
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

    def _draw(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        padded = text.ljust(self._width)
        self._width = len(text)
        self.stream.write("\r" + padded)
        self.stream.flush()
