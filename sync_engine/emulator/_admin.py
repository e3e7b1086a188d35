"""``/_emulator/...`` endpoints: drive an emulator that runs in another process.

They need no API key on purpose (a local test server, see ``unisender``'s docstring) and
talk plain JSON; contact sets travel as sorted lists so answers are stable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from ._model import EmulatedContact
from ._wire import json_response

if TYPE_CHECKING:
    from .unisender import UniSenderEmulator

__all__ = ["add_admin_routes", "contact_from_json", "contact_to_json", "seed_document"]

_ID_SETS = (
    "email_list_ids",
    "email_unsubscribed_list_ids",
    "email_excluded_list_ids",
    "phone_list_ids",
)
_TEXTS = ("email", "phone", "email_status", "phone_status")


def contact_to_json(contact: EmulatedContact) -> dict[str, object]:
    """A contact as JSON-friendly data."""
    return {
        "id": contact.id,
        "email": contact.email,
        "phone": contact.phone,
        "email_status": contact.email_status,
        "phone_status": contact.phone_status,
        **{name: sorted(getattr(contact, name)) for name in _ID_SETS},
        "tags": sorted(contact.tags),
        "fields": dict(contact.fields),
    }


def contact_from_json(data: object) -> EmulatedContact:
    """The inverse of ``contact_to_json``; every key but email/phone is optional."""
    if not isinstance(data, Mapping):
        raise ValueError("each contact must be a JSON object")
    unknown = set(data) - {"id", *_TEXTS, *_ID_SETS, "tags", "fields"}
    if unknown:
        raise ValueError(f"unknown contact keys: {sorted(unknown)}")
    contact = EmulatedContact()
    for name in _TEXTS:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} must be a string")
        if value is not None:
            setattr(contact, name, value)
    for name in _ID_SETS:
        ids = data.get(name, [])
        if not isinstance(ids, list) or not all(type(i) is int for i in ids):
            raise ValueError(f"{name} must be a list of integers")
        setattr(contact, name, set(ids))
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError("tags must be a list of strings")
    contact.tags = set(tags)
    fields = data.get("fields", {})
    if not isinstance(fields, Mapping) or not all(isinstance(v, str) for v in fields.values()):
        raise ValueError("fields must be an object of strings")
    contact.fields = dict(fields)
    contact_id = data.get("id", 0)
    if type(contact_id) is not int:
        raise ValueError("id must be an integer")
    contact.id = contact_id
    return contact


def seed_document(emulator: UniSenderEmulator, data: object) -> int:
    """Seed from ``{"lists": [titles], "fields": [names], "contacts": [...]}``; returns contacts.

    The format ``sync-engine emulate --seed FILE`` reads, with contacts as the
    ``/_emulator/seed`` endpoint takes them.
    """
    if not isinstance(data, Mapping):
        raise ValueError("the seed must be a JSON object with lists, fields and contacts")
    for title in data.get("lists", []):
        emulator.add_list(str(title))
    for name in data.get("fields", []):
        emulator.add_field(str(name))
    contacts = [contact_from_json(item) for item in data.get("contacts", [])]
    emulator.seed(contacts)
    return len(contacts)


def _bad_request(message: str) -> web.Response:
    return json_response({"error": message}, status=400)


def add_admin_routes(app: web.Application, emulator: UniSenderEmulator) -> None:
    """Register the admin endpoints of ``emulator`` on ``app``."""

    async def contacts(request: web.Request) -> web.Response:
        return json_response([contact_to_json(c) for c in emulator.contacts()])

    async def seed(request: web.Request) -> web.Response:
        try:
            data = orjson.loads(await request.read())
            if not isinstance(data, list):
                raise ValueError("the body must be a JSON list of contacts")
            parsed = [contact_from_json(item) for item in data]
            emulator.seed(parsed)
        except (ValueError, orjson.JSONDecodeError) as exc:
            return _bad_request(str(exc))
        return json_response({"seeded": len(parsed)})

    async def add_faults(request: web.Request) -> web.Response:
        try:
            data = orjson.loads(await request.read())
            specs = data if isinstance(data, list) else [data]
            for spec in specs:
                if not isinstance(spec, Mapping):
                    raise ValueError("a fault spec must be a JSON object")
                emulator.faults.add_spec(spec)
        except (ValueError, orjson.JSONDecodeError) as exc:
            return _bad_request(str(exc))
        return json_response({"armed": len(emulator.faults.rules)})

    async def clear_faults(request: web.Request) -> web.Response:
        emulator.faults.clear()
        return json_response({"armed": 0})

    async def calls(request: web.Request) -> web.Response:
        return json_response(dict(emulator.calls))

    async def requests(request: web.Request) -> web.Response:
        return json_response(
            [
                {
                    "method": r.method,
                    "http_method": r.http_method,
                    "params": [list(pair) for pair in r.items],
                    "content_type": r.content_type,
                }
                for r in emulator.requests
            ]
        )

    app.router.add_get("/_emulator/contacts", contacts)
    app.router.add_post("/_emulator/seed", seed)
    app.router.add_post("/_emulator/faults", add_faults)
    app.router.add_delete("/_emulator/faults", clear_faults)
    app.router.add_get("/_emulator/calls", calls)
    app.router.add_get("/_emulator/requests", requests)
