"""The console script with a PostgreSQL source, run as a real process over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from conftest import Provider, cli, serve_provider
from databases import PG_DSN, PgSchema, temporary_schema, write_source_config

from sync_engine.emulator import EmulatorOptions

PASSWORD = "pg-secret-never-printed"


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    """The CLI runs in another process with the real clock: so does this emulator."""
    async with serve_provider(
        EmulatorOptions(export_processing_after=0.01, export_ready_after=0.05), fake_time=False
    ) as served:
        yield served


@pytest.fixture
async def pg() -> AsyncIterator[PgSchema]:
    async with temporary_schema() as schema:
        yield schema


def config(tmp_path: Path, provider: Provider, pg: PgSchema, **mapping: object) -> Path:
    return write_source_config(
        tmp_path,
        provider,
        source={
            "type": "postgresql",
            "dsn": "${CRM_DATABASE_URL}",
            "table": pg.table("people"),
            "name": "crm",
        },
        mapping=mapping or {"email": "email", "Name": {"column": "name", "transforms": ["trim"]}},
    )


async def test_run_from_postgres_then_plan_shows_convergence(
    tmp_path: Path, provider: Provider, pg: PgSchema
) -> None:
    await pg.execute("CREATE TABLE {schema}.people (email text, name text)")
    await pg.insert(
        "people", ["email", "name"], [(f"db{i}@example.com", f" N{i} ") for i in range(7)]
    )
    path = config(tmp_path, provider, pg)
    env = {"CRM_DATABASE_URL": PG_DSN}
    code, out, err = await cli("run", "-c", str(path), env=env)
    assert code == 0, err
    assert "7 inserted" in out
    stored = provider.emulator.contact(email="db3@example.com")
    assert stored is not None
    assert stored.fields["Name"] == "N3"
    code, out, err = await cli("plan", "-c", str(path), "--json", env=env)
    assert code == 0, err
    plan = orjson.loads(out)["plan"]
    assert (plan["to_insert"], plan["to_update"], plan["unchanged"]) == (0, 0, 7)


async def test_a_bad_dsn_exits_3_naming_the_source_and_never_the_password(
    tmp_path: Path, provider: Provider, pg: PgSchema
) -> None:
    path = config(tmp_path, provider, pg)
    dsn = f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/no_such_database"
    code, out, err = await cli(
        "run", "-c", str(path), "-v", "--log-format", "json", env={"CRM_DATABASE_URL": dsn}
    )
    assert code == 3
    assert "crm: cannot connect to postgresql://postgres:***@127.0.0.1:5432/no_such_database" in err
    assert 'database "no_such_database" does not exist' in err
    assert PASSWORD not in out + err
    assert provider.emulator.calls["importContacts"] == 0


async def test_check_config_describes_the_source_and_rules_without_the_password(
    tmp_path: Path, provider: Provider, pg: PgSchema
) -> None:
    path = config(tmp_path, provider, pg)
    dsn = f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/test"
    code, out, err = await cli("check-config", "-c", str(path), env={"CRM_DATABASE_URL": dsn})
    assert code == 0, err
    shown = "postgresql://postgres:***@127.0.0.1:5432/test"
    assert f"source: PostgresSourceConfig {shown} table {pg.name}.people" in out
    assert "mapping: email <- email, Name <- name (trim)" in out
    assert PASSWORD not in out + err
    bad = config(tmp_path, provider, pg, email="email", Name={"column": "n", "split": ","})
    code, _, err = await cli("check-config", "-c", str(bad), env={"CRM_DATABASE_URL": dsn})
    assert code == 2
    assert f"{bad}: [mapping.Name] split: splitting makes a list" in err
