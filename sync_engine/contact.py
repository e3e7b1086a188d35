"""Contacts on both sides of a sync, and the mapping that builds them from raw rows.

Local rows are mapped (provider field <- local column) and normalised strictly: a bad
value is a :class:`~sync_engine.records.RowProblem` naming the row and field. Remote rows
are normalised leniently: the provider's data is what it is, and a contact we cannot
parse must still count (for the deletion guard) rather than vanish.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .normalise import FieldValue, InvalidValueError, Normaliser, normalise_text
from .records import RowOrigin, RowProblem, SourceRow
from .schema import FieldKind, FieldSchema

__all__ = ["Contact", "ContactBuilder", "RemoteContact", "RemoteRecord"]


@dataclass(frozen=True, slots=True)
class Contact:
    """A normalised local contact: its key and every synced field (provider names)."""

    key: str
    fields: Mapping[str, FieldValue]
    origin: RowOrigin | None = None


@dataclass(frozen=True, slots=True)
class RemoteRecord:
    """A raw row of the provider's snapshot, with the provider's verdict on consent.

    ``locked`` says why the provider owns this contact (``email_status=unsubscribed``);
    such contacts are never updated or removed by a sync.
    """

    origin: RowOrigin
    values: Mapping[str, object]
    locked: str | None = None


@dataclass(frozen=True, slots=True)
class RemoteContact:
    """A normalised remote contact."""

    key: str
    fields: Mapping[str, FieldValue]
    locked: str | None = None
    origin: RowOrigin | None = None


class ContactBuilder:
    """Turns raw rows into contacts with the same normalisation on both sides."""

    def __init__(
        self,
        *,
        mapping: Mapping[str, str],
        schema: FieldSchema,
        normaliser: Normaliser,
        key: str,
        key_field: str | None = None,
        implicit_list_id: int | None = None,
    ) -> None:
        self.mapping = dict(mapping)
        self.schema = schema
        self.normaliser = normaliser
        self.key_kind = key
        # key = "field": the provider field (an external id, a custom field) that is the key
        self.key_field = key_field if key == "field" else None
        if key == "field" and not key_field:
            raise ValueError('key = "field" needs key_field')
        self.implicit_list_id = str(implicit_list_id) if implicit_list_id is not None else None
        fields = list(mapping)
        if self.implicit_list_id is not None:
            for list_field in self._list_fields():
                if list_field not in fields:
                    fields.append(list_field)
        self.fields: tuple[str, ...] = tuple(fields)
        self._kinds = {name: schema.kind(name) for name in self.fields}

    def _list_fields(self) -> list[str]:
        if self.key_kind == "email":
            return ["email_list_ids"]
        if self.key_kind == "phone":
            return ["phone_list_ids"]
        return ["email_list_ids", "phone_list_ids"]

    def local(self, row: SourceRow) -> Contact | RowProblem:
        """Map and strictly normalise one local row."""
        values: dict[str, FieldValue] = {}
        problem: RowProblem | None = None
        for name in self.fields:
            column = self.mapping.get(name)
            raw = row.values.get(column) if column is not None else None
            try:
                values[name] = self.normaliser.value(self._kinds[name], raw)
            except InvalidValueError as error:
                if problem is None:
                    problem = RowProblem(row.origin, column, str(error))
                values[name] = ""
        self._add_implicit_list(values)
        key = self._key(values)
        if problem is not None:
            return RowProblem(problem.origin, problem.field, problem.reason, key=key)
        if key is None:
            return RowProblem(row.origin, self.key_column, f"no {self.key_label} (the sync key)")
        return Contact(key=key, fields=values, origin=row.origin)

    def remote(self, record: RemoteRecord) -> RemoteContact | RowProblem:
        """Normalise one snapshot row leniently; only a missing key is a problem."""
        values: dict[str, FieldValue] = {}
        for name in self.fields:
            kind = self._kinds[name]
            raw = record.values.get(name)
            try:
                values[name] = self.normaliser.value(kind, raw)
            except InvalidValueError:
                # Keep the provider's text so the contact still has an identity.
                text = normalise_text(raw)
                values[name] = text.lower() if kind is FieldKind.EMAIL else text
        key = self._key(values)
        if key is None:
            return RowProblem(record.origin, None, f"provider row has no {self.key_label}")
        return RemoteContact(key=key, fields=values, locked=record.locked, origin=record.origin)

    def _add_implicit_list(self, values: dict[str, FieldValue]) -> None:
        if self.implicit_list_id is None:
            return
        if values.get("email") and "email_list_ids" in values:
            target = "email_list_ids"
        elif values.get("phone") and "phone_list_ids" in values:
            target = "phone_list_ids"
        else:
            return
        current = values[target]
        # A list column that failed to normalise holds "" and its row is rejected anyway.
        if isinstance(current, frozenset):
            values[target] = current | {self.implicit_list_id}

    def _key(self, values: Mapping[str, FieldValue]) -> str | None:
        if self.key_field is not None:
            value = values.get(self.key_field)
            return value if isinstance(value, str) and value else None
        email = values.get("email")
        phone = values.get("phone")
        if self.key_kind == "email":
            return email if isinstance(email, str) and email else None
        if self.key_kind == "phone":
            return phone if isinstance(phone, str) and phone else None
        for candidate in (email, phone):
            if isinstance(candidate, str) and candidate:
                return candidate
        return None

    @property
    def key_label(self) -> str:
        """How reports name the sync key: "email", "phone" or "email or phone"."""
        if self.key_field is not None:
            return self.key_field
        return {"email": "email", "phone": "phone"}.get(self.key_kind, "email or phone")

    @property
    def key_column(self) -> str | None:
        """The local column a missing key is reported against."""
        if self.key_field is not None:
            return self.mapping.get(self.key_field)
        return self.mapping.get("phone" if self.key_kind == "phone" else "email")

    def identity(self, key: str) -> dict[str, FieldValue]:
        """The provider fields that identify a contact known only by its key."""
        if self.key_field is not None:
            return {self.key_field: key}
        if "@" in key:
            return {"email": key}
        return {"phone": key}
