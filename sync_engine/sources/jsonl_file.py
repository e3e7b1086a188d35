"""A local JSON-lines file as a Source, parsed in a worker thread."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from pathlib import Path

from sync_engine.records import RowProblem, SourceRow
from sync_engine.sources._threaded import iterate_in_thread
from sync_engine.tabular import iter_jsonl_rows

__all__ = ["JsonlSource"]


class JsonlSource:
    """Rows of a JSON-lines file, one object per line (see ``tabular.iter_jsonl_rows``).

    Nothing is opened until ``read()`` is iterated, so a missing file raises
    ``SourceError`` when iteration starts, not at construction.
    """

    def __init__(self, path: Path, *, encoding: str = "utf-8", name: str | None = None) -> None:
        self.path = path
        self.encoding = encoding
        self.name = name or str(path)

    def read(self) -> AsyncIterator[SourceRow | RowProblem]:
        """Stream the file's rows; each read opens the file afresh."""
        return iterate_in_thread(
            functools.partial(
                iter_jsonl_rows, self.path, encoding=self.encoding, source_name=self.name
            )
        )

    def __repr__(self) -> str:
        return f"JsonlSource({self.name!r}, encoding={self.encoding!r})"
