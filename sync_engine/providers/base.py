"""The provider interface and the outcome taxonomy every provider maps its answers to.

A provider owns its wire format and error vocabulary. What it returns is shared:

- per row: ``OK``, ``WARNING`` (applied, with a note), ``REJECTED`` (bad data, permanent),
  ``KEPT`` (refused for consent: the provider keeps its own state), ``TRANSIENT`` (not
  applied this time, worth retrying);
- per call, by exception (see :mod:`sync_engine.errors`): retriable, fatal, batch rejected.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sync_engine.contact import RemoteRecord
from sync_engine.plan import Batch
from sync_engine.records import RowProblem
from sync_engine.schema import FieldSchema

__all__ = [
    "BatchEvents",
    "BatchOutcome",
    "Provider",
    "ProviderLimits",
    "ProviderStats",
    "RemoteSnapshot",
    "RowOutcome",
    "RowStatus",
]


class RowStatus(enum.Enum):
    OK = "ok"
    WARNING = "warning"
    REJECTED = "rejected"
    KEPT = "kept"
    TRANSIENT = "transient"


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """The provider's verdict on one row of a batch (``index`` into ``batch.changes``)."""

    index: int
    status: RowStatus
    code: str = ""
    message: str = ""


@dataclass(frozen=True, kw_only=True)
class BatchOutcome:
    """A batch's answer. Rows not listed in ``rows`` were applied plainly."""

    rows: tuple[RowOutcome, ...] = ()
    warnings: tuple[str, ...] = ()
    counters: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ProviderLimits:
    """What the executor needs to know to fan out within the provider's limits."""

    batch_rows: int
    concurrency: int


@dataclass(kw_only=True)
class ProviderStats:
    """Calls made and retries per method, for the report.

    ``rates`` holds the provider's rate figures in calls per second (configured,
    effective, lowest learnt rate, slowdowns), as ``AdaptiveLimiter.summary`` gives them.
    """

    calls: dict[str, int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)

    def count_call(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1

    def count_retry(self, method: str) -> None:
        self.retries[method] = self.retries.get(method, 0) + 1


class BatchEvents(Protocol):
    """What a provider tells the journal while it sends a batch."""

    async def sent(self) -> None:
        """The request is about to leave: from here on its outcome may be unknown."""
        ...

    async def task(self, task_id: str) -> None:
        """The provider answered with a task id that can settle the batch later."""
        ...


class RemoteSnapshot(Protocol):
    """The provider's contacts at one moment; iterable more than once."""

    def records(self) -> AsyncIterator[RemoteRecord | RowProblem]: ...


class Provider(Protocol):
    """One provider account, open for the duration of a run."""

    name: str
    schema: FieldSchema
    limits: ProviderLimits
    stats: ProviderStats

    @property
    def synced_list_id(self) -> int | None:
        """A list id every local contact gets in its list-id fields (UniSender), or None.

        Providers whose membership is a request option (eSputnik's groups) return None.
        """
        ...

    def additive(self, fields: Sequence[str]) -> frozenset[str]:
        """The synced fields the provider adds to rather than replaces (compared as subsets)."""
        ...

    async def check(self, fields: Sequence[str]) -> list[str]:
        """Pre-flight: verify the account, list and fields; return warnings.

        Raises ConfigError for a missing list or field, FatalProviderError for a bad key.
        """
        ...

    async def snapshot(self, fields: Sequence[str]) -> RemoteSnapshot:
        """Fetch the provider's current contacts (with these fields) as a snapshot."""
        ...

    async def apply(self, batch: Batch, events: BatchEvents | None = None) -> BatchOutcome:
        """Send one batch, retrying what is safe to retry; raise what is not.

        ``events.sent()`` is awaited before the first request leaves.
        """
        ...

    def resend_is_safe(self, batch: Batch) -> bool:
        """Whether a batch whose answer was lost may simply be sent again (idempotent)."""
        ...

    async def settle(self, batch: Batch, task_id: str | None) -> BatchOutcome | None:
        """The outcome of a batch sent by an earlier attempt whose answer was lost.

        Asked whenever the journal holds a task id for the batch (an import session, a
        batch task), and for batches that are not safe to resend. None when the provider
        cannot tell: the batch is then resent if that is safe, else reported unknown.
        """
        ...

    async def aclose(self) -> None: ...
