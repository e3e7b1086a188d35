"""Duplicate keys inside one source: which row wins, and a report naming both rows.

Rules (``[source] duplicates``):

- ``first`` (default): the first row of a key wins. Decided as rows stream by, in the diff,
  which remembers every key it has judged anyway; nothing else is held.
- ``last``: the last row wins.
- ``newest``: the row with the greatest ``newest_by`` value wins (a NULL is older than any
  value; on a tie the later row wins, as with ``last``).

``last`` and ``newest`` cannot be decided while streaming: the first row of a key may be
followed by a better one at the very end of a ten-million-row table, after its change
would already have been planned. So they are resolved *before* planning, in two passes
over the built contacts: the first pass writes each contact to a spool file on disk and
remembers, per key, only the winner so far (its position, its line and, for ``newest``,
the ranking value), never the rows themselves; the second pass reads the spool back and
lets through exactly the winners. The source is read once (a database query is not run
twice and cannot change in between), memory stays one small entry per key, and every
loser is reported with both rows.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, AsyncIterable, Iterator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import orjson

from .contact import Contact
from .records import RowOrigin, RowProblem
from .report import Problem
from .sources._threaded import iterate_in_thread

__all__ = ["Duplicate", "DuplicateResolver", "Ranked"]

# Contacts read back per worker-thread hop: small, since rows may carry long fields.
_REPLAY_CHUNK = 256


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A row skipped because another row with the same key won."""

    key: str
    kept: RowOrigin
    dropped: RowOrigin
    rule: str  # "first", "last" or "newest by <column>"

    def problem(self) -> Problem:
        """The report's entry: on the skipped row, naming the row that was kept."""
        return Problem(
            stage="local",
            reason=(
                f"duplicate key {self.key!r} in rows {self.kept} and {self.dropped}:"
                f" the {self.rule} row ({self.kept}) is kept, this one is skipped"
            ),
            key=self.key,
            source=self.dropped.source,
            line=self.dropped.line,
            code="duplicate",
        )


class Ranked(NamedTuple):
    """A contact with its ranking value (the raw ``newest_by`` column; None for ``last``)."""

    contact: Contact
    rank: object


class _Winner(NamedTuple):
    position: int  # in the spool: unique, unlike line numbers of different sources
    origin: RowOrigin
    rank: object


class DuplicateResolver:
    """Resolves ``last`` and ``newest`` in two passes over a spool file (see the module)."""

    def __init__(
        self,
        rule: Literal["last", "newest"],
        *,
        spool_dir: Path,
        newest_by: str | None = None,
    ) -> None:
        if rule == "newest" and not newest_by:
            raise ValueError("the newest rule needs the newest_by column")
        self.rule = rule
        self.newest_by = newest_by
        self._spool_dir = spool_dir
        self.label = f"newest by {newest_by}" if rule == "newest" else rule

    async def resolve(
        self, items: AsyncIterable[Ranked | RowProblem]
    ) -> AsyncGenerator[Contact | RowProblem | Duplicate, None]:
        """Problems pass through at once; contacts come out after the source is exhausted."""
        winners: dict[str, _Winner] = {}
        path = self._spool_dir / f"local-{uuid.uuid4().hex}.jsonl"
        try:
            with path.open("wb") as spool:
                position = 0
                async for item in items:
                    if isinstance(item, RowProblem):
                        yield item
                        continue
                    contact = item.contact
                    assert contact.origin is not None
                    problem = self._consider(winners, position, contact.origin, contact.key, item)
                    if problem is not None:
                        yield problem
                        continue
                    spool.write(_encode(contact))
                    position += 1
            replay = iterate_in_thread(lambda: _decode_all(path), chunk_size=_REPLAY_CHUNK)
            async with aclosing(replay):
                position = 0
                async for contact in replay:
                    winner = winners[contact.key]
                    if winner.position == position:
                        yield contact
                    else:
                        assert contact.origin is not None
                        yield Duplicate(contact.key, winner.origin, contact.origin, self.label)
                    position += 1
        finally:
            path.unlink(missing_ok=True)

    def _consider(
        self,
        winners: dict[str, _Winner],
        position: int,
        origin: RowOrigin,
        key: str,
        item: Ranked,
    ) -> RowProblem | None:
        """Make this row the key's winner if the rule says so; a problem if unrankable."""
        current = winners.get(key)
        if current is not None and self.rule == "newest":
            try:
                wins = _rank(item.rank) >= _rank(current.rank)
            except TypeError:
                return RowProblem(
                    origin,
                    self.newest_by,
                    f"duplicate key {key!r}: {self.newest_by} {item.rank!r} cannot be compared"
                    f" with {current.rank!r} of row {current.origin}; fix the column's type",
                    key=key,
                )
            if not wins:
                # The spool still gets the row (the caller writes it): pass two reports it.
                return None
        winners[key] = _Winner(position, origin, item.rank if self.rule == "newest" else None)
        return None


def _rank(value: object) -> tuple[int, object]:
    """NULL ranks below every value, and is never compared with one."""
    return (0, None) if value is None else (1, value)


def _encode(contact: Contact) -> bytes:
    assert contact.origin is not None
    record = {
        "k": contact.key,
        "f": {n: sorted(v) if isinstance(v, frozenset) else v for n, v in contact.fields.items()},
        "o": [contact.origin.source, contact.origin.line],
    }
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


def _decode_all(path: Path) -> Iterator[Contact]:
    with path.open("rb") as spool:
        for line in spool:
            record = orjson.loads(line)
            fields = {n: frozenset(v) if isinstance(v, list) else v for n, v in record["f"].items()}
            source, number = record["o"]
            yield Contact(key=record["k"], fields=fields, origin=RowOrigin(source, number))
