"""One run at a time per target: an OS file lock, or a PostgreSQL advisory lock.

Both die with the process that holds them (the kernel drops a ``flock`` when the file
is closed; PostgreSQL drops a session's advisory locks when its connection goes), so a
run killed with SIGKILL never leaves a stale lock behind for the next cron tick.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from typing import IO, Protocol

import xxhash

from sync_engine.clock import Clock, LoopClock
from sync_engine.errors import RunLockedError

from ._db import Database

__all__ = ["FileRunLock", "PostgresRunLock", "RunLock"]

POLL_SECONDS = 0.25


class RunLock(Protocol):
    async def acquire(self, *, wait: float = 0.0) -> None:
        """Take the lock, waiting up to ``wait`` seconds; RunLockedError if still held."""
        ...

    async def release(self) -> None: ...


class FileRunLock:
    """``flock`` on a file named after the target, holding the holder's pid and host."""

    def __init__(self, path: Path, target: str, *, clock: Clock | None = None) -> None:
        self.path = path
        self.target = target
        self._clock = clock or LoopClock()
        self._file: IO[str] | None = None

    async def acquire(self, *, wait: float = 0.0) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        deadline = self._clock.now() + wait
        try:
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if self._clock.now() >= deadline:
                        holder = _read_holder(self.path)
                        raise RunLockedError(
                            f"another run of {self.target} is in progress{holder};"
                            " this run did not start (use --wait SECONDS to wait for it)"
                        ) from None
                    await self._clock.sleep(
                        min(POLL_SECONDS, max(0.0, deadline - self._clock.now()))
                    )
        except BaseException:
            handle.close()
            raise
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {_stamp()}\n")
        handle.flush()
        self._file = handle

    async def release(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()


class PostgresRunLock:
    """A session-level ``pg_try_advisory_lock`` on the journal's own connection."""

    def __init__(self, database: Database, target: str, *, clock: Clock | None = None) -> None:
        self._db = database
        self.target = target
        self._key = xxhash.xxh3_64_intdigest(target.encode()) - 2**63  # signed bigint
        self._clock = clock or LoopClock()
        self._held = False

    async def acquire(self, *, wait: float = 0.0) -> None:
        deadline = self._clock.now() + wait
        while True:
            ((got,),) = await self._db.fetch("SELECT pg_try_advisory_lock(?)", self._key)
            if got:
                self._held = True
                return
            if self._clock.now() >= deadline:
                raise RunLockedError(
                    f"another run of {self.target} is in progress (PostgreSQL advisory lock"
                    f" {self._key} is held); this run did not start (use --wait SECONDS to wait)"
                )
            await self._clock.sleep(min(POLL_SECONDS, max(0.0, deadline - self._clock.now())))

    async def release(self) -> None:
        if self._held:
            self._held = False
            await self._db.execute("SELECT pg_advisory_unlock(?)", self._key)


def _read_holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""
    return f" ({text})" if text else ""


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime())
