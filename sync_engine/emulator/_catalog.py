"""The account's lists and user fields: what import and export arguments may name."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._model import (
    EXPORT_SYSTEM_FIELDS,
    IMPORT_SYSTEM_FIELDS,
    ArgumentError,
)

__all__ = ["Catalog", "UserField"]

_FIELD_TYPES = frozenset({"string", "text", "number", "date", "bool"})
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class UserField:
    """A user field as ``getFields`` describes it."""

    id: int
    name: str
    type: str


class Catalog:
    """Lists by id and user fields by (case-sensitive) name."""

    def __init__(self, *, max_user_fields: int = 50) -> None:
        self._max_user_fields = max_user_fields
        self._lists: dict[int, str] = {}
        self._fields: dict[str, UserField] = {}
        self._next_list_id = 1
        self._next_field_id = 1

    def add_list(self, title: str, *, list_id: int | None = None) -> int:
        """Create a list; titles must be non-empty and unique, like the web interface."""
        title = title.strip()
        if not title:
            raise ArgumentError("The list title must not be empty")
        if title in self._lists.values():
            raise ArgumentError(f"A list titled {title!r} already exists")
        if list_id is None:
            list_id = self._next_list_id
        elif list_id in self._lists or list_id <= 0:
            raise ArgumentError(f"List id {list_id} is taken or not positive")
        self._lists[list_id] = title
        self._next_list_id = max(self._next_list_id, list_id + 1)
        return list_id

    def has_list(self, list_id: int) -> bool:
        """Whether the list exists."""
        return list_id in self._lists

    def check_list(self, list_id: int) -> None:
        """Raise ``ArgumentError`` for a list id that does not exist."""
        if list_id not in self._lists:
            raise ArgumentError(f"List id {list_id} does not exist")

    def lists(self) -> list[tuple[int, str]]:
        """``(id, title)`` pairs in id order."""
        return sorted(self._lists.items())

    def add_field(self, name: str, type: str = "string") -> int:
        """Create a user field under the createField rules (providers.md §1.4)."""
        if not _FIELD_NAME.fullmatch(name):
            raise ArgumentError(
                f"Invalid field name {name!r}: use Latin letters, digits, '_' and '-', "
                "starting with a letter"
            )
        if name.lower() in IMPORT_SYSTEM_FIELDS or name.lower() in EXPORT_SYSTEM_FIELDS:
            raise ArgumentError(f"Field name {name!r} is reserved for a system field")
        if name in self._fields:
            raise ArgumentError(f"A field named {name!r} already exists")
        if type not in _FIELD_TYPES:
            raise ArgumentError(f"Invalid field type {type!r}")
        if len(self._fields) >= self._max_user_fields:
            raise ArgumentError(
                f"The maximum number of user fields ({self._max_user_fields}) is reached"
            )
        field_id = self._next_field_id
        self._next_field_id += 1
        self._fields[name] = UserField(id=field_id, name=name, type=type)
        return field_id

    def has_field(self, name: str) -> bool:
        """Whether a user field of this exact name exists."""
        return name in self._fields

    def fields(self) -> list[UserField]:
        """User fields in creation order."""
        return list(self._fields.values())
