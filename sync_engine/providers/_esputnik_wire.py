"""eSputnik wire format: our field names <-> its ``Contact`` JSON, and its answers.

Field names in ``[mapping]``: ``email`` and ``phone`` (the email and sms channels), the
standard fields by their API names (``firstName``, ``lastName``, ``externalCustomerId``,
``languageCode``, ``timeZone``, and the address parts ``address``, ``town``, ``region``,
``postcode``), and custom fields by id as ``field_<id>``.

Two documented rules shape every request. Fields named in ``contactFields`` and
``customFieldsIDs`` but absent from a contact are set to null, so those lists name only
the fields this sync owns (an unsynced field is never blanked); and the ``dedupeOn``
field is never updated, so it is left out of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from sync_engine.normalise import FieldValue
from sync_engine.plan import Batch, BatchKind, Change
from sync_engine.schema import FieldKind, FieldSchema

from .base import BatchOutcome, RowOutcome, RowStatus

__all__ = [
    "ESPUTNIK_SCHEMA",
    "SEARCH_FIELDS",
    "Dedupe",
    "Request",
    "contact_key",
    "contact_values",
    "custom_field_id",
    "dedupe_for",
    "encode_contact",
    "encode_requests",
    "failed_contacts",
    "merge",
    "outcome_for",
]

ESPUTNIK_SCHEMA = FieldSchema(
    system={
        "email": FieldKind.EMAIL,
        "phone": FieldKind.PHONE,
        "firstName": FieldKind.TEXT,
        "lastName": FieldKind.TEXT,
        "externalCustomerId": FieldKind.TEXT,
        "languageCode": FieldKind.TEXT,
        "timeZone": FieldKind.TEXT,
        "address": FieldKind.TEXT,
        "town": FieldKind.TEXT,
        "region": FieldKind.TEXT,
        "postcode": FieldKind.TEXT,
    },
    # The provider's identifiers and memberships: never written from local data.
    reserved=frozenset({"id", "contactId", "groups", "addressBookId"}),
)

# What GET /api/v1/contacts (BaseContact) returns besides custom fields.
SEARCH_FIELDS = frozenset({"email", "phone", "firstName", "lastName"})
_TOP_LEVEL = ("firstName", "lastName", "externalCustomerId", "languageCode", "timeZone")
_ADDRESS = ("address", "town", "region", "postcode")
_CUSTOM = re.compile(r"^field_([1-9][0-9]{0,9})$")
# What each of our fields is called in contactFields.
_CONTACT_FIELD = {"email": "email", "phone": "sms", **{n: n for n in _TOP_LEVEL + _ADDRESS}}


def custom_field_id(name: str) -> int | None:
    """The eSputnik id of a ``field_<id>`` mapping name, else None."""
    match = _CUSTOM.match(name)
    return int(match.group(1)) if match else None


@dataclass(frozen=True, slots=True)
class Dedupe:
    """How contacts are matched: ``dedupeOn`` and, for ``fieldId``, which field."""

    on: str
    field_id: int | None = None

    @property
    def owned(self) -> frozenset[str]:
        """Our field names that are the dedupe field (and so never updated)."""
        if self.on == "email":
            return frozenset({"email"})
        if self.on == "sms":
            return frozenset({"phone"})
        if self.on == "externalCustomerId":
            return frozenset({"externalCustomerId"})
        if self.on == "fieldId":
            return frozenset({f"field_{self.field_id}"})
        return frozenset()


def dedupe_for(key: str, key_field: str | None) -> Dedupe:
    """``dedupeOn`` for the sync key."""
    if key == "email":
        return Dedupe("email")
    if key == "phone":
        return Dedupe("sms")
    if key == "email_or_phone":
        return Dedupe("email_or_sms")
    if key_field == "externalCustomerId":
        return Dedupe("externalCustomerId")
    field_id = custom_field_id(key_field or "")
    return Dedupe("fieldId", field_id) if field_id is not None else Dedupe("externalCustomerId")


def _wire_phone(value: str) -> str:
    # The API's examples write numbers as digits only; E.164 without the plus.
    return value[1:] if value.startswith("+") else value


def _text(value: FieldValue) -> str:
    return ",".join(sorted(value)) if isinstance(value, frozenset) else value


def encode_contact(fields: Mapping[str, FieldValue]) -> dict[str, Any]:
    """One ``Contact``; an empty value is left out (with its field listed: null)."""
    channels = []
    email = _text(fields.get("email", ""))
    if email:
        channels.append({"type": "email", "value": email})
    phone = _text(fields.get("phone", ""))
    if phone:
        channels.append({"type": "sms", "value": _wire_phone(phone)})
    contact: dict[str, Any] = {"channels": channels}
    for name in _TOP_LEVEL:
        value = _text(fields.get(name, ""))
        if value:
            contact[name] = value
    address = {n: v for n in _ADDRESS if (v := _text(fields.get(n, "")))}
    if address:
        contact["address"] = address
    custom = []
    for name, raw in fields.items():
        field_id = custom_field_id(name)
        if field_id is not None and (text := _text(raw)):
            custom.append({"id": field_id, "value": text})
    if custom:
        contact["fields"] = custom
    return contact


@dataclass(frozen=True, slots=True)
class Request:
    """One ``POST /api/v1/contacts`` body and the batch rows it carries."""

    body: bytes
    indexes: tuple[int, ...]


def encode_requests(
    batch: Batch,
    *,
    dedupe: Dedupe,
    group: str | None,
    restore_deleted: bool,
    event_key: str | None,
    max_body_bytes: int,
) -> list[Request]:
    """The requests for one batch: usually one; more when rows differ in which fields
    they carry (a ``null = "keep"`` field missing from some) or the body would be too big.
    """
    by_fields: dict[tuple[str, ...], list[int]] = {}
    for index, change in enumerate(batch.changes):
        by_fields.setdefault(tuple(sorted(change.fields)), []).append(index)
    requests: list[Request] = []
    for names, indexes in by_fields.items():
        options = _options(
            batch.kind,
            names,
            dedupe=dedupe,
            group=group,
            restore_deleted=restore_deleted,
            event_key=event_key,
        )
        requests.extend(_sized(batch.changes, indexes, options, max_body_bytes))
    return requests


def _options(
    kind: BatchKind,
    names: Sequence[str],
    *,
    dedupe: Dedupe,
    group: str | None,
    restore_deleted: bool,
    event_key: str | None,
) -> dict[str, Any]:
    options: dict[str, Any] = {"dedupeOn": dedupe.on}
    if dedupe.field_id is not None:
        options["fieldId"] = dedupe.field_id
    if kind is BatchKind.REMOVE:
        # Only leave the group: every list empty, so no field is touched.
        options.update(contactFields=[], customFieldsIDs=[], groupNamesExclude=[group])
        return options
    owned = dedupe.owned
    options["contactFields"] = [
        _CONTACT_FIELD[n] for n in names if n in _CONTACT_FIELD and n not in owned
    ]
    options["customFieldsIDs"] = [
        field_id for n in names if n not in owned and (field_id := custom_field_id(n)) is not None
    ]
    if group is not None:
        options["groupNames"] = [group]
    options["restoreDeleted"] = restore_deleted
    if event_key is not None:
        options["eventKeyForNewContacts"] = event_key
    return options


def _sized(
    changes: Sequence[Change], indexes: Sequence[int], options: Mapping[str, Any], limit: int
) -> Iterable[Request]:
    """Split ``indexes`` so that no body exceeds ``limit`` bytes (one contact at least)."""
    head = orjson.dumps({**options, "contacts": []})
    overhead = len(head)
    encoded = [orjson.dumps(encode_contact(changes[i].fields)) for i in indexes]
    start = 0
    size = overhead
    for position, item in enumerate(encoded):
        if position > start and size + len(item) + 1 > limit:
            yield _request(head, encoded[start:position], indexes[start:position])
            start, size = position, overhead
        size += len(item) + 1
    if start < len(encoded):
        yield _request(head, encoded[start:], indexes[start:])


def _request(head: bytes, contacts: Sequence[bytes], indexes: Sequence[int]) -> Request:
    # head ends with "[]}": splice the already-encoded contacts in.
    body = head[:-2] + b",".join(contacts) + b"]}"
    return Request(body, tuple(indexes))


def contact_values(contact: Mapping[str, Any]) -> dict[str, str]:
    """Our field names -> raw values for one contact read back from the API."""
    values: dict[str, str] = {}
    for channel in contact.get("channels") or ():
        if not isinstance(channel, Mapping):
            continue
        kind, value = channel.get("type"), str(channel.get("value") or "")
        if kind == "email" and "email" not in values:
            values["email"] = value
        elif kind == "sms" and "phone" not in values:
            values["phone"] = "+" + value if value.isdigit() else value
    for name in _TOP_LEVEL:
        if contact.get(name) is not None:
            values[name] = str(contact[name])
    address = contact.get("address")
    if isinstance(address, Mapping):
        for name in _ADDRESS:
            if address.get(name) is not None:
                values[name] = str(address[name])
    for item in contact.get("fields") or ():
        if isinstance(item, Mapping) and item.get("id") is not None:
            values[f"field_{item['id']}"] = str(item.get("value") or "")
    return values


def contact_key(contact: Mapping[str, Any], dedupe: Dedupe) -> str:
    """The sync key of a contact echoed by the API (a failed one), as our keys look."""
    values = contact_values(contact)
    email = values.get("email", "").strip().lower()
    phone = values.get("phone", "").strip()
    if dedupe.on == "email":
        return email
    if dedupe.on == "sms":
        return phone
    if dedupe.on == "email_or_sms":
        return email or phone
    if dedupe.on == "fieldId":
        return values.get(f"field_{dedupe.field_id}", "").strip()
    return values.get("externalCustomerId", "").strip()


def failed_contacts(answer: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """``failedContacts``: documented as an object for one failure, an array for several."""
    failed = answer.get("failedContacts")
    if isinstance(failed, Mapping):
        return [failed]
    if isinstance(failed, list):
        return [item for item in failed if isinstance(item, Mapping)]
    return []


def outcome_for(
    batch: Batch,
    indexes: Sequence[int],
    failed: Sequence[Mapping[str, Any]],
    dedupe: Dedupe,
    *,
    session_error: str | None = None,
) -> list[RowOutcome]:
    """Per-row outcomes of one request: failed contacts are rejected with their reason;
    when the import session ended in ERROR every other row is transient.
    """
    by_key: dict[str, list[int]] = {}
    for index in indexes:
        by_key.setdefault(batch.changes[index].key, []).append(index)
    rows: dict[int, RowOutcome] = {}
    for contact in failed:
        reason = str(contact.get("error") or "rejected by eSputnik")
        for index in by_key.get(contact_key(contact, dedupe), ()):
            rows[index] = RowOutcome(index, RowStatus.REJECTED, "failed_contact", reason)
    if session_error is not None:
        for index in indexes:
            if index not in rows:
                rows[index] = RowOutcome(
                    index, RowStatus.TRANSIENT, "import_error", f"import session: {session_error}"
                )
    return [rows[i] for i in sorted(rows)]


def merge(outcomes: Iterable[Sequence[RowOutcome]]) -> BatchOutcome:
    """One batch outcome from the outcomes of its requests."""
    rows = sorted((row for part in outcomes for row in part), key=lambda row: row.index)
    return BatchOutcome(rows=tuple(rows))
