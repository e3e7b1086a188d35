"""The emulated provider's data model: a contact, its keys, and how an export sees it.

Shared by the contact base (import rules) and the export writer, so both agree on what
a contact is, how its email and phone are normalised and how each export cell reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

__all__ = [
    "EXPORT_SYSTEM_FIELDS",
    "IGNORED_COLUMNS",
    "IMPORT_SYSTEM_FIELDS",
    "LIST_COLUMNS",
    "ArgumentError",
    "EmulatedContact",
    "ExportFilter",
    "export_cell",
    "normalize_email",
    "normalize_phone",
]

EXPORT_SYSTEM_FIELDS: tuple[str, ...] = (
    "id",
    "email",
    "email_status",
    "email_list_ids",
    "email_unsubscribed_list_ids",
    "email_excluded_list_ids",
    "phone",
    "phone_status",
    "phone_list_ids",
    "tags",
)
LIST_COLUMNS = frozenset(
    {
        "email_list_ids",
        "email_unsubscribed_list_ids",
        "email_excluded_list_ids",
        "phone_list_ids",
        "phone_unsubscribed_list_ids",
        "phone_excluded_list_ids",
    }
)
# Documented system columns the emulator accepts on import but does not model.
IGNORED_COLUMNS = frozenset(
    {
        "email_availability",
        "email_add_time",
        "email_request_ip",
        "email_confirm_time",
        "email_subscribe_times",
        "phone_availability",
        "phone_add_time",
        "phone_request_ip",
        "phone_subscribe_times",
    }
)
IMPORT_SYSTEM_FIELDS = (
    frozenset({"delete", "tags", "email", "email_status", "phone", "phone_status"})
    | LIST_COLUMNS
    | IGNORED_COLUMNS
)
_PHONE = re.compile(r"\+?([0-9]{7,15})")


class ArgumentError(Exception):
    """A call-level ``invalid_arg``: the whole call is refused and nothing changes."""


@dataclass
class EmulatedContact:
    """One contact as the provider holds it; instances handed out are copies."""

    email: str | None = None
    phone: str | None = None
    email_status: str = "active"
    phone_status: str = "active"
    email_list_ids: set[int] = field(default_factory=set)
    email_unsubscribed_list_ids: set[int] = field(default_factory=set)
    email_excluded_list_ids: set[int] = field(default_factory=set)
    phone_list_ids: set[int] = field(default_factory=set)
    tags: set[str] = field(default_factory=set)
    fields: dict[str, str] = field(default_factory=dict)
    id: int = 0

    def copy(self) -> EmulatedContact:
        """A deep-enough copy: the sets and the dict are new objects."""
        return replace(
            self,
            email_list_ids=set(self.email_list_ids),
            email_unsubscribed_list_ids=set(self.email_unsubscribed_list_ids),
            email_excluded_list_ids=set(self.email_excluded_list_ids),
            phone_list_ids=set(self.phone_list_ids),
            tags=set(self.tags),
            fields=dict(self.fields),
        )

    def in_list(self, list_id: int) -> bool:
        """Membership as a list export sees it: unsubscribed members are still members."""
        if list_id in self.email_excluded_list_ids:
            return False
        return (
            list_id in self.email_list_ids
            or list_id in self.email_unsubscribed_list_ids
            or list_id in self.phone_list_ids
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportFilter:
    """The selection arguments of async/exportContacts (already normalised)."""

    list_id: int | None = None
    email: str | None = None
    phone: str | None = None
    tag: str | None = None
    email_status: str | None = None
    phone_status: str | None = None

    def matches(self, contact: EmulatedContact) -> bool:
        """Whether the contact belongs in the export."""
        return (
            (self.list_id is None or contact.in_list(self.list_id))
            and (self.email is None or contact.email == self.email)
            and (self.phone is None or contact.phone == self.phone)
            and (self.tag is None or self.tag in contact.tags)
            and (
                self.email_status is None
                or (contact.email is not None and contact.email_status == self.email_status)
            )
            and (
                self.phone_status is None
                or (contact.phone is not None and contact.phone_status == self.phone_status)
            )
        )


def normalize_email(value: str) -> str:
    """Trimmed and lower-cased, as the provider stores addresses."""
    return value.strip().lower()


def normalize_phone(value: str) -> str | None:
    """``+`` and 7-15 digits (a missing ``+`` is added), or None when malformed."""
    match = _PHONE.fullmatch(value.strip())
    return f"+{match.group(1)}" if match else None


def _join_ids(ids: Iterable[int]) -> str:
    return ",".join(str(i) for i in sorted(ids))


def export_cell(contact: EmulatedContact, column: str) -> str:
    """One export cell; statuses are blank for an address the contact does not have."""
    match column:
        case "id":
            return str(contact.id)
        case "email":
            return contact.email or ""
        case "email_status":
            return contact.email_status if contact.email else ""
        case "email_list_ids":
            return _join_ids(contact.email_list_ids)
        case "email_unsubscribed_list_ids":
            return _join_ids(contact.email_unsubscribed_list_ids)
        case "email_excluded_list_ids":
            return _join_ids(contact.email_excluded_list_ids)
        case "phone":
            return contact.phone or ""
        case "phone_status":
            return contact.phone_status if contact.phone else ""
        case "phone_list_ids":
            return _join_ids(contact.phone_list_ids)
        case "tags":
            return ",".join(sorted(contact.tags))
        case _:
            return contact.fields.get(column, "")
