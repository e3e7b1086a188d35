"""The emulated UniSender/Selzy contact base: import and export semantics, no HTTP.

Kept apart from the aiohttp layer so the rules a sync engine must respect (the status
rule, unsubscribed lists that never resubscribe, duplicate phones, the 500-row cap) can
be unit-tested directly and read in one place. Everything lives on a ``ContactBase``
instance; nothing is module-global.
"""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from ._catalog import Catalog
from ._gc import LongLived
from ._model import (
    EXPORT_SYSTEM_FIELDS,
    IMPORT_SYSTEM_FIELDS,
    LIST_COLUMNS,
    ArgumentError,
    EmulatedContact,
    ExportFilter,
    export_cell,
    normalize_email,
    normalize_phone,
)

__all__ = ["ContactBase", "ImportLogEntry", "ImportOutcome"]

_SETTABLE_STATUSES = frozenset({"new", "active", "inactive", "unsubscribed"})
# The documented status rule: only these current statuses may be changed by an import.
_CHANGEABLE_STATUSES = frozenset({"active", "inactive"})
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True, slots=True)
class ImportLogEntry:
    """One ``log`` item of an importContacts answer."""

    index: int
    code: str
    message: str


@dataclass(slots=True)
class ImportOutcome:
    """The counters and log of one importContacts call."""

    total: int
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    new_emails: int = 0
    invalid: int = 0
    log: list[ImportLogEntry] = field(default_factory=list)
    overlimit: bool = False

    def result(self) -> dict[str, object]:
        """The ``result`` object exactly as the provider shapes it."""
        return {
            "total": self.total,
            "inserted": self.inserted,
            "updated": self.updated,
            "deleted": self.deleted,
            "new_emails": self.new_emails,
            "invalid": self.invalid,
            "log": [{"index": e.index, "code": e.code, "message": e.message} for e in self.log],
        }


@dataclass(slots=True)
class _Row:
    """One data row, checked for call-level errors before anything is applied."""

    cells: dict[str, str]
    lists: dict[str, set[int]]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic collector while bulk-seeding.

    Seeding a large base allocates millions of containers and no cycles; the collector
    would rescan them again and again (4x slower at 300k contacts). Restored on exit.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class ContactBase:
    """The in-memory contact base with the provider's import and export rules."""

    def __init__(
        self,
        *,
        rejected_email_domains: Iterable[str] = ("spamtrap.example.com",),
        contact_limit: int | None = None,
        max_import_rows: int = 500,
        max_user_fields: int = 50,
    ) -> None:
        self._rejected_domains = frozenset(d.lower() for d in rejected_email_domains)
        self._contact_limit = contact_limit
        self._max_import_rows = max_import_rows
        self.catalog = Catalog(max_user_fields=max_user_fields)
        self._contacts: dict[int, EmulatedContact] = {}
        self._by_email: dict[str, int] = {}
        self._by_phone: dict[str, int] = {}
        self._added_at: dict[int, float] = {}
        self._next_contact_id = 1
        self._long_lived = LongLived()

    # -- contacts ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._contacts)

    def contacts(self) -> list[EmulatedContact]:
        """Copies of every contact in id order."""
        return [self._contacts[i].copy() for i in sorted(self._contacts)]

    def find(self, *, email: str | None = None, phone: str | None = None) -> EmulatedContact | None:
        """The live contact with this email (else phone), or None; callers copy it."""
        contact_id: int | None = None
        if email is not None:
            contact_id = self._by_email.get(normalize_email(email))
        elif phone is not None:
            normalized = normalize_phone(phone)
            contact_id = self._by_phone.get(normalized) if normalized else None
        return None if contact_id is None else self._contacts[contact_id]

    def added_at(self, contact_id: int) -> float:
        """Wall-clock time the contact was added (for getContact)."""
        return self._added_at[contact_id]

    def seed(self, contacts: Iterable[EmulatedContact]) -> None:
        """Store contacts as given (copies), creating missing lists and fields on the fly.

        Seeding is test set-up, not an import: the status rule does not apply, but the
        keys are normalised and must stay unique so the indexes remain true.
        """
        with _gc_paused():
            for given in contacts:
                self._seed_one(given)

    def _seed_one(self, given: EmulatedContact) -> None:
        contact = given.copy()
        if contact.email is not None:
            contact.email = normalize_email(contact.email) or None
        if contact.phone is not None:
            phone = normalize_phone(contact.phone)
            if phone is None:
                raise ValueError(f"seed: malformed phone {contact.phone!r}")
            contact.phone = phone
        if not contact.email and not contact.phone:
            raise ValueError("seed: a contact needs an email or a phone")
        if contact.email in self._by_email or contact.phone in self._by_phone:
            raise ValueError(f"seed: duplicate contact {contact.email or contact.phone!r}")
        if contact.id in self._contacts:
            raise ValueError(f"seed: duplicate contact id {contact.id}")
        for list_id in (
            contact.email_list_ids
            | contact.email_unsubscribed_list_ids
            | contact.email_excluded_list_ids
            | contact.phone_list_ids
        ):
            if not self.catalog.has_list(list_id):
                self.catalog.add_list(f"List {list_id}", list_id=list_id)
        for name in contact.fields:
            if not self.catalog.has_field(name):
                self.catalog.add_field(name)
        self._store(contact)

    def _store(self, contact: EmulatedContact) -> None:
        if contact.id <= 0:
            contact.id = self._next_contact_id
        self._next_contact_id = max(self._next_contact_id, contact.id + 1)
        self._contacts[contact.id] = contact
        self._long_lived.stored()
        self._added_at[contact.id] = time.time()
        if contact.email:
            self._by_email[contact.email] = contact.id
        if contact.phone:
            self._by_phone[contact.phone] = contact.id

    def _remove(self, contact: EmulatedContact) -> None:
        del self._contacts[contact.id]
        del self._added_at[contact.id]
        if contact.email:
            del self._by_email[contact.email]
        if contact.phone:
            del self._by_phone[contact.phone]

    # -- importContacts ---------------------------------------------------------------

    def import_contacts(
        self,
        field_names: Sequence[str],
        rows: Sequence[Sequence[str]],
        *,
        overwrite_tags: bool = False,
        overwrite_lists: bool = False,
    ) -> ImportOutcome:
        """Apply one importContacts call; rows may be shorter than field_names.

        Call-level problems raise ``ArgumentError`` before any row is applied; row-level
        problems are logged and the row skipped, like the provider.
        """
        checked = self._check_call(field_names, rows)
        outcome = ImportOutcome(total=len(rows))
        phones_in_call: set[str] = set()
        for index, row in enumerate(checked):
            self._import_row(index, row, outcome, phones_in_call, overwrite_tags, overwrite_lists)
        return outcome

    def _check_call(self, field_names: Sequence[str], rows: Sequence[Sequence[str]]) -> list[_Row]:
        if "email" not in field_names and "phone" not in field_names:
            raise ArgumentError("field_names must contain 'email' or 'phone'")
        if len(set(field_names)) != len(field_names):
            raise ArgumentError("field_names contains a name twice")
        for name in field_names:
            if name not in IMPORT_SYSTEM_FIELDS and not self.catalog.has_field(name):
                raise ArgumentError(f"Unknown field name {name!r}")
        if len(rows) > self._max_import_rows:
            raise ArgumentError(
                f"Too many contacts in one call: {len(rows)} (at most {self._max_import_rows})"
            )
        checked: list[_Row] = []
        for index, cells in enumerate(rows):
            if len(cells) > len(field_names):
                raise ArgumentError(f"data[{index}] has more cells than field_names")
            padded = [*cells, *[""] * (len(field_names) - len(cells))]
            row = _Row(cells=dict(zip(field_names, padded, strict=True)), lists={})
            for name, value in row.cells.items():
                if name in LIST_COLUMNS:
                    row.lists[name] = self._parse_list_ids(value, name, index)
                elif name in ("email_status", "phone_status"):
                    status = value.strip()
                    if status and status not in _SETTABLE_STATUSES:
                        raise ArgumentError(f"data[{index}]: invalid {name} {status!r}")
            checked.append(row)
        return checked

    def _parse_list_ids(self, value: str, column: str, index: int) -> set[int]:
        ids: set[int] = set()
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if not part.isdigit():
                raise ArgumentError(f"data[{index}]: {column} must be comma-separated list ids")
            list_id = int(part)
            if not self.catalog.has_list(list_id):
                raise ArgumentError(f"data[{index}]: list id {list_id} in {column} does not exist")
            ids.add(list_id)
        return ids

    def _import_row(
        self,
        index: int,
        row: _Row,
        outcome: ImportOutcome,
        phones_in_call: set[str],
        overwrite_tags: bool,
        overwrite_lists: bool,
    ) -> None:
        def reject(code: str, message: str) -> None:
            outcome.invalid += 1
            outcome.log.append(ImportLogEntry(index, code, message))

        cells = row.cells
        email: str | None = None
        phone: str | None = None
        raw_email = cells.get("email", "").strip()
        raw_phone = cells.get("phone", "").strip()
        if raw_email:
            email = normalize_email(raw_email)
            if not _EMAIL.fullmatch(email) or email.rsplit("@", 1)[1] in self._rejected_domains:
                reject("e_email_invalid", "Invalid email format")
                return
        if raw_phone:
            phone = normalize_phone(raw_phone)
            if phone is None:
                reject("e_phone_invalid", "Invalid phone number format")
                return
        if email is None and phone is None:
            if "email" in cells:
                reject("e_email_invalid", "Invalid email format")
            else:
                reject("e_phone_invalid", "Invalid phone number format")
            return

        existing = self._match(email, phone)
        if cells.get("delete", "").strip() == "1":
            if existing is not None:
                self._remove(existing)
                outcome.deleted += 1
            return

        if phone is not None:
            owner = self._by_phone.get(phone)
            taken = owner is not None and (existing is None or owner != existing.id)
            if phone in phones_in_call or taken:
                reject("e_phone_not_unique", "Duplicate telephone number")
                return
            phones_in_call.add(phone)

        email_status = cells.get("email_status", "").strip() or None
        phone_status = cells.get("phone_status", "").strip() or None
        if existing is None:
            contact = EmulatedContact(
                email=email,
                phone=phone,
                email_status=email_status or "new",
                phone_status=phone_status or "active",
            )
            self._store(contact)
            outcome.inserted += 1
            if self._contact_limit is not None and len(self._contacts) > self._contact_limit:
                outcome.overlimit = True
                outcome.log.append(
                    ImportLogEntry(
                        index,
                        "w_common_overlimit",
                        "The number of contacts for the current tariff plan has been exceeded "
                        "(but the string has been added)",
                    )
                )
        else:
            contact = existing
            if email_status and contact.email_status in _CHANGEABLE_STATUSES:
                contact.email_status = email_status
            if phone is not None and phone != contact.phone:
                if contact.phone:
                    del self._by_phone[contact.phone]
                contact.phone = phone
                contact.phone_status = phone_status or "active"
                self._by_phone[phone] = contact.id
            elif phone_status and contact.phone_status in _CHANGEABLE_STATUSES:
                contact.phone_status = phone_status
            outcome.updated += 1

        _apply_lists(contact, row.lists, overwrite=overwrite_lists)
        if "tags" in cells:
            tags = {t.strip() for t in cells["tags"].split(",") if t.strip()}
            contact.tags = tags if overwrite_tags else contact.tags | tags
        for name, value in cells.items():
            if self.catalog.has_field(name):
                contact.fields[name] = value
        if contact.email is not None and contact.email_status == "new":
            outcome.new_emails += 1

    def _match(self, email: str | None, phone: str | None) -> EmulatedContact | None:
        """Match by email when the row has one, else by phone (the provider's key order)."""
        if email is not None:
            contact_id = self._by_email.get(email)
        else:
            contact_id = self._by_phone.get(phone) if phone is not None else None
        return None if contact_id is None else self._contacts[contact_id]

    # -- export -----------------------------------------------------------------------

    def export_columns(self, field_names: Sequence[str]) -> list[str]:
        """The columns an export writes: as requested, or every field when none are."""
        if not field_names:
            return [*EXPORT_SYSTEM_FIELDS, *(f.name for f in self.catalog.fields())]
        for name in field_names:
            if name not in EXPORT_SYSTEM_FIELDS and not self.catalog.has_field(name):
                raise ArgumentError(f"Unknown field name {name!r}")
        return list(field_names)

    def count(self, selection: ExportFilter) -> int:
        """How many contacts an export with this selection would hold."""
        return sum(1 for contact in self._contacts.values() if selection.matches(contact))

    def export_rows(self, columns: Sequence[str], selection: ExportFilter) -> Iterator[list[str]]:
        """Matching contacts as rows, oldest first; consume it before the base changes."""
        for contact in self._contacts.values():
            if selection.matches(contact):
                yield [export_cell(contact, column) for column in columns]


def _apply_lists(
    contact: EmulatedContact, lists: Mapping[str, set[int]], *, overwrite: bool
) -> None:
    """List membership changes of one row.

    Unsubscribed lists are consent: adding such a list again leaves it unsubscribed, and
    ``overwrite_lists`` never clears them.
    """
    if overwrite and ("email_list_ids" in lists or "email_excluded_list_ids" in lists):
        contact.email_list_ids.clear()
        contact.email_excluded_list_ids.clear()
    if overwrite and "phone_list_ids" in lists:
        contact.phone_list_ids.clear()
    added = lists.get("email_list_ids", set())
    contact.email_excluded_list_ids -= added
    contact.email_list_ids |= added - contact.email_unsubscribed_list_ids
    unsubscribed = lists.get("email_unsubscribed_list_ids", set())
    contact.email_list_ids -= unsubscribed
    contact.email_unsubscribed_list_ids |= unsubscribed
    excluded = lists.get("email_excluded_list_ids", set())
    contact.email_list_ids -= excluded
    contact.email_excluded_list_ids |= excluded
    contact.phone_list_ids |= lists.get("phone_list_ids", set())
    contact.phone_list_ids -= lists.get("phone_unsubscribed_list_ids", set())
    contact.phone_list_ids -= lists.get("phone_excluded_list_ids", set())
