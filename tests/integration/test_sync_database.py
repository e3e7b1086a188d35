"""End-to-end syncs from a real PostgreSQL server and a real SQLite file to the emulator."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import Provider
from databases import PgSchema, temporary_schema, write_source_config

from sync_engine import Outcome, SourceError, SyncEngine, SyncReport, load_config
from sync_engine.emulator import EmulatedContact

MSK = timezone(timedelta(hours=3))


@pytest.fixture
async def pg() -> AsyncIterator[PgSchema]:
    async with temporary_schema() as schema:
        yield schema


async def sync(path: Path, provider: Provider, **kwargs: Any) -> SyncReport:
    async with SyncEngine(load_config(path), clock=provider.clock) as engine:
        return await engine.run(**kwargs)


def pg_source(pg: PgSchema, **settings: Any) -> dict[str, Any]:
    return {"type": "postgresql", "dsn": pg.dsn, "chunk_size": 3, **settings}


async def test_a_postgres_table_syncs_every_type_and_the_second_run_plans_nothing(
    tmp_path: Path, provider: Provider, pg: PgSchema
) -> None:
    """Types map as documented, rules apply, a bad row is reported; then convergence."""
    for name, kind in (("Born", "date"), ("Seen", "string"), ("Score", "number"), ("Vip", "bool")):
        provider.emulator.add_field(name, kind)
    other = provider.list_id + 1
    await pg.execute(
        "CREATE TABLE {schema}.people (id int, email text, phone text, labels text[],"
        " lists int[], name text, city text, born date, seen timestamptz, score numeric,"
        " vip boolean, photo bytea)"
    )
    await pg.insert(
        "people",
        ["id", "email", "phone", "labels", "lists", "name", "city", "born", "seen", "score", "vip"],
        [
            (
                1,
                " Anna.Ivanova@Example.com ",
                "+7 916 123 45 01",
                ["VIP", " b2b"],
                [other],
                "  Анна ",
                "Москва",
                date(1990, 3, 1),
                datetime(2024, 1, 1, 12, 30, tzinfo=MSK),
                Decimal("1.50"),
                True,
            ),
            (2, "boris@example.com", None, None, None, "Boris", None, None, None, None, False),
            (3, "not-an-email", None, None, None, "X", None, None, None, None, None),
        ],
    )
    await pg.execute("UPDATE {schema}.people SET photo = '\\x00'::bytea WHERE id = 2")
    config = write_source_config(
        tmp_path,
        provider,
        source=pg_source(pg, query=f"SELECT * FROM {pg.table('people')} ORDER BY id", name="crm"),
        mapping={
            "email": "email",
            "phone": "phone",
            "tags": {"column": "labels", "transforms": ["trim", "lower"]},
            "email_list_ids": "lists",
            "Name": {"column": "name", "transforms": ["trim"]},
            "City": {"column": "city", "default": "Unknown"},
            "Born": "born",
            "Seen": "seen",
            "Score": "score",
            "Vip": "vip",
        },
    )
    first = await sync(config, provider)
    assert first.outcome is Outcome.REJECTED_ROWS, first.render_text()
    assert (first.plan.local_rows, first.inserted, first.plan.invalid_local) == (3, 2, 1)
    [problem] = first.problems.kept
    assert (problem.source, problem.line, problem.field) == ("crm", 3, "email")
    anna = provider.emulator.contact(email="anna.ivanova@example.com")
    assert anna is not None
    assert anna.phone == "+79161234501"
    assert anna.tags == {"vip", "b2b"}
    assert anna.email_list_ids == {provider.list_id, other}
    assert anna.fields == {
        "Name": "Анна",
        "City": "Москва",
        "Born": "01.03.1990",
        "Seen": "2024-01-01 09:30:00",
        "Score": "1.50",
        "Vip": "1",
    }
    boris = provider.emulator.contact(email="boris@example.com")
    assert boris is not None
    assert boris.fields == {
        "Name": "Boris",
        "City": "Unknown",
        "Born": "",
        "Seen": "",
        "Score": "",
        "Vip": "0",
    }

    imports = provider.emulator.calls["importContacts"]
    second = await sync(config, provider)
    assert second.plan.changes == 0, second.render_text()
    assert second.plan.unchanged == 2
    assert provider.emulator.calls["importContacts"] == imports


async def test_null_keep_leaves_the_providers_values_alone_and_converges(
    tmp_path: Path, provider: Provider, pg: PgSchema
) -> None:
    """A kept NULL is neither compared nor sent, even next to rows that carry the field."""
    lid = provider.list_id
    provider.emulator.seed(
        EmulatedContact(
            email=f"k{i}@example.com", email_list_ids={lid}, fields={"Name": "Old", "City": "Oslo"}
        )
        for i in range(6)
    )
    await pg.execute("CREATE TABLE {schema}.t (email text, name text, city text)")
    rows: list[tuple[str, str | None, str | None]] = [
        ("k0@example.com", "New", None),  # City kept as Oslo; Name updated
        ("k1@example.com", "New", "Bergen"),  # both updated, in another batch shape
        ("k2@example.com", None, None),  # Name cleared (its NULL clears); City kept
        ("k3@example.com", "Old", None),  # nothing to do
        ("k4@example.com", "New", None),
        ("k5@example.com", "New", "Bergen"),
        ("new@example.com", "Newcomer", None),  # inserted without City
    ]
    await pg.insert("t", ["email", "name", "city"], rows)
    config = write_source_config(
        tmp_path,
        provider,
        source=pg_source(pg, table=pg.table("t")),
        mapping={"email": "email", "Name": "name", "City": {"column": "city", "null": "keep"}},
        provider_settings={"batch_size": 2},
    )
    first = await sync(config, provider)
    assert (first.inserted, first.updated, first.plan.unchanged) == (1, 5, 1), first.render_text()
    names = {
        c.email: (c.fields.get("Name"), c.fields.get("City")) for c in provider.emulator.contacts()
    }
    assert names == {
        "k0@example.com": ("New", "Oslo"),
        "k1@example.com": ("New", "Bergen"),
        "k2@example.com": ("", "Oslo"),
        "k3@example.com": ("Old", "Oslo"),
        "k4@example.com": ("New", "Oslo"),
        "k5@example.com": ("New", "Bergen"),
        "new@example.com": ("Newcomer", None),
    }
    second = await sync(config, provider)
    assert second.plan.changes == 0, second.render_text()


@pytest.mark.parametrize(
    ("rule", "winner", "kept_row"),
    [("first", "Early", 1), ("last", "Late", 3), ("newest", "Newest", 2)],
)
async def test_duplicate_keys_are_resolved_by_rule_and_reported_with_both_rows(
    tmp_path: Path, provider: Provider, pg: PgSchema, rule: str, winner: str, kept_row: int
) -> None:
    await pg.execute("CREATE TABLE {schema}.t (id int, email text, name text, updated timestamptz)")
    await pg.insert(
        "t",
        ["id", "email", "name", "updated"],
        [
            (1, "dup@example.com", "Early", datetime(2024, 1, 1, tzinfo=UTC)),
            (2, " DUP@Example.com", "Newest", datetime(2024, 6, 1, tzinfo=UTC)),
            (3, "dup@example.com", "Late", None),
            (4, "solo@example.com", "Solo", None),
        ],
    )
    settings: dict[str, Any] = {"duplicates": rule}
    if rule == "newest":
        settings["newest_by"] = "updated"
    config = write_source_config(
        tmp_path,
        provider,
        source=pg_source(pg, query=f"SELECT * FROM {pg.table('t')} ORDER BY id", **settings),
        mapping={"email": "email", "Name": "name"},
    )
    report = await sync(config, provider)
    assert (report.inserted, report.plan.duplicates) == (2, 2), report.render_text()
    contact = provider.emulator.contact(email="dup@example.com")
    assert contact is not None
    assert contact.fields["Name"] == winner
    problems = [p for p in report.problems.kept if p.code == "duplicate"]
    assert sorted(p.line for p in problems if p.line) == sorted({1, 2, 3} - {kept_row})
    for problem in problems:
        assert problem.key == "dup@example.com"
        assert f"postgresql:query:{kept_row}" in problem.reason
        assert f"postgresql:query:{problem.line}" in problem.reason
    again = await sync(config, provider)
    assert again.plan.changes == 0, again.render_text()
    assert again.plan.duplicates == 2  # never silent, on every run


async def test_a_missing_column_stops_the_run_before_anything_is_sent(
    tmp_path: Path, provider: Provider, pg: PgSchema
) -> None:
    await pg.execute("CREATE TABLE {schema}.t (email text, nme text)")
    config = write_source_config(
        tmp_path,
        provider,
        source=pg_source(pg, query=f"SELECT email, nme FROM {pg.table('t')}"),
        mapping={"email": "email", "Name": "name"},
    )
    with pytest.raises(SourceError, match=r"column 'name' \(mapped to Name\) is not in the result"):
        await sync(config, provider)
    assert provider.emulator.calls["importContacts"] == 0


async def test_a_sqlite_file_syncs_with_transforms_and_converges(
    tmp_path: Path, provider: Provider
) -> None:
    provider.emulator.add_field("Born", "date")
    db = tmp_path / "crm.db"
    connection = sqlite3.connect(db)
    connection.executescript(
        "CREATE TABLE people (email TEXT, name TEXT, labels TEXT, born TEXT, updated INTEGER);"
        "INSERT INTO people VALUES ('a@example.com', 'ann', 'x|Y', '1990-03-01', 1);"
        "INSERT INTO people VALUES ('a@example.com', 'anna', 'x', '1990-03-02', 2);"
        "INSERT INTO people VALUES ('b@example.com', NULL, NULL, NULL, 1);"
    )
    connection.commit()
    connection.close()
    config = write_source_config(
        tmp_path,
        provider,
        source={
            "type": "sqlite",
            "path": str(db),
            "table": "people",
            "duplicates": "newest",
            "newest_by": "updated",
            "null": "keep",
        },
        mapping={
            "email": "email",
            "Name": {"column": "name", "transforms": ["upper"]},
            "tags": {"column": "labels", "split": "|", "transforms": ["lower"]},
            "Born": {"column": "born", "date_format": "%Y.%m.%d"},
        },
    )
    first = await sync(config, provider)
    assert (first.inserted, first.plan.duplicates) == (2, 1), first.render_text()
    a = provider.emulator.contact(email="a@example.com")
    assert a is not None
    assert (a.fields, a.tags) == ({"Name": "ANNA", "Born": "1990.03.02"}, {"x"})
    b = provider.emulator.contact(email="b@example.com")
    assert b is not None
    assert b.fields == {}
    assert (await sync(config, provider)).plan.changes == 0
