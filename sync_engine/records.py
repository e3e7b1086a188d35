"""Rows as they leave a source, before any mapping or normalisation.

Every row carries its origin (file and line, or table and row number) so that any
problem found later can be reported where the user can find it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["RowOrigin", "RowProblem", "SourceRow"]


@dataclass(frozen=True, slots=True)
class RowOrigin:
    """Where a row came from: a source name (usually a file path) and a 1-based line."""

    source: str
    line: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One raw record: column name -> value exactly as the source gave it."""

    origin: RowOrigin
    values: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A row that cannot be used, with the field at fault (if one) and a human reason."""

    origin: RowOrigin
    field: str | None
    reason: str
    key: str | None = None

    def __str__(self) -> str:
        where = f"{self.origin}"
        if self.field:
            where += f" field {self.field!r}"
        return f"{where}: {self.reason}"
