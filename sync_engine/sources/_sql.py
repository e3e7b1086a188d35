"""What the database sources share: the SELECT for a table, and column checks.

Identifiers are quoted (a quote inside is doubled), so a table or column name from the
config can never be read as SQL. PostgreSQL quotes with ``"``. SQLite gets backticks:
it reads a double-quoted name that matches no column as a string literal (a legacy
quirk), which would turn a misspelt column into a constant instead of an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sync_engine.errors import SourceError

__all__ = ["check_columns", "describe", "quote_identifier", "select_sql"]

_SHOWN_QUERY_CHARS = 120


def quote_identifier(name: str, quote: str = '"') -> str:
    """``"name"``, safe for any name."""
    return quote + name.replace(quote, quote + quote) + quote


def select_sql(table: str, columns: Sequence[str], *, quote: str = '"') -> str:
    """``SELECT "a", "b" FROM "schema"."table"``; every column when none are named."""
    target = ".".join(quote_identifier(part.strip(), quote) for part in table.split("."))
    selected = ", ".join(quote_identifier(c, quote) for c in dict.fromkeys(columns)) or "*"
    # Every name is quoted above: nothing from the config is read as SQL.
    return f"SELECT {selected} FROM {target}"  # noqa: S608


def describe(query: str | None, table: str | None) -> str:
    """``table crm.contacts`` or ``query: SELECT ...`` (one line, shortened) for messages."""
    if table is not None:
        return f"table {table}"
    text = " ".join((query or "").split())
    if len(text) > _SHOWN_QUERY_CHARS:
        text = text[: _SHOWN_QUERY_CHARS - 3] + "..."
    return f"query: {text}"


def check_columns(where: str, columns: Sequence[str], needed: Mapping[str, str]) -> None:
    """Raise SourceError naming the first needed column the result does not have.

    ``needed`` maps a column to what needs it ("mapped to Name"). Checked before the
    first row is fetched, so even an empty result reports a wrong mapping.
    """
    present = set(columns)
    for column, why in needed.items():
        if column not in present:
            raise SourceError(
                f"{where}: column {column!r} ({why}) is not in the result;"
                f" its columns are: {', '.join(columns) or 'none'}"
            )
