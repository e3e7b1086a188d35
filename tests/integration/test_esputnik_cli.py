"""The console script against the in-process eSputnik emulator over loopback.

The CLI runs in another process with the real clock, so this emulator uses real time
too, with a short import delay.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import orjson
import pytest
from conftest import cli, write_csv
from esputnik_support import Served, serve_esputnik, validate_exchanges, write_esputnik_config

from sync_engine.emulator import ESputnikOptions


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async with serve_esputnik(ESputnikOptions(import_delay=0.05), fake_time=False) as running:
        yield running


def contacts(tmp_path: Path, count: int) -> Path:
    return write_csv(
        tmp_path / "c.csv",
        ["email", "name"],
        [[f"cli{i}@example.com", "Name" + chr(65 + i)] for i in range(count)],
    )


def fast(**extra: object) -> dict[str, object]:
    return {"import_poll_interval": 0.02, "import_poll_max": 0.05, **extra}


@pytest.mark.parametrize("kind", ["esputnik", "yespo"])
async def test_cli_run_then_plan_shows_convergence(
    tmp_path: Path, served: Served, kind: str
) -> None:
    config = write_esputnik_config(
        tmp_path, served, source=contacts(tmp_path, 5), provider_settings=fast(), kind=kind
    )
    code, out, err = await cli("run", "--config", str(config))
    assert code == 0, err
    assert "5 inserted" in out
    code, out, err = await cli("plan", "--config", str(config), "--json")
    assert code == 0, err
    plan = orjson.loads(out)["plan"]
    assert (plan["to_insert"], plan["to_update"], plan["to_remove"], plan["unchanged"]) == (
        0,
        0,
        0,
        5,
    )
    assert len(served.emulator.contacts()) == 5
    validate_exchanges(served.emulator.exchanges)


async def test_wrong_key_exits_3_and_never_prints_the_key(tmp_path: Path, served: Served) -> None:
    wrong = "esputnik-wrong-key-1234567890"
    config = write_esputnik_config(
        tmp_path, served, source=contacts(tmp_path, 2), api_key="${MY_KEY}"
    )
    code, out, err = await cli(
        "run", "--config", str(config), "--log-format", "json", "-v", env={"MY_KEY": wrong}
    )
    assert code == 3
    assert "refused the API key" in err
    assert wrong not in out + err
    assert served.emulator.calls["contactsBulkUpdate"] == 0
    assert {e.status for e in served.emulator.exchanges} == {401}
    validate_exchanges(served.emulator.exchanges)


async def test_check_config_warns_until_the_source_is_marked_opted_in(
    tmp_path: Path, served: Served
) -> None:
    config = write_esputnik_config(
        tmp_path, served, source=contacts(tmp_path, 1), provider_settings={"source_opted_in": None}
    )
    code, out, err = await cli("check-config", "--config", str(config))
    assert code == 0, err
    assert "source_opted_in = true" in out
    code, out, err = await cli("check-config", "--config", str(config), "--online")
    assert code == 0, err
    assert out.count("source_opted_in = true") == 2  # offline and from the provider's check()
    opted = write_esputnik_config(tmp_path, served, source=contacts(tmp_path, 1))
    code, out, err = await cli("check-config", "--config", str(opted), "--online")
    assert code == 0, err
    assert "source_opted_in" not in out


async def test_emulate_serves_esputnik_with_basic_auth(tmp_path: Path) -> None:
    """``sync-engine emulate esputnik`` answers the API with the given key."""
    import aiohttp

    process = await anyio.open_process(
        [sys.executable, "-m", "sync_engine", "emulate", "esputnik", "--api-key", "k-123456"]
    )
    try:
        assert process.stdout is not None
        line = b""
        with anyio.fail_after(30):
            async for chunk in process.stdout:
                line += chunk
                if b"\n" in line:
                    break
        url = line.decode().strip().rsplit(" ", 1)[1]
        async with aiohttp.ClientSession() as session:
            good = aiohttp.BasicAuth("x", "k-123456")
            async with session.get(f"{url}/api/v1/contacts", auth=good) as response:
                assert response.status == 200
                assert response.headers["TotalCount"] == "0"
            bad = aiohttp.BasicAuth("x", "nope")
            async with session.get(f"{url}/api/v1/contacts", auth=bad) as response:
                assert response.status == 401
    finally:
        process.terminate()
        await process.wait()
