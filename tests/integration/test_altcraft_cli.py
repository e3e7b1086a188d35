"""The CLI against the Altcraft emulator: exit codes, secrets, a killed trigger run, emulate.

The CLI runs in another process, so the emulator here lives on real time; the one
in-flight window these tests need is held open by the emulator, not by a delay.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anyio
import orjson
import pytest
from altcraft_support import (
    TOKEN,
    TRIGGER,
    TRIGGER_ID,
    Altcraft,
    serve_altcraft,
    write_altcraft_config,
)
from conftest import cli, wait_until, write_csv

from sync_engine.emulator.altcraft import AltcraftOptions


@pytest.fixture
async def altcraft() -> AsyncIterator[Altcraft]:
    async with serve_altcraft(AltcraftOptions(task_ready_after=0.02), fake_time=False) as served:
        yield served


def contacts(tmp_path: Path, count: int) -> Path:
    return write_csv(
        tmp_path / "c.csv",
        ["email", "name"],
        [[f"user{i}@example.com", f"Name {i}"] for i in range(count)],
    )


async def test_a_bad_token_exits_3_and_is_never_printed(tmp_path: Path, altcraft: Altcraft) -> None:
    wrong = "wrong-altcraft-token-5521"
    config = write_altcraft_config(tmp_path, altcraft, source=contacts(tmp_path, 3), token=wrong)
    code, out, err = await cli("run", "--config", str(config), "--log-format", "json", "-v")
    assert code == 3
    assert "error 403" in err
    assert wrong not in out + err
    assert TOKEN not in out + err
    assert altcraft.emulator.profiles() == []


async def test_the_tariff_limit_exits_3_and_says_so(tmp_path: Path) -> None:
    async with serve_altcraft(AltcraftOptions(profile_limit=2), fake_time=False) as altcraft:
        config = write_altcraft_config(tmp_path, altcraft, source=contacts(tmp_path, 5))
        code, out, err = await cli("run", "--config", str(config))
        assert code == 3
        assert "tariff limit is reached" in err
        assert TOKEN not in out + err


async def test_a_killed_trigger_run_is_settled_by_the_next_and_never_triggers_twice(
    tmp_path: Path, altcraft: Altcraft
) -> None:
    """SIGKILL while the first task is being polled; the next run reads its status."""
    config = write_altcraft_config(
        tmp_path,
        altcraft,
        source=contacts(tmp_path, 30),
        provider_settings={"trigger_id": TRIGGER_ID, "batch_size": 10, "concurrency": 1},
    )
    release = altcraft.emulator.hold_tasks()
    process = await anyio.open_process(
        [sys.executable, "-m", "sync_engine", "run", "--config", str(config)]
    )
    try:
        await wait_until(lambda: altcraft.emulator.polls["trigger"] >= 1)
    finally:
        process.kill()
        await process.wait()
    assert process.returncode == -signal.SIGKILL
    assert altcraft.emulator.calls[TRIGGER] == 1
    release()
    code, out, err = await cli("run", "--config", str(config), "--json")
    assert code == 0, err
    report = orjson.loads(out)
    assert report["applied"]["inserted"] == 30
    assert altcraft.emulator.calls[TRIGGER] == 3
    profiles = altcraft.emulator.profiles()
    assert len(profiles) == 30
    assert {altcraft.emulator.trigger_count(p) for p in profiles} == {1}


async def test_emulate_altcraft_serves_a_sync(tmp_path: Path) -> None:
    """``sync-engine emulate altcraft --token T`` is a working target for ``run``."""
    process = await anyio.open_process(
        [
            sys.executable,
            "-m",
            "sync_engine",
            "emulate",
            "altcraft",
            "--port",
            "0",
            "--token",
            TOKEN,
            "--export-delay",
            "0.01",
        ]
    )
    try:
        assert process.stdout is not None
        line = b""
        with anyio.fail_after(30):
            while not line.endswith(b"\n"):
                line += await process.stdout.receive(1)
        url = line.decode().split(" on ")[-1].strip()
        assert line.decode().startswith("altcraft emulator listening on http://")
        source = contacts(tmp_path, 4)
        config = tmp_path / "sync.toml"
        config.write_text(
            f'[source]\npath = "{source}"\n\n[provider]\ntype = "altcraft"\nbase_url = "{url}"\n'
            f'token = "{TOKEN}"\ndb_id = 1\ntask_poll_interval = 0.02\n\n'
            '[mapping]\nemail = "email"\nfirst_name = "name"\n',
            encoding="utf-8",
        )
        code, _, err = await cli("run", "--config", str(config))
        assert code == 0, err
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{url}/_emulator/profiles") as got,
        ):
            profiles = await got.json()
        assert sorted(p["fields"]["email"] for p in profiles) == [
            f"user{i}@example.com" for i in range(4)
        ]
        code, out, err = await cli("run", "--config", str(config), "--json")
        assert code == 0, err
        plan = orjson.loads(out)["plan"]
        assert (plan["to_insert"], plan["to_update"], plan["unchanged"]) == (0, 0, 4)
    finally:
        process.kill()
        await process.wait()
