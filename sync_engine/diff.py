"""Pure comparison of the local truth against the provider's snapshot. No I/O.

Memory is one compact entry per remote key (a 64-bit digest of the exactly-compared
fields, the sets compared additively, and the consent lock), not whole rows, so the
remote side of millions of contacts fits comfortably.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import orjson
import xxhash

from .contact import Contact, RemoteContact
from .normalise import FieldValue

__all__ = ["Decision", "Differ", "Verdict"]


class Verdict(enum.Enum):
    """What the diff decides for one local contact."""

    INSERT = "insert"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    KEPT = "kept"  # the provider owns this contact (consent): never touched
    DUPLICATE = "duplicate"  # the key was already seen in the local source


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    locked: str | None = None  # with KEPT: the provider's reason
    first_line: int | None = None  # with DUPLICATE: where the key was first seen


class _RemoteEntry(NamedTuple):
    digest: int
    sets: tuple[frozenset[str], ...]
    locked: str | None
    optional: tuple[int, ...] = ()  # one digest per optional field


class Differ:
    """Accumulates the remote index, then judges local contacts one by one.

    ``additive`` fields are sets the provider only adds to (tags, list ids without
    overwrite): the local set needs sending only when it holds something the remote
    set lacks. Every other field is compared exactly, through a digest.

    ``optional`` fields may be missing from a local contact (a NULL the source keeps:
    leave the provider's value alone). Each gets its own digest, compared only when the
    local contact has the field, so a missing one never counts as a change.
    """

    def __init__(
        self,
        *,
        fields: Sequence[str],
        additive: frozenset[str],
        full: bool = False,
        optional: frozenset[str] = frozenset(),
    ) -> None:
        self.exact_fields = tuple(f for f in fields if f not in additive and f not in optional)
        self.optional_fields = tuple(f for f in fields if f in optional and f not in additive)
        self.additive_fields = tuple(f for f in fields if f in additive)
        self.full = full
        self._remote: dict[str, _RemoteEntry] = {}
        self._seen: dict[str, int] = {}
        self._protected: set[str] = set()

    # -- remote side ---------------------------------------------------------------
    def add_remote(self, contact: RemoteContact) -> bool:
        """Index one remote contact; False when the key was already indexed."""
        if contact.key in self._remote:
            return False
        self._remote[contact.key] = _RemoteEntry(
            self._digest(contact.fields),
            self._sets(contact.fields),
            contact.locked,
            tuple(_field_digest(contact.fields.get(n, "")) for n in self.optional_fields),
        )
        return True

    @property
    def remote_total(self) -> int:
        return len(self._remote)

    # -- local side ----------------------------------------------------------------
    def protect(self, key: str) -> None:
        """Mark a key as present locally although its row was unusable.

        A row rejected for a bad field still names a contact the user has; removing that
        contact from the provider because of a typo elsewhere in the row would be wrong.
        """
        self._protected.add(key)

    def judge(self, contact: Contact) -> Decision:
        first = self._seen.get(contact.key)
        if first is not None:
            return Decision(Verdict.DUPLICATE, first_line=first)
        self._seen[contact.key] = contact.origin.line if contact.origin else 0
        entry = self._remote.get(contact.key)
        if entry is None:
            return Decision(Verdict.INSERT)
        if entry.locked is not None:
            return Decision(Verdict.KEPT, locked=entry.locked)
        if self.full:
            return Decision(Verdict.UPDATE)
        if entry.digest != self._digest(contact.fields):
            return Decision(Verdict.UPDATE)
        for local_set, remote_set in zip(self._sets(contact.fields), entry.sets, strict=True):
            if not local_set <= remote_set:
                return Decision(Verdict.UPDATE)
        for name, remote_digest in zip(self.optional_fields, entry.optional, strict=True):
            value = contact.fields.get(name)
            if value is not None and _field_digest(value) != remote_digest:
                return Decision(Verdict.UPDATE)
        return Decision(Verdict.UNCHANGED)

    def unseen(self) -> Iterator[tuple[str, str | None]]:
        """Remote keys never seen locally, with their consent lock: removal candidates."""
        seen, protected = self._seen, self._protected
        for key, entry in self._remote.items():
            if key not in seen and key not in protected:
                yield key, entry.locked

    # -- helpers -------------------------------------------------------------------
    def _digest(self, fields: Mapping[str, FieldValue]) -> int:
        parts = [_comparable(fields.get(name, "")) for name in self.exact_fields]
        return xxhash.xxh3_64_intdigest(orjson.dumps(parts))

    def _sets(self, fields: Mapping[str, FieldValue]) -> tuple[frozenset[str], ...]:
        result = []
        for name in self.additive_fields:
            value = fields.get(name, frozenset())
            result.append(value if isinstance(value, frozenset) else frozenset())
        return tuple(result)


def _field_digest(value: FieldValue) -> int:
    return xxhash.xxh3_64_intdigest(orjson.dumps(_comparable(value)))


def _comparable(value: FieldValue) -> str | list[str]:
    return sorted(value) if isinstance(value, frozenset) else value
