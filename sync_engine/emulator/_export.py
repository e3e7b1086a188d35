"""Export tasks of the emulator: the file format, the file on disk, the task life cycle.

The provider does not document its export file, so the format is a frozen option
(``ExportFormat``) and tests can serve every variant a client must survive. Files are
written row by row into a temporary directory that the store owns and removes on close.
"""

from __future__ import annotations

import csv
import gzip
import io
import shutil
import tempfile
import uuid
import weakref
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

__all__ = ["ExportFormat", "ExportStatus", "ExportStore", "ExportTask", "write_export"]

ExportStatus = Literal["new", "processing", "completed"]
_COMPRESSIONS = {
    "none": (".csv", "text/csv; charset=utf-8"),
    "gzip": (".csv.gz", "application/gzip"),
    "zip": (".zip", "application/zip"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportFormat:
    """How the export file is written; the default matches what public clients parse."""

    delimiter: Literal[",", ";", "\t"] = ","
    bom: bool = False
    compression: Literal["none", "gzip", "zip"] = "none"
    header: bool = True
    line_terminator: Literal["\r\n", "\n"] = "\r\n"
    zip_member: str = "contacts.csv"

    def __post_init__(self) -> None:
        if self.delimiter not in (",", ";", "\t"):
            raise ValueError(f"unsupported export delimiter {self.delimiter!r}")
        if self.compression not in _COMPRESSIONS:
            raise ValueError(f"unsupported export compression {self.compression!r}")
        if self.line_terminator not in ("\r\n", "\n"):
            raise ValueError(f"unsupported export line terminator {self.line_terminator!r}")

    @property
    def suffix(self) -> str:
        """File name suffix, e.g. ``.csv.gz``."""
        return _COMPRESSIONS[self.compression][0]

    @property
    def content_type(self) -> str:
        """The Content-Type the download is served with."""
        return _COMPRESSIONS[self.compression][1]


@contextmanager
def _open_text(path: Path, fmt: ExportFormat) -> Iterator[TextIO]:
    encoding = "utf-8-sig" if fmt.bom else "utf-8"
    if fmt.compression == "gzip":
        with gzip.open(path, "wt", encoding=encoding, newline="") as text:
            yield text
    elif fmt.compression == "zip":
        with (
            zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
            archive.open(fmt.zip_member, "w") as raw,
            io.TextIOWrapper(raw, encoding=encoding, newline="") as text,
        ):
            yield text
    else:
        with path.open("w", encoding=encoding, newline="") as text:
            yield text


def write_export(
    path: Path, fmt: ExportFormat, columns: Sequence[str], rows: Iterable[Sequence[str]]
) -> int:
    """Write the export file row by row (never the whole file in memory); return the row count."""
    count = 0
    try:
        with _open_text(path, fmt) as text:
            writer = csv.writer(
                text,
                delimiter=fmt.delimiter,
                lineterminator=fmt.line_terminator,
                quoting=csv.QUOTE_MINIMAL,
            )
            if fmt.header:
                writer.writerow(columns)
            for row in rows:
                writer.writerow(row)
                count += 1
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return count


@dataclass(frozen=True, slots=True)
class ExportTask:
    """One async/exportContacts task and its file."""

    uuid: str
    token: str
    filename: str
    path: Path
    created_at: float
    rows: int
    content_type: str
    notify_url: str | None


class ExportStore:
    """Export tasks and their files; the temporary directory lives until ``close``."""

    def __init__(self, *, processing_after: float, ready_after: float) -> None:
        self._processing_after = processing_after
        self._ready_after = ready_after
        self._tasks: dict[str, ExportTask] = {}
        self._by_token: dict[str, ExportTask] = {}
        self._stalled: set[str] = set()
        self._directory: Path | None = None
        self._finalizer: weakref.finalize[[str], ExportStore] | None = None

    def _dir(self) -> Path:
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="sync-engine-emulator-"))
            # A safety net for an emulator nobody closed: removed when collected or at exit.
            self._finalizer = weakref.finalize(self, _remove_tree, str(self._directory))
        return self._directory

    def create(
        self,
        *,
        fmt: ExportFormat,
        columns: Sequence[str],
        rows: Iterable[Sequence[str]],
        now: float,
        notify_url: str | None = None,
    ) -> ExportTask:
        """Write the snapshot now and register a task whose status follows the clock."""
        task_uuid = str(uuid.uuid4())
        filename = f"contacts-{task_uuid}{fmt.suffix}"
        path = self._dir() / filename
        count = write_export(path, fmt, columns, rows)
        task = ExportTask(
            uuid=task_uuid,
            token=uuid.uuid4().hex,
            filename=filename,
            path=path,
            created_at=now,
            rows=count,
            content_type=fmt.content_type,
            notify_url=notify_url,
        )
        self._tasks[task_uuid] = task
        self._by_token[task.token] = task
        return task

    def serve(self, *, path: Path, fmt: ExportFormat, now: float) -> ExportTask:
        """Register a task that serves an existing file as it is (not copied, not removed).

        For exports too big or too odd to build from emulated contacts: a benchmark's
        1 GB file, a test's malformed one.
        """
        task_uuid = str(uuid.uuid4())
        task = ExportTask(
            uuid=task_uuid,
            token=uuid.uuid4().hex,
            filename=f"contacts-{task_uuid}{fmt.suffix}",
            path=path,
            created_at=now,
            rows=-1,  # unknown: the file is served unread
            content_type=fmt.content_type,
            notify_url=None,
        )
        self._tasks[task_uuid] = task
        self._by_token[task.token] = task
        return task

    def get(self, task_uuid: str) -> ExportTask | None:
        """The task with this uuid, if any."""
        return self._tasks.get(task_uuid)

    def stall(self, task_uuid: str) -> None:
        """Keep this task ``processing`` for ever (an injected fault)."""
        self._stalled.add(task_uuid)

    def shorten(self, task_uuid: str) -> None:
        """Cut the task's file after half its rows, at a row boundary (an injected fault).

        Only files this store wrote uncompressed: a served file belongs to the caller.
        """
        task = self._tasks.get(task_uuid)
        if task is None or task.rows < 0 or not task.filename.endswith(".csv"):
            return
        lines = task.path.read_bytes().splitlines(keepends=True)
        keep = len(lines) - task.rows + task.rows // 2  # the header, if any, and half the rows
        task.path.write_bytes(b"".join(lines[:keep]))

    def expire(self, task: ExportTask) -> None:
        """Forget the task's download link, as a pre-signed link expires (an injected fault)."""
        self._by_token.pop(task.token, None)

    def status(self, task: ExportTask, now: float) -> ExportStatus:
        """``new``, then ``processing``, then ``completed``, by the emulator's clock."""
        if task.uuid in self._stalled:
            return "processing"
        elapsed = now - task.created_at
        if elapsed < self._processing_after:
            return "new"
        if elapsed < self._ready_after:
            return "processing"
        return "completed"

    def downloadable(self, token: str, filename: str, now: float) -> ExportTask | None:
        """The completed task behind a download link, or None (an unknown link is a 404)."""
        task = self._by_token.get(token)
        if task is None or task.filename != filename or self.status(task, now) != "completed":
            return None
        return task

    def close(self) -> None:
        """Forget every task and remove the directory; safe to call twice."""
        self._tasks.clear()
        self._by_token.clear()
        self._stalled.clear()
        if self._finalizer is not None:
            self._finalizer()
        self._directory = None
        self._finalizer = None


def _remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
