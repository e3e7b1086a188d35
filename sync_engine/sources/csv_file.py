"""A local CSV file as a Source, parsed in a worker thread."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from pathlib import Path

from sync_engine.records import RowProblem, SourceRow
from sync_engine.sources._threaded import iterate_in_thread
from sync_engine.tabular import iter_csv_rows

__all__ = ["CsvSource"]


class CsvSource:
    """Rows of a CSV file with a header row (see ``tabular.iter_csv_rows``).

    Nothing is opened until ``read()`` is iterated, so a missing file raises
    ``SourceError`` when iteration starts, not at construction.
    """

    def __init__(
        self,
        path: Path,
        *,
        delimiter: str | None = ",",
        encoding: str = "utf-8-sig",
        name: str | None = None,
    ) -> None:
        self.path = path
        self.delimiter = delimiter
        self.encoding = encoding
        self.name = name or str(path)

    def read(self) -> AsyncIterator[SourceRow | RowProblem]:
        """Stream the file's rows; each read opens the file afresh."""
        return iterate_in_thread(
            functools.partial(
                iter_csv_rows,
                self.path,
                delimiter=self.delimiter,
                encoding=self.encoding,
                source_name=self.name,
            )
        )

    def __repr__(self) -> str:
        return f"CsvSource({self.name!r}, delimiter={self.delimiter!r}, encoding={self.encoding!r})"
