"""No secret leaves the engine: runs under faults, with a bad key, with a password in a
PostgreSQL DSN; everything printed, logged and written is searched for the secrets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import (
    API_KEY,
    PG_DSN,
    Provider,
    cli,
    secret_leaks,
    serve_provider,
    write_config,
    write_csv,
)

from sync_engine.emulator import EmulatorOptions

WRONG_KEY = "wrong-api-key-9d2c77e1b4"
PG_PASSWORD = "Pg-S3cret-pa55word"
SECRETS = (API_KEY, WRONG_KEY, PG_PASSWORD)


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    """The CLI runs in another process with the real clock: so does this emulator."""
    options = EmulatorOptions(
        export_processing_after=0.01, export_ready_after=0.05, fault_hang_seconds=1.0
    )
    async with serve_provider(options, fake_time=False) as served:
        yield served


def leaks(tmp_path: Path, *texts: str) -> list[str]:
    return secret_leaks(SECRETS, tmp_path, *texts)


def source(tmp_path: Path) -> Path:
    rows = [[f"s{i}@example.com", "=cmd|' /C calc'!A0"] for i in range(60)]
    rows += [["not-an-email", "bad"], ["x@spamtrap.example.com", "trap"]]
    return write_csv(tmp_path / "c.csv", ["email", "name"], rows)


async def run(tmp_path: Path, config: Path, env: dict[str, str]) -> tuple[int, str, str]:
    return await cli(
        "run",
        "--config",
        str(config),
        "-v",
        "--log-format",
        "json",
        "--json",
        "--rejects",
        str(tmp_path / "rejects.csv"),
        env={"TMPDIR": str(tmp_path / "tmp"), **env},
    )


async def test_a_run_under_every_fault_prints_and_writes_no_secret(
    tmp_path: Path, provider: Provider
) -> None:
    (tmp_path / "tmp").mkdir()
    provider.emulator.faults.add(kind="any", probability=0.3)
    config = write_config(
        tmp_path,
        provider,
        source=source(tmp_path),
        api_key="${SYNC_KEY}",
        provider_settings={
            "timeout": 0.5,
            "batch_size": 10,
            "max_attempts": 8,
            "export_timeout": 3,
        },
        journal={"dir": str(tmp_path / "journal")},
    )
    code, out, err = await run(tmp_path, config, {"SYNC_KEY": API_KEY})
    assert code == 1, err  # the two bad rows; every fault survived
    assert sum(provider.emulator.faults.injected.values()) > 0
    assert "retrying" in err
    assert (tmp_path / "rejects.csv").read_text(encoding="utf-8").count("\n") >= 2
    assert leaks(tmp_path, out, err) == []


async def test_a_bad_key_fails_clearly_without_printing_it(
    tmp_path: Path, provider: Provider
) -> None:
    (tmp_path / "tmp").mkdir()
    config = write_config(
        tmp_path,
        provider,
        source=source(tmp_path),
        api_key="${SYNC_KEY}",
        journal={"dir": str(tmp_path / "journal")},
    )
    code, out, err = await run(tmp_path, config, {"SYNC_KEY": WRONG_KEY})
    assert code == 3
    assert "invalid_api_key" in out + err
    assert leaks(tmp_path, out, err) == []


async def test_a_password_in_a_postgres_journal_dsn_never_shows(
    tmp_path: Path, provider: Provider, pg_schema: str
) -> None:
    """A working PostgreSQL journal whose DSN carries a password (trust auth ignores it)."""
    (tmp_path / "tmp").mkdir()
    dsn = PG_DSN.replace("postgres@", f"postgres:{PG_PASSWORD}@")
    provider.emulator.faults.add(kind="http_503", method="importContacts", count=2)
    config = write_config(
        tmp_path,
        provider,
        source=source(tmp_path),
        api_key="${SYNC_KEY}",
        journal={"dsn": "${JOURNAL_DSN}", "schema": pg_schema},
    )
    env = {"SYNC_KEY": API_KEY, "JOURNAL_DSN": dsn}
    code, out, err = await run(tmp_path, config, env)
    assert code == 1, err  # the two bad rows
    assert leaks(tmp_path, out, err) == []
    code, out, err = await cli("history", "--config", str(config), env=env)
    assert code == 0, err
    assert leaks(tmp_path, out, err) == []
    journal = await journal_text(pg_schema)
    assert "x@spamtrap.example.com" in journal  # the provider's reject, remembered
    assert leaks(tmp_path, journal) == []


async def journal_text(schema: str) -> str:
    """Every row of every table of the journal's schema, as text."""
    import asyncpg

    connection = await asyncpg.connect(PG_DSN)
    try:
        tables = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
        assert tables, f"no journal tables in {schema}"
        parts = []
        for table in tables:
            rows = await connection.fetch(
                f'SELECT t::text FROM "{schema}"."{table["table_name"]}" t'
            )
            parts += [str(row[0]) for row in rows]
    finally:
        await connection.close()
    return "\n".join(parts)


async def test_an_unreachable_postgres_dsn_fails_clearly_without_its_password(
    tmp_path: Path, provider: Provider
) -> None:
    (tmp_path / "tmp").mkdir()
    config = write_config(
        tmp_path,
        provider,
        source=source(tmp_path),
        api_key="${SYNC_KEY}",
        journal={"dsn": "${JOURNAL_DSN}"},
    )
    dsn = f"postgresql://sync:{PG_PASSWORD}@127.0.0.1:1/nowhere?connect_timeout=2"
    code, out, err = await run(tmp_path, config, {"SYNC_KEY": API_KEY, "JOURNAL_DSN": dsn})
    assert code == 3
    assert "127.0.0.1" in out + err
    assert leaks(tmp_path, out, err) == []
