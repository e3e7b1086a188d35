"""Real databases for tests: a throwaway PostgreSQL schema per test, and config writers.

Every test gets its own uniquely named schema, dropped afterwards, so tests never see
each other's tables, run in any order, and can run again and again.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from conftest import API_KEY, Provider, toml_value

PG_DSN = os.environ.get("SYNC_ENGINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class PgSchema:
    """A schema of its own on the real server, and a connection to fill it."""

    connection: asyncpg.Connection
    name: str
    dsn: str = PG_DSN

    def table(self, name: str) -> str:
        """A table's qualified name, as a config's ``table`` key takes it."""
        return f"{self.name}.{name}"

    async def execute(self, sql: str) -> None:
        """Run SQL with ``{schema}`` standing for this test's schema."""
        await self.connection.execute(sql.replace("{schema}", self.name))

    async def insert(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[object]]
    ) -> None:
        """Bulk-load rows with COPY (100,000 rows in a fraction of a second)."""
        await self.connection.copy_records_to_table(
            table, records=rows, columns=list(columns), schema_name=self.name
        )

    async def backends(self) -> int:
        """Server connections whose current or last statement mentions this schema."""
        count = await self.connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
            " AND application_name = 'sync-engine' AND strpos(query, $1) > 0",
            self.name,
        )
        assert isinstance(count, int)
        return count


@asynccontextmanager
async def temporary_schema() -> AsyncIterator[PgSchema]:
    """A fresh schema on the test server, dropped with everything in it afterwards."""
    connection = await asyncpg.connect(PG_DSN)
    name = f"t_{uuid.uuid4().hex[:20]}"
    await connection.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield PgSchema(connection, name)
    finally:
        await connection.execute(f'DROP SCHEMA "{name}" CASCADE')
        await connection.close()


def toml_inline(value: Any) -> str:
    """A TOML value, including lists and inline tables (for mapping rules)."""
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_inline(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_inline(v) for v in value) + "]"
    return toml_value(value)


def write_source_config(
    tmp_path: Path,
    provider: Provider,
    *,
    source: Mapping[str, Any],
    mapping: Mapping[str, Any],
    sync: Mapping[str, Any] | None = None,
    provider_settings: Mapping[str, Any] | None = None,
) -> Path:
    """A config file with any ``[source]`` table, pointing at the emulator."""
    settings: dict[str, Any] = {
        "type": "unisender",
        "base_url": provider.base_url,
        "api_key": API_KEY,
        "list_id": provider.list_id,
        "export_poll_interval": 0.05,
        "export_poll_max": 0.1,
        **(provider_settings or {}),
    }
    lines = ["[source]", *(f"{k} = {toml_inline(v)}" for k, v in source.items())]
    lines += ["", "[provider]", *(f"{k} = {toml_inline(v)}" for k, v in settings.items())]
    lines += ["", "[sync]", *(f"{k} = {toml_inline(v)}" for k, v in (sync or {}).items())]
    lines += ["", "[mapping]", *(f"{k} = {toml_inline(v)}" for k, v in mapping.items())]
    path = tmp_path / "sync.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
