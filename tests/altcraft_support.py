"""Shared helpers for the Altcraft tests: an emulator on loopback and config files for it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import toml_value

from sync_engine import SyncConfig, SyncEngine, SyncReport, load_config
from sync_engine.clock import FakeClock
from sync_engine.emulator.altcraft import AltcraftEmulator, AltcraftOptions
from sync_engine.journal import open_journal, target_of
from sync_engine.journal.store import BatchRecord
from sync_engine.testing import running_emulator

TOKEN = "altcraft-token-8c2f4e71d9b3"
DB_ID = 7
RESOURCE_ID = 3
TRIGGER_ID = 13
TRIGGER = "campaigns/triggers/import_and_start_batch_task"


@dataclass
class Altcraft:
    """The emulator under test, its loopback URL and the clock it shares with the engine."""

    emulator: AltcraftEmulator
    base_url: str
    clock: FakeClock


@asynccontextmanager
async def serve_altcraft(
    options: AltcraftOptions | None = None, *, fake_time: bool = True
) -> AsyncIterator[Altcraft]:
    """An emulator with the synced database, served on loopback.

    ``fake_time``: tasks age on the FakeClock the engine is given (no wall-clock waits);
    a CLI in another process has only real time, so its emulator must use real time.
    """
    clock = FakeClock()
    emulator = AltcraftEmulator(
        token=TOKEN,
        options=options or AltcraftOptions(),
        clock=clock.now if fake_time else time.monotonic,
    )
    emulator.add_database(DB_ID)
    try:
        async with running_emulator(emulator) as base_url:
            yield Altcraft(emulator, base_url, clock)
    finally:
        await emulator.aclose()


def write_altcraft_config(
    tmp_path: Path,
    served: Altcraft,
    *,
    source: Path,
    mapping: Mapping[str, str] | None = None,
    sync: Mapping[str, Any] | None = None,
    provider_settings: Mapping[str, Any] | None = None,
    journal: Mapping[str, Any] | None = None,
    token: str = TOKEN,
) -> Path:
    """A TOML config file pointing at the emulator, as a user would write it."""
    provider: dict[str, Any] = {
        "type": "altcraft",
        "base_url": served.base_url,
        "token": token,
        "db_id": DB_ID,
        "task_poll_interval": 0.05,
        "task_poll_max": 0.1,
        **(provider_settings or {}),
    }
    tables: list[tuple[str, Mapping[str, Any]]] = [
        ("source", {"type": "csv", "path": str(source)}),
        ("provider", provider),
        ("sync", sync or {}),
        ("mapping", mapping or {"email": "email", "first_name": "name"}),
    ]
    if journal:
        tables.append(("journal", journal))
    lines: list[str] = []
    for name, values in tables:
        lines += [f"[{name}]", *(f"{toml_value(k)} = {_toml(v)}" for k, v in values.items()), ""]
    path = tmp_path / "altcraft.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return toml_value(value)


def altcraft_config(tmp_path: Path, served: Altcraft, **kwargs: Any) -> SyncConfig:
    return load_config(write_altcraft_config(tmp_path, served, **kwargs))


async def sync(config: SyncConfig, served: Altcraft, **kwargs: Any) -> SyncReport:
    async with SyncEngine(config, clock=served.clock) as engine:
        report: SyncReport = await engine.run(**kwargs)
        return report


async def journal_batches(config: SyncConfig) -> list[BatchRecord]:
    """The latest run's journaled batches (every plan of it), in batch order."""
    handle = await open_journal(config.journal, target_of(config))
    try:
        (run,) = await handle.journal.history(target_of(config), 1)
        records: list[BatchRecord] = []
        for plan_no in range(1, run.plan_no + 1):
            batches = await handle.journal.batches(run.id, plan_no)
            records += [batches[n] for n in sorted(batches)]
        return records
    finally:
        await handle.journal.aclose()
