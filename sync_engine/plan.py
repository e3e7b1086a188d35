"""The plan: what a run will change, spooled to disk so its size never costs memory.

A plan is built once (local pass against the remote index) and read back as batches
when it is applied; a full first sync of millions of inserts holds one batch per worker
in memory, not the whole plan.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson
import xxhash

from .errors import RunRefusedError
from .normalise import FieldValue
from .records import RowOrigin

__all__ = [
    "Batch",
    "BatchKind",
    "Change",
    "ChangeKind",
    "DeletionGuard",
    "FieldChange",
    "Plan",
    "PlanSpool",
    "PlanSummary",
    "SampleChange",
    "batch_digest",
    "change_digest",
]


class ChangeKind(enum.Enum):
    INSERT = "insert"
    UPDATE = "update"
    REMOVE = "remove"


class BatchKind(enum.Enum):
    """Batches are homogeneous: upserts (inserts and updates) or removals."""

    UPSERT = "upsert"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class Change:
    """One contact to send: for a removal, ``fields`` holds only its identity."""

    kind: ChangeKind
    key: str
    fields: Mapping[str, FieldValue]
    origin: RowOrigin | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """Up to the provider's row limit of changes of one kind, numbered from 1."""

    number: int
    kind: BatchKind
    changes: tuple[Change, ...]

    def __len__(self) -> int:
        return len(self.changes)


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    old: FieldValue | None
    new: FieldValue | None


@dataclass(frozen=True, slots=True)
class SampleChange:
    """A planned change with field-level old -> new values, for the dry-run report."""

    kind: ChangeKind
    key: str
    origin: RowOrigin | None
    fields: tuple[FieldChange, ...]


@dataclass(kw_only=True)
class PlanSummary:
    """Counts of the plan; every local row and every remote contact lands in one bucket."""

    local_rows: int = 0
    invalid_local: int = 0
    duplicates: int = 0
    remote_total: int = 0
    remote_invalid: int = 0
    to_insert: int = 0
    to_update: int = 0
    to_remove: int = 0
    unchanged: int = 0
    kept_by_consent: int = 0
    kept_from_removal: int = 0  # remote contacts absent locally but locked by consent
    skipped_by_mode: int = 0
    held_back: int = 0  # rejected by the provider before and unchanged since: not resent

    @property
    def local_valid(self) -> int:
        return self.local_rows - self.invalid_local - self.duplicates

    @property
    def changes(self) -> int:
        return self.to_insert + self.to_update + self.to_remove


@dataclass(frozen=True, kw_only=True)
class DeletionGuard:
    """Refuses plans that would remove a large share of the remote base.

    An empty local side never deletes anything: it is far more often a broken export
    job upstream than a real wish to wipe the provider.
    """

    max_share: float = 0.10
    max_count: int | None = None

    def check(self, summary: PlanSummary, *, allow_deletes: int | None = None) -> None:
        removals = summary.to_remove
        if removals == 0:
            return
        if summary.local_valid == 0:
            raise RunRefusedError(
                f"refusing to remove {removals} contacts: the local source has no valid"
                " contacts (an empty or failed source never deletes anything)"
            )
        if allow_deletes is not None and removals <= allow_deletes:
            return
        limit_share = summary.remote_total * self.max_share
        over_share = removals > limit_share
        over_count = self.max_count is not None and removals > self.max_count
        if over_share or over_count:
            share = removals / summary.remote_total if summary.remote_total else 1.0
            limit = f"{self.max_share:.0%} of the remote base"
            if self.max_count is not None:
                limit += f" or {self.max_count} contacts"
            raise RunRefusedError(
                f"deletion guard: the plan removes {removals} of {summary.remote_total} remote"
                f" contacts ({share:.1%}), above the limit of {limit}; check the source, then"
                f" run again with --allow-deletes {removals} to allow it once"
            )


def _plain(fields: Mapping[str, FieldValue]) -> dict[str, object]:
    return {n: sorted(v) if isinstance(v, frozenset) else v for n, v in fields.items()}


def change_digest(fields: Mapping[str, FieldValue]) -> str:
    """A fingerprint of what a change sends, to tell whether a rejected row has changed."""
    return xxhash.xxh3_64_hexdigest(orjson.dumps(_plain(fields), option=orjson.OPT_SORT_KEYS))


def batch_digest(batch: Batch) -> str:
    """A fingerprint of a batch's payload, journaled before it is sent."""
    hasher = xxhash.xxh3_64()
    for change in batch.changes:
        hasher.update(orjson.dumps([change.kind.value, change.key, _plain(change.fields)]))
    return f"{batch.kind.value}:{len(batch)}:{hasher.hexdigest()}"


class PlanSpool:
    """Writes changes as JSON lines to a file and reads them back as batches.

    :meth:`close` flushes the file to disk (fsync), since a journaled run resumes from
    it after a crash; :meth:`file_digest` is what the journal records and checks.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = path.open("wb")
        self.count = 0

    @classmethod
    def existing(cls, path: Path) -> PlanSpool:
        """A finished spool on disk (from an interrupted run), for reading only."""
        spool = cls.__new__(cls)
        spool.path = path
        spool._file = None
        spool.count = 0
        return spool

    def write(self, change: Change) -> None:
        assert self._file is not None, "spool already closed"
        record: dict[str, object] = {
            "k": change.kind.value,
            "key": change.key,
            "f": _plain(change.fields),
        }
        if change.origin is not None:
            record["o"] = [change.origin.source, change.origin.line]
        line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        self._file.write(line)
        self.count += 1

    def write_encoded(self, lines: bytes, count: int) -> None:
        """Append ``count`` changes already encoded one per line exactly as ``write``
        encodes them (for bulk writers such as the columnar planner; a test holds the
        two encodings equal)."""
        assert self._file is not None, "spool already closed"
        self._file.write(lines)
        self.count += count

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def file_digest(self) -> str:
        """The digest of the file as it is on disk now (to verify a spool to resume)."""
        hasher = xxhash.xxh3_128()
        with self.path.open("rb") as spool:
            while chunk := spool.read(1 << 20):
                hasher.update(chunk)
        return hasher.hexdigest()

    def read(self) -> Iterator[Change]:
        self.close()
        with self.path.open("rb") as spool:
            for line in spool:
                record = orjson.loads(line)
                fields = {
                    n: frozenset(v) if isinstance(v, list) else v for n, v in record["f"].items()
                }
                origin = record.get("o")
                yield Change(
                    kind=ChangeKind(record["k"]),
                    key=record["key"],
                    fields=fields,
                    origin=RowOrigin(origin[0], origin[1]) if origin else None,
                )


@dataclass(kw_only=True)
class Plan:
    """A finished plan: summary, samples, and the spooled changes."""

    summary: PlanSummary
    spool: PlanSpool
    samples: list[SampleChange] = field(default_factory=list)
    full: bool = False

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """Homogeneous batches of at most ``batch_size`` changes, in plan order.

        Upserts are also grouped by the fields they carry: a contact whose NULL field is
        kept lacks that field, and a provider sends one column list per batch, where an
        empty cell would clear the value. Contacts with every field (the usual case) all
        share one group, so batches come out exactly as before. At most one partial
        batch per distinct field set is held.
        """
        number = 0
        pending: dict[tuple[str, ...], list[Change]] = {}
        pending_kind: BatchKind | None = None
        for change in self.spool.read():
            kind = BatchKind.REMOVE if change.kind is ChangeKind.REMOVE else BatchKind.UPSERT
            if kind is not pending_kind:
                for changes in pending.values():
                    number += 1
                    assert pending_kind is not None
                    yield Batch(number, pending_kind, tuple(changes))
                pending = {}
                pending_kind = kind
            shape = tuple(change.fields) if kind is BatchKind.UPSERT else ()
            group = pending.setdefault(shape, [])
            group.append(change)
            if len(group) >= batch_size:
                number += 1
                yield Batch(number, kind, tuple(group))
                del pending[shape]
        for changes in pending.values():
            number += 1
            assert pending_kind is not None
            yield Batch(number, pending_kind, tuple(changes))

    def batch_count(self, batch_size: int) -> int:
        """How many batches :meth:`batches` will yield (for progress display)."""
        s = self.summary
        upserts = s.to_insert + s.to_update
        return -(-upserts // batch_size) + -(-s.to_remove // batch_size)
