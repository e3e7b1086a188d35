"""The SELECT built for a table source: every name quoted, never read as SQL."""

from __future__ import annotations

from sync_engine.sources._sql import describe, select_sql


def test_table_and_columns_are_quoted_and_deduplicated() -> None:
    assert select_sql("crm.people", ["email", "Name", "email"]) == (
        'SELECT "email", "Name" FROM "crm"."people"'
    )
    assert select_sql("people", []) == 'SELECT * FROM "people"'
    assert select_sql('we"ird', ['a"; DROP TABLE x; --']) == (
        'SELECT "a""; DROP TABLE x; --" FROM "we""ird"'
    )
    assert select_sql("t", ["a`b"], quote="`") == "SELECT `a``b` FROM `t`"


def test_queries_are_shown_on_one_shortened_line() -> None:
    assert describe(None, "crm.people") == "table crm.people"
    assert describe("SELECT email\n  FROM people", None) == "query: SELECT email FROM people"
    shown = describe("SELECT " + "x, " * 100 + "y FROM t", None)
    assert len(shown) == len("query: ") + 120
    assert shown.endswith("...")
