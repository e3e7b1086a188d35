"""What kind of value each provider field holds, so both sides normalise it the same way."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["FieldKind", "FieldSchema"]


class FieldKind(enum.Enum):
    """How a field's values are normalised and compared."""

    EMAIL = "email"  # trimmed, lower-cased, IDN domain in punycode
    PHONE = "phone"  # E.164
    TAGS = "tags"  # a set of free-text labels
    IDS = "ids"  # a set of numeric ids (list ids)
    TEXT = "text"  # a string, compared after trimming and NFC


@dataclass(frozen=True, kw_only=True)
class FieldSchema:
    """A provider's field vocabulary: system fields with kinds; anything else is user text.

    ``reserved`` names may not be mapped from local data because the provider owns them
    (statuses, for instance: consent is the provider's to decide).
    """

    system: Mapping[str, FieldKind]
    reserved: frozenset[str] = field(default_factory=frozenset)

    def kind(self, name: str) -> FieldKind:
        return self.system.get(name, FieldKind.TEXT)
