"""The run journal: crash-safe resume, one run at a time, run history, remembered rejects."""

from __future__ import annotations

import re
from dataclasses import dataclass

import xxhash

from sync_engine.clock import Clock
from sync_engine.config import JournalConfig
from sync_engine.sources._dsn import redact_dsn

from ._db import PostgresDatabase, SqliteDatabase
from .identity import config_digest, target_of
from .lock import FileRunLock, PostgresRunLock, RunLock
from .store import BatchRecord, BatchState, Journal, RejectRecord, RunRecord, RunStatus

__all__ = [
    "BatchRecord",
    "BatchState",
    "Journal",
    "JournalHandle",
    "RejectRecord",
    "RunLock",
    "RunRecord",
    "RunStatus",
    "config_digest",
    "open_journal",
    "target_of",
]


@dataclass(frozen=True)
class JournalHandle:
    """An open journal with the lock for one target."""

    journal: Journal
    lock: RunLock


async def open_journal(
    settings: JournalConfig, target: str, *, clock: Clock | None = None
) -> JournalHandle:
    """Open (and create or migrate) the configured journal, with the target's lock."""
    if settings.dsn is not None:
        dsn = settings.dsn.reveal()
        database = await PostgresDatabase.open(dsn, schema=settings.schema)
        journal = Journal(database, label=f"PostgreSQL {redact_dsn(dsn)}")
        lock: RunLock = PostgresRunLock(database, target, clock=clock)
    else:
        sqlite = await SqliteDatabase.open(settings.path)
        journal = Journal(sqlite, label=str(settings.path))
        lock = FileRunLock(settings.dir / "locks" / lock_file_name(target), target, clock=clock)
    try:
        await journal.migrate()
    except BaseException:
        await journal.aclose()
        raise
    return JournalHandle(journal, lock)


def lock_file_name(target: str) -> str:
    """A file name for the target's lock: readable prefix plus a hash for uniqueness."""
    readable = re.sub(r"[^A-Za-z0-9.-]+", "_", target)[:60]
    return f"{readable}-{xxhash.xxh3_64_hexdigest(target.encode())[:8]}.lock"
