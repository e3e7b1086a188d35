"""Shared fixtures: an in-process emulator on a free loopback port and config writers."""

from __future__ import annotations

import csv
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from sync_engine import SyncConfig, load_config
from sync_engine.clock import FakeClock
from sync_engine.emulator import EmulatorOptions, UniSenderEmulator
from sync_engine.testing import running_emulator

API_KEY = "test-api-key-5f3b9c1e7a"


@dataclass
class Provider:
    """The emulator under test with its loopback URL and the synced list."""

    emulator: UniSenderEmulator
    base_url: str
    list_id: int
    clock: FakeClock


@pytest.fixture
def emulator_options() -> EmulatorOptions:
    return EmulatorOptions()


@asynccontextmanager
async def serve_provider(options: EmulatorOptions, *, fake_time: bool) -> AsyncIterator[Provider]:
    """An emulator with a synced list and two user fields, served on loopback.

    With ``fake_time`` the emulator's export life cycle runs on the same FakeClock the
    engine is given, so in-process tests never wait on the wall clock. A CLI in another
    process has only real time, so its emulator must use real time too.
    """
    clock = FakeClock()
    emulator = UniSenderEmulator(
        api_key=API_KEY, options=options, clock=clock.now if fake_time else time.monotonic
    )
    list_id = emulator.add_list("Customers")
    emulator.add_list("Other")
    emulator.add_field("Name")
    emulator.add_field("City")
    try:
        async with running_emulator(emulator) as base_url:
            yield Provider(emulator, base_url, list_id, clock)
    finally:
        await emulator.aclose()


@pytest.fixture
async def provider(emulator_options: EmulatorOptions) -> AsyncIterator[Provider]:
    """A UniSender emulator sharing a fake clock with the engine: no wall-clock waits."""
    async with serve_provider(emulator_options, fake_time=True) as served:
        yield served


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(
    tmp_path: Path,
    provider: Provider,
    *,
    source: Path,
    mapping: Mapping[str, str] | None = None,
    sync: Mapping[str, Any] | None = None,
    provider_settings: Mapping[str, Any] | None = None,
    source_settings: Mapping[str, Any] | None = None,
    journal: Mapping[str, Any] | None = None,
    api_key: str = API_KEY,
) -> Path:
    """A TOML config file pointing at the emulator, as a user would write it."""
    mapping = mapping or {"email": "email", "Name": "name"}
    settings: dict[str, Any] = {
        "type": "unisender",
        "base_url": provider.base_url,
        "api_key": api_key,
        "list_id": provider.list_id,
        "export_poll_interval": 0.05,
        "export_poll_max": 0.1,
        **(provider_settings or {}),
    }
    source_table = {"type": "jsonl" if source.suffix == ".jsonl" else "csv", "path": str(source)}
    source_table.update(source_settings or {})
    lines = ["[source]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in source_table.items()]
    lines += ["", "[provider]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in settings.items()]
    lines += ["", "[sync]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in (sync or {}).items()]
    lines += ["", "[mapping]"]
    lines += [f"{toml_value(k)} = {toml_value(v)}" for k, v in mapping.items()]
    if journal:
        lines += ["", "[journal]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in journal.items()]
    path = tmp_path / "sync.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def config_for(tmp_path: Path, provider: Provider, **kwargs: Any) -> SyncConfig:
    return load_config(write_config(tmp_path, provider, **kwargs))


PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A fresh PostgreSQL schema name on the machine's real server, dropped afterwards."""
    import asyncpg

    schema = f"sync_engine_test_{uuid.uuid4().hex[:12]}"
    yield schema
    connection = await asyncpg.connect(PG_DSN)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


async def wait_until(condition: Callable[[], bool], *, within: float = 30.0) -> None:
    """Poll ``condition`` (state of an emulator another process or task drives).

    Nothing notifies the test of such state, so polling is the honest way to observe it;
    the bound keeps a broken run from hanging the suite.
    """
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - observed state, no event to wait on
            await anyio.sleep(0.005)


async def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``python -m sync_engine ARGS``; the test's event loop keeps serving meanwhile."""
    result = await anyio.run_process(
        [sys.executable, "-m", "sync_engine", *args],
        check=False,
        env={**os.environ, **(env or {})},
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def secret_leaks(secrets: Sequence[str], root: Path, *texts: str) -> list[str]:
    """Where any secret appears: in the given texts (output #i) or in any file under
    ``root`` (rejects, report, journal, work files). Configs written with ``${VAR}``s
    hold no secret themselves, so a whole test directory can be searched."""
    found = [f"output #{i}: {s}" for i, text in enumerate(texts) for s in secrets if s in text]
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {s}" for s in secrets if s.encode() in data]
    return found
