"""The eSputnik emulator's account: contacts, segments and import sessions.

The documented semantics live here, away from HTTP: ``dedupeOn`` (and externalCustomerId
winning over it), the dedupe field never updated, the null rule for listed fields,
``failedContacts`` for bad rows, group membership, and imports that take effect only when
their session finishes (``STARTED`` until then), as eSputnik's asynchronous imports do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._gc import LongLived

__all__ = ["Account", "BadRequest", "EmulatedESputnikContact", "ImportSession"]

STANDARD_FIELDS = (
    "email",
    "sms",
    "firstName",
    "lastName",
    "externalCustomerId",
    "languageCode",
    "timeZone",
    "address",
    "town",
    "region",
    "postcode",
    "contactKey",
)
_TOP_LEVEL = (
    "firstName",
    "lastName",
    "externalCustomerId",
    "languageCode",
    "timeZone",
    "contactKey",
)
_ADDRESS = ("address", "town", "region", "postcode")
DEDUPE_ON = frozenset(
    {"email", "sms", "push", "email_or_sms", "id", "externalCustomerId", "fieldId"}
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9]{6,15}$")
_DIGIT = re.compile(r"[0-9]")


class BadRequest(Exception):
    """The request as a whole is wrong: HTTP 400."""


@dataclass
class EmulatedESputnikContact:
    """One stored contact; ``values`` holds the standard fields by their API names."""

    id: int
    values: dict[str, str] = field(default_factory=dict)
    fields: dict[int, str] = field(default_factory=dict)
    groups: set[str] = field(default_factory=set)

    @property
    def email(self) -> str | None:
        return self.values.get("email")

    @property
    def sms(self) -> str | None:
        return self.values.get("sms")


@dataclass
class ImportSession:
    """One accepted ``POST /api/v1/contacts``: applied when it finishes."""

    id: str
    due: float
    operations: list[tuple[dict[str, Any], Mapping[str, Any]]]
    status: str = "STARTED"
    error: str | None = None
    mapping: list[dict[str, object]] = field(default_factory=list)
    finished_at: float | None = None


class Account:
    """Contacts by id plus the indexes dedupe needs; segments by name."""

    def __init__(self) -> None:
        self.contacts: dict[int, EmulatedESputnikContact] = {}
        self.groups: dict[str, int] = {}
        self.sessions: dict[str, ImportSession] = {}
        # The account's unsubscribed list: kept apart from contacts, as eSputnik does, so
        # no contact import or update takes an address off it.
        self.unsubscribed: set[str] = set()
        self._next_id = 100001
        self._next_group = 5001
        self._next_session = 1
        self._long_lived = LongLived()

    def next_id(self) -> int:
        """Reserve nothing; the id the next new contact would get."""
        return self._next_id

    def add(self, contact: EmulatedESputnikContact) -> None:
        """Store a contact as it is; later ids stay above it."""
        self.contacts[contact.id] = contact
        self._long_lived.stored()
        self._next_id = max(self._next_id, contact.id + 1)
        for name in contact.groups:
            self.group_id(name)

    # -- segments -----------------------------------------------------------------
    def group_id(self, name: str) -> int:
        if name not in self.groups:
            self.groups[name] = self._next_group
            self._next_group += 1
        return self.groups[name]

    def group_name(self, group_id: int) -> str | None:
        return next((n for n, i in self.groups.items() if i == group_id), None)

    # -- imports ------------------------------------------------------------------
    def start_import(
        self, body: Mapping[str, Any], *, now: float, delay: float, max_contacts: int
    ) -> tuple[list[dict[str, Any]], ImportSession]:
        """Check the request, reject bad rows now, queue the rest as a session."""
        contacts = body.get("contacts")
        if not isinstance(contacts, list) or not contacts:
            raise BadRequest("contacts: a non-empty array is required")
        if len(contacts) > max_contacts:
            raise BadRequest(f"contacts: at most {max_contacts} per request, got {len(contacts)}")
        dedupe = body.get("dedupeOn")
        if dedupe not in DEDUPE_ON:
            raise BadRequest(f"dedupeOn: must be one of {sorted(DEDUPE_ON)}")
        if dedupe == "fieldId" and not isinstance(body.get("fieldId"), int):
            raise BadRequest("fieldId: required when dedupeOn is fieldId")
        failed: list[dict[str, Any]] = []
        operations = []
        for contact in contacts:
            if not isinstance(contact, dict):
                raise BadRequest("contacts: every item must be an object")
            problem = _problem(contact)
            if problem is not None:
                failed.append({**contact, "error": problem})
            else:
                operations.append((contact, body))
        session = ImportSession(f"imp-{self._next_session:08d}", now + delay, operations)
        self._next_session += 1
        self.sessions[session.id] = session
        return failed, session

    def finish_due(self, now: float, *, hold: bool = False) -> None:
        """Apply every session whose time has come, in the order they were started."""
        for session in self.sessions.values():
            if session.status != "STARTED" or hold or session.due > now:
                continue
            if session.error is not None:
                session.status = "ERROR"
            else:
                for contact, options in session.operations:
                    contact_id = self._upsert(contact, options)
                    session.mapping.append(
                        {"dedupeValue": _dedupe_value(contact, options), "contactId": contact_id}
                    )
                session.status = "FINISHED"
            session.operations = []
            session.finished_at = now

    def _upsert(self, contact: Mapping[str, Any], options: Mapping[str, Any]) -> int:
        incoming, custom = _flatten(contact)
        dedupe = str(options["dedupeOn"])
        found = self._find(incoming, custom, contact, options)
        if found is None:
            found = EmulatedESputnikContact(self._next_id)
            self._next_id += 1
            self.contacts[found.id] = found
            found.values.update(incoming)
            found.fields.update(custom)
        else:
            protected = _dedupe_fields(dedupe, contact)
            listed = options.get("contactFields")
            names = STANDARD_FIELDS if listed is None else [str(n) for n in listed]
            for name in names:
                if name in protected:
                    continue
                if name in incoming:
                    found.values[name] = incoming[name]
                else:  # listed without a value: set to null
                    found.values.pop(name, None)
            for field_id in options.get("customFieldsIDs") or ():
                if dedupe == "fieldId" and field_id == options.get("fieldId"):
                    continue
                if field_id in custom:
                    found.fields[field_id] = custom[field_id]
                else:
                    found.fields.pop(field_id, None)
        for name in options.get("groupNames") or ():
            self.group_id(str(name))
            found.groups.add(str(name))
        for name in options.get("groupNamesExclude") or ():
            found.groups.discard(str(name))
        return found.id

    def _find(
        self,
        incoming: Mapping[str, str],
        custom: Mapping[int, str],
        contact: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> EmulatedESputnikContact | None:
        dedupe = options["dedupeOn"]
        if incoming.get("externalCustomerId"):  # documented: it wins over dedupeOn
            return self._first("externalCustomerId", incoming["externalCustomerId"])
        if dedupe == "id":
            return self.contacts.get(int(contact.get("id") or 0))
        if dedupe == "fieldId":
            wanted = custom.get(int(options["fieldId"]))
            return next(
                (
                    c
                    for c in self.contacts.values()
                    if wanted and c.fields.get(int(options["fieldId"])) == wanted
                ),
                None,
            )
        if dedupe in ("email", "email_or_sms") and incoming.get("email"):
            found = self._first("email", incoming["email"])
            if found is not None or dedupe == "email":
                return found
        if dedupe in ("sms", "email_or_sms") and incoming.get("sms"):
            return self._first("sms", incoming["sms"])
        return None

    def _first(self, name: str, value: str) -> EmulatedESputnikContact | None:
        wanted = value.lower() if name == "email" else value
        for contact in self.contacts.values():
            have = contact.values.get(name)
            if have is not None and (have.lower() if name == "email" else have) == wanted:
                return contact
        return None

    # -- reads --------------------------------------------------------------------
    def search(self, query: Mapping[str, str]) -> list[EmulatedESputnikContact]:
        """Contacts matching the search conditions, in contact id order."""
        found = []
        for contact in sorted(self.contacts.values(), key=lambda c: c.id):
            if "email" in query and (contact.email or "").lower() != query["email"].lower():
                continue
            if "sms" in query and (contact.sms or "").lstrip("+") != query["sms"].lstrip("+"):
                continue
            if "externalCustomerId" in query and (
                contact.values.get("externalCustomerId") != query["externalCustomerId"]
            ):
                continue
            if "firstname" in query and contact.values.get("firstName") != query["firstname"]:
                continue
            if "lastname" in query and contact.values.get("lastName") != query["lastname"]:
                continue
            found.append(contact)
        return found

    def members(self, group: str) -> list[EmulatedESputnikContact]:
        return sorted((c for c in self.contacts.values() if group in c.groups), key=lambda c: c.id)

    def delete(self, contact_id: int) -> bool:
        return self.contacts.pop(contact_id, None) is not None


def _flatten(contact: Mapping[str, Any]) -> tuple[dict[str, str], dict[int, str]]:
    values: dict[str, str] = {}
    for channel in contact.get("channels") or ():
        kind, value = channel.get("type"), channel.get("value")
        if kind in ("email", "sms") and value and kind not in values:
            values[kind] = str(value)
    for name in _TOP_LEVEL:
        if contact.get(name):
            values[name] = str(contact[name])
    address = contact.get("address") or {}
    for name in _ADDRESS:
        if address.get(name):
            values[name] = str(address[name])
    custom = {
        int(item["id"]): str(item["value"])
        for item in contact.get("fields") or ()
        if item.get("id") is not None and item.get("value") not in (None, "")
    }
    return values, custom


def _dedupe_fields(dedupe: str, contact: Mapping[str, Any]) -> frozenset[str]:
    if contact.get("externalCustomerId"):
        return frozenset({"externalCustomerId"})
    return {
        "email": frozenset({"email"}),
        "sms": frozenset({"sms"}),
        "externalCustomerId": frozenset({"externalCustomerId"}),
    }.get(dedupe, frozenset())


def _dedupe_value(contact: Mapping[str, Any], options: Mapping[str, Any]) -> str:
    values, custom = _flatten(contact)
    if values.get("externalCustomerId"):
        return values["externalCustomerId"]
    dedupe = options["dedupeOn"]
    if dedupe == "fieldId":
        return custom.get(int(options["fieldId"]), "")
    if dedupe == "sms":
        return values.get("sms", "")
    return values.get("email") or values.get("sms", "")


def _problem(contact: Mapping[str, Any]) -> str | None:
    """Why eSputnik would refuse this contact's data, or None."""
    channels = contact.get("channels")
    if not isinstance(channels, list):
        return "channels: required"
    seen: dict[str, int] = {}
    for channel in channels:
        if not isinstance(channel, dict):
            return "channels: every channel must be an object"
        kind, value = channel.get("type"), str(channel.get("value") or "")
        seen[str(kind)] = seen.get(str(kind), 0) + 1
        if seen[str(kind)] > 2:
            return f"channels: at most two channels of type {kind}"
        if kind == "email" and not _EMAIL.match(value):
            return f"Invalid email address: {value!r}"
        if kind == "sms" and not _PHONE.match(value):
            return f"Invalid phone number: {value!r}"
    if not channels and not contact.get("externalCustomerId") and not contact.get("id"):
        return "channels: at least one channel is required"
    for name in ("firstName", "lastName"):
        if _DIGIT.search(str(contact.get(name) or "")):
            return f"{name}: numbers are not allowed"
    return None


def contact_json(
    contact: EmulatedESputnikContact, *, full: bool, groups: Mapping[str, int]
) -> dict[str, Any]:
    """A stored contact as the API shows it: ``BaseContact`` from search, ``Contact``
    (with external id, address and static segments) from a segment's member list."""
    values = contact.values
    channels = [
        {"type": kind, "value": values[kind]} for kind in ("email", "sms") if kind in values
    ]
    body: dict[str, Any] = {"id": contact.id, "channels": channels}
    for name in ("firstName", "lastName"):
        if name in values:
            body[name] = values[name]
    if contact.fields:
        body["fields"] = [{"id": i, "value": v} for i, v in sorted(contact.fields.items())]
    if full:
        for name in ("externalCustomerId", "languageCode", "timeZone", "contactKey"):
            if name in values:
                body[name] = values[name]
        address = {n: values[n] for n in _ADDRESS if n in values}
        if address:
            body["address"] = address
        body["groups"] = [
            {"id": groups[name], "name": name, "type": "Static"} for name in sorted(contact.groups)
        ]
    return body


def contacts_for(
    items: Sequence[EmulatedESputnikContact], start: int, rows: int
) -> list[EmulatedESputnikContact]:
    """``startindex`` (from 1) and ``maxrows`` applied to an ordered list."""
    return list(items[start - 1 : start - 1 + rows])
