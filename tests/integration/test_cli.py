"""The console script, run as a real process against the in-process emulator over loopback."""

from __future__ import annotations

import csv
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import orjson
import pytest
from conftest import API_KEY, Provider, cli, serve_provider, write_config, write_csv

from sync_engine.emulator import EmulatedContact, EmulatorOptions


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    """The CLI runs in another process with the real clock: so does this emulator."""
    async with serve_provider(
        EmulatorOptions(export_processing_after=0.01, export_ready_after=0.05), fake_time=False
    ) as served:
        yield served


def contacts(tmp_path: Path, count: int) -> Path:
    return write_csv(
        tmp_path / "c.csv",
        ["email", "name"],
        [[f"cli{i}@example.com", f"C{i}"] for i in range(count)],
    )


async def test_run_then_plan_shows_convergence(tmp_path: Path, provider: Provider) -> None:
    config = write_config(tmp_path, provider, source=contacts(tmp_path, 5))
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


async def test_deletion_guard_exit_code_and_allow_deletes(
    tmp_path: Path, provider: Provider
) -> None:
    lid = provider.list_id
    provider.emulator.seed(
        EmulatedContact(email=f"cli{i}@example.com", email_list_ids={lid}) for i in range(10)
    )
    config = write_config(tmp_path, provider, source=contacts(tmp_path, 5), sync={"mode": "mirror"})
    code, out, err = await cli("run", "--config", str(config))
    assert code == 3
    assert "deletion guard" in err
    assert "--allow-deletes 5" in err
    assert provider.emulator.calls["importContacts"] == 0
    code, out, err = await cli("run", "--config", str(config), "--allow-deletes", "5", "--json")
    assert code == 0, err
    assert orjson.loads(out)["applied"]["removed"] == 5


async def test_invalid_key_exits_3_and_never_prints_the_key(
    tmp_path: Path, provider: Provider
) -> None:
    wrong = "cli-wrong-key-1234567890"
    config = write_config(tmp_path, provider, source=contacts(tmp_path, 2), api_key="${MY_KEY}")
    code, out, err = await cli(
        "run", "--config", str(config), "--log-format", "json", "-v", env={"MY_KEY": wrong}
    )
    assert code == 3
    assert "invalid_api_key" in err
    assert wrong not in out + err


async def test_rejected_rows_exit_1_with_a_rejects_file(tmp_path: Path, provider: Provider) -> None:
    source = write_csv(
        tmp_path / "c.csv",
        ["email", "name"],
        [
            ["ok@example.com", "=HYPERLINK(1)"],
            ["x@spamtrap.example.com", "=cmd|'/C calc'!A0"],
            ["broken", "B"],
        ],
    )
    config = write_config(tmp_path, provider, source=source)
    rejects = tmp_path / "rejects.csv"
    code, _out, err = await cli("run", "--config", str(config), "--rejects", str(rejects))
    assert code == 1, err
    with rejects.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["stage"], r["line"]) for r in rows} == {("provider", "3"), ("local", "4")}
    assert all(not r["key"].startswith("=") for r in rows)
    assert provider.emulator.contact(email="ok@example.com") is not None


async def test_faults_are_survived_and_the_key_never_leaks(
    tmp_path: Path, provider: Provider
) -> None:
    """Retries over 503s and rate limits; nothing printed anywhere contains the key."""
    provider.emulator.faults.add(method="importContacts", kind="http_503", count=1)
    provider.emulator.faults.add(method="importContacts", kind="rate_limited", count=1)
    config = write_config(
        tmp_path, provider, source=contacts(tmp_path, 3), provider_settings={"max_attempts": 4}
    )
    code, out, err = await cli("run", "--config", str(config), "-v", "--log-format", "json")
    assert code == 0, err
    assert "retrying" in err
    assert API_KEY not in out + err
    assert len(provider.emulator.contacts()) == 3


async def test_bad_config_exits_2_naming_the_key(tmp_path: Path, provider: Provider) -> None:
    config = write_config(
        tmp_path, provider, source=contacts(tmp_path, 1), provider_settings={"batch_size": 501}
    )
    code, _, err = await cli("run", "--config", str(config))
    assert code == 2
    assert "[provider] batch_size" in err
    code, _out, err = await cli("run", "--config", str(tmp_path / "missing.toml"))
    assert code == 2
    assert "not found" in err


async def test_check_config_offline_and_online(tmp_path: Path, provider: Provider) -> None:
    config = write_config(tmp_path, provider, source=contacts(tmp_path, 1))
    code, out, err = await cli("check-config", "--config", str(config), "--online")
    assert code == 0, err
    assert "key, list and fields ok" in out
    assert f"journal: {tmp_path / '.sync-engine' / 'journal.sqlite'}" in out
    missing_field = write_config(
        tmp_path,
        provider,
        source=contacts(tmp_path, 1),
        mapping={"email": "email", "Nickname": "name"},
    )
    code, _, err = await cli("check-config", "--config", str(missing_field), "--online")
    assert code == 2
    assert "Nickname: no such user field" in err


async def test_emulate_command_serves_a_working_emulator(tmp_path: Path) -> None:
    """`sync-engine emulate` in its own process, seeded from a file, answers the real API."""
    seed = tmp_path / "seed.json"
    seed.write_bytes(
        orjson.dumps(
            {
                "lists": ["Main"],
                "fields": ["Name"],
                "contacts": [{"email": "s@example.com", "email_list_ids": [1]}],
            }
        )
    )
    async with await anyio.open_process(
        [
            sys.executable,
            "-m",
            "sync_engine",
            "emulate",
            "unisender",
            "--port",
            "0",
            "--api-key",
            "k-emul-123",
            "--seed",
            str(seed),
        ],
    ) as process:
        assert process.stdout is not None
        line = b""
        with anyio.fail_after(20):
            async for chunk in process.stdout:
                line += chunk
                if b"\n" in line:
                    break
        url = line.decode().split("listening on ")[1].strip()
        import aiohttp

        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{url}/en/api/getLists", data={"api_key": "k-emul-123", "format": "json"}
            ) as response:
                body = await response.json()
            async with session.get(f"{url}/_emulator/contacts") as response:
                seeded = await response.json()
        process.terminate()
    assert body == {"result": [{"id": 1, "title": "Main"}]}
    assert [c["email"] for c in seeded] == ["s@example.com"]


async def test_demo_runs_a_real_sync_and_converges() -> None:
    code, out, err = await cli("demo")
    assert code == 0, out + err
    assert "kept as the provider has them: unsubscribed.user@example.com" in out
    assert "converged: the second run planned zero changes" in out
    assert "not-an-email" in out
