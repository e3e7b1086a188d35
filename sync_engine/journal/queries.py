"""Read-only views of the journal for people: run history and remembered rejects."""

from __future__ import annotations

from sync_engine.config import SyncConfig
from sync_engine.errors import ConfigError

from . import open_journal
from .identity import target_of
from .store import RejectRecord, RunRecord

__all__ = ["read_history", "read_rejects"]


async def read_history(
    config: SyncConfig, *, limit: int = 20, all_targets: bool = False
) -> list[RunRecord]:
    """The last ``limit`` runs of the config's target (or of every target), newest first."""
    _require_journal(config)
    target = target_of(config)
    handle = await open_journal(config.journal, target)
    try:
        return await handle.journal.history(None if all_targets else target, limit)
    finally:
        await handle.journal.aclose()


async def read_rejects(config: SyncConfig) -> list[RejectRecord]:
    """Rows the provider rejected that the journal remembers for the config's target."""
    _require_journal(config)
    target = target_of(config)
    handle = await open_journal(config.journal, target)
    try:
        return list((await handle.journal.rejects(target)).values())
    finally:
        await handle.journal.aclose()


def _require_journal(config: SyncConfig) -> None:
    if not config.journal.enabled:
        raise ConfigError(f"{config.label}: [journal] enabled = false, so there is no journal")
