"""Altcraft CLI runs under faults and with a bad token leak no secret anywhere: stdout,
stderr (JSON logs), the rejects CSV, the report JSON, the journal, the work files. And
``sync-engine emulate altcraft --faults`` arms the emulator's faults from the command line."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import orjson
import pytest
from altcraft_support import TOKEN, TRIGGER_ID, Altcraft, serve_altcraft, write_altcraft_config
from conftest import cli, secret_leaks, write_csv

from sync_engine.emulator.altcraft import AltcraftOptions

WRONG = "wrong-altcraft-token-77e3a90c1d"
SECRETS = (TOKEN, WRONG)


@pytest.fixture
async def altcraft() -> AsyncIterator[Altcraft]:
    """The CLI runs in another process with the real clock: so does this emulator."""
    options = AltcraftOptions(task_ready_after=0.02, fault_hang_seconds=1.0, fault_retry_after=0.2)
    async with serve_altcraft(options, fake_time=False) as served:
        yield served


def leaks(tmp_path: Path, *texts: str) -> list[str]:
    return secret_leaks(SECRETS, tmp_path, *texts)


def source(tmp_path: Path) -> Path:
    rows = [[f"s{i}@example.com", "=cmd|' /C calc'!A0"] for i in range(60)]
    rows += [["not-an-email", "bad"], ["x@spamtrap.example.com", "trap"]]
    return write_csv(tmp_path / "c.csv", ["email", "name"], rows)


async def run(tmp_path: Path, config: Path, token: str) -> tuple[int, str, str]:
    (tmp_path / "tmp").mkdir(exist_ok=True)
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
        env={"TMPDIR": str(tmp_path / "tmp"), "ALTCRAFT_TOKEN": token},
    )
    (tmp_path / "report.json").write_text(out, encoding="utf-8")
    return code, out, err


@pytest.mark.parametrize(
    "settings",
    [{"token_in": "header"}, {"token_in": "body", "trigger_id": TRIGGER_ID}],
    ids=["header", "body-trigger"],
)
async def test_a_run_under_faults_prints_and_writes_no_token(
    tmp_path: Path, altcraft: Altcraft, settings: dict[str, object]
) -> None:
    """30% of all calls fail in every survivable way; the token goes in the header, or in
    every JSON body with a trigger (whose batches are journaled with their task ids)."""
    altcraft.emulator.faults.add(kind="any", probability=0.3)
    config = write_altcraft_config(
        tmp_path,
        altcraft,
        source=source(tmp_path),
        token="${ALTCRAFT_TOKEN}",
        provider_settings={
            "timeout": 0.5,
            "batch_size": 10,
            "max_attempts": 8,
            "task_timeout": 3,
            **settings,
        },
        journal={"dir": str(tmp_path / "journal")},
    )
    code, out, err = await run(tmp_path, config, TOKEN)
    report = orjson.loads(out)
    # The two bad rows (exit 1); a trigger batch whose answer was lost is not resent but
    # reported unknown_outcome, and unapplied rows fail the run (exit 3).
    failed = report["applied"]["failed"]
    assert (code, failed) == (1, 0) or (code == 3 and "unknown_outcome" in out), err + out
    assert sum(altcraft.emulator.faults.injected.values()) > 0
    assert "retrying" in err
    assert report["applied"]["inserted"] >= 1
    assert (tmp_path / "rejects.csv").read_text(encoding="utf-8").count("\n") >= 2
    assert any((tmp_path / "journal").iterdir())
    assert leaks(tmp_path, out, err) == []


async def test_a_bad_token_under_faults_fails_clearly_without_printing_either_token(
    tmp_path: Path, altcraft: Altcraft
) -> None:
    altcraft.emulator.faults.add(kind="http_503", count=2)
    config = write_altcraft_config(
        tmp_path,
        altcraft,
        source=source(tmp_path),
        token="${ALTCRAFT_TOKEN}",
        provider_settings={"timeout": 0.5},
        journal={"dir": str(tmp_path / "journal")},
    )
    code, out, err = await run(tmp_path, config, WRONG)
    assert code == 3
    assert "error 403" in err
    assert altcraft.emulator.faults.injected["http_503"] == 2
    assert altcraft.emulator.profiles() == []
    assert leaks(tmp_path, out, err) == []


async def test_emulate_altcraft_faults_are_armed_and_a_bad_spec_is_refused(
    tmp_path: Path,
) -> None:
    """A sync against ``emulate altcraft --faults`` meets the faults and still converges."""
    code, _, err = await cli("emulate", "altcraft", "--port", "0", "--faults", "boom=0.5")
    assert code == 2
    assert "--faults 'boom=0.5'" in err
    assert "unknown fault kind" in err
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
            "--faults",
            "http_502@profiles/import_batch*2,link_expired@download",
        ]
    )
    try:
        assert process.stdout is not None
        line = b""
        with anyio.fail_after(30):
            while not line.endswith(b"\n"):
                line += await process.stdout.receive(1)
        url = line.decode().split(" on ")[-1].strip()
        config = tmp_path / "sync.toml"
        config.write_text(
            f'[source]\npath = "{write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"]])}"'
            f'\n\n[provider]\ntype = "altcraft"\nbase_url = "{url}"\ntoken = "{TOKEN}"\n'
            'db_id = 1\ntask_poll_interval = 0.02\n\n[mapping]\nemail = "email"\n',
            encoding="utf-8",
        )
        code, out, err = await cli("run", "--config", str(config), "--json")
        assert code == 0, err
        report = orjson.loads(out)
        assert report["applied"]["inserted"] == 1
        assert report["retries"] == {"export": 1, "profiles/import_batch": 2}
    finally:
        process.kill()
        await process.wait()
