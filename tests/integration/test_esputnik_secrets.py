"""No eSputnik credential leaves the engine: CLI runs under every fault and with a wrong
key; stdout, stderr, JSON logs, the report JSON, the rejects CSV, the journal and every
work file are searched for the API key and for the Basic token built from it."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import API_KEY, cli, secret_leaks, write_csv
from esputnik_support import Served, serve_esputnik, write_esputnik_config

from sync_engine.emulator import ESputnikOptions

WRONG_KEY = "wrong-esputnik-key-71c4e0a9d3"


def _forms(key: str) -> tuple[str, ...]:
    """The key, the Basic token the provider sends, and the key alone in base64."""
    token = base64.b64encode(f"sync-engine:{key}".encode()).decode("ascii")
    return key, token, base64.b64encode(key.encode()).decode("ascii")


SECRETS = (*_forms(API_KEY), *_forms(WRONG_KEY))


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    """The CLI runs in another process with the real clock: so does this emulator."""
    options = ESputnikOptions(import_delay=0.05, fault_hang_seconds=1.0, fault_retry_after=1.0)
    async with serve_esputnik(options, fake_time=False) as running:
        yield running


def leaks(tmp_path: Path, *texts: str) -> list[str]:
    return secret_leaks(SECRETS, tmp_path, *texts)


def source(tmp_path: Path) -> Path:
    rows = [[f"s{i}@example.com", "Formula =cmd|' /C calc'!A"] for i in range(60)]
    rows += [["not-an-email", "Bad"], ["digits@example.com", "R2D2"]]  # refused here, there
    return write_csv(tmp_path / "c.csv", ["email", "name"], rows)


async def run(tmp_path: Path, config: Path, key: str) -> tuple[int, str, str]:
    code, out, err = await cli(
        "run",
        "--config",
        str(config),
        "-v",
        "--log-format",
        "json",
        "--json",
        "--rejects",
        str(tmp_path / "rejects.csv"),
        env={"TMPDIR": str(tmp_path / "tmp"), "SYNC_KEY": key},
    )
    (tmp_path / "report.json").write_text(out, encoding="utf-8")  # searched with the rest
    return code, out, err


def config(tmp_path: Path, served: Served, **settings: object) -> Path:
    (tmp_path / "tmp").mkdir()
    return write_esputnik_config(
        tmp_path,
        served,
        source=source(tmp_path),
        api_key="${SYNC_KEY}",
        sync={"mode": "mirror"},
        provider_settings={
            "timeout": 0.5,
            "batch_size": 10,
            "page_size": 10,
            "import_poll_interval": 0.02,
            "import_poll_max": 0.05,
            **settings,
        },
        journal={"dir": str(tmp_path / "journal")},
    )


async def test_an_esputnik_run_under_every_fault_prints_and_writes_no_secret(
    tmp_path: Path, served: Served
) -> None:
    served.emulator.faults.add(kind="any", probability=0.3)
    served.emulator.arm_faults("import_error*2")
    code, out, err = await run(tmp_path, config(tmp_path, served, max_attempts=8), API_KEY)
    assert code == 1, err  # the two bad rows; every fault survived
    assert sum(served.emulator.faults.injected.values()) > 2
    assert "retrying" in err
    assert "ERROR; sending its contacts again" in err
    rejects = (tmp_path / "rejects.csv").read_text(encoding="utf-8")
    assert "not-an-email" in rejects
    assert "digits@example.com" in rejects
    assert any((tmp_path / "journal").iterdir())
    assert leaks(tmp_path, out, err) == []
    planted = tmp_path / "planted.txt"  # the search itself finds a token where one is
    planted.write_text(f"Authorization: Basic {SECRETS[1]}", encoding="utf-8")
    assert f"{planted}: {SECRETS[1]}" in leaks(tmp_path)


async def test_a_wrong_esputnik_key_fails_clearly_without_printing_it(
    tmp_path: Path, served: Served
) -> None:
    code, out, err = await run(tmp_path, config(tmp_path, served), WRONG_KEY)
    assert code == 3
    assert "refused the API key" in out + err
    assert leaks(tmp_path, out, err) == []
