"""Altcraft's export files read back as remote records, whatever their column layout.

Altcraft does not document the columns of a ``profiles/get_all`` file (providers.md
§3.5), so fields are found by name: case, spaces and dashes do not matter, a few
aliases are known (``phones``/``phone``, ``_fname``/``First name``...), and a JSON export
may nest the profile's fields one level down (``{"profile_id": .., "data": {...}}``).
Consent comes from the ``subscriptions`` column (a JSON list in either format): a
profile whose subscription to the synced resource is unsubscribed or suspended is
locked, so the sync never updates (and so never resubscribes) it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path

import orjson

from sync_engine.contact import RemoteRecord
from sync_engine.providers.export_file import iter_export_rows
from sync_engine.records import RowProblem, SourceRow
from sync_engine.sources._threaded import iterate_in_thread

__all__ = ["LOCKED_STATUSES", "AltcraftSnapshot", "column_name", "lock_reason", "profile_values"]

# Subscription statuses that mean the contact (or Altcraft) withdrew consent. Altcraft's
# numeric codes are not documented where we could read them; 1 and 2 are taken as
# suspended and unsubscribed, the order the UI lists them in.
LOCKED_STATUSES: Mapping[str, str] = {
    "unsubscribed": "unsubscribed",
    "suspended": "suspended",
    "blocked": "blocked",
    "1": "suspended",
    "2": "unsubscribed",
}
_ALIASES: Mapping[str, tuple[str, ...]] = {
    "email": ("email", "_email", "e_mail", "email_address"),
    "phone": ("phones", "phone", "_phone", "phone_number"),
    "first_name": ("_fname", "first_name", "fname", "firstname"),
    "last_name": ("_lname", "last_name", "lname", "lastname"),
    "middle_name": ("_mname", "middle_name", "mname", "middlename"),
}
_SUBSCRIPTIONS = ("subscriptions", "_subscriptions")
_SPACES = re.compile(r"[\s\-]+")


def column_name(name: str) -> str:
    """A column name as fields are looked up: lower case, runs of spaces/dashes as ``_``."""
    return _SPACES.sub("_", name.strip().lower())


def _flatten(raw: Mapping[str, object]) -> dict[str, object]:
    """Keys normalised; a nested object's keys lifted one level (outer keys win)."""
    flat: dict[str, object] = {}
    nested: list[Mapping[str, object]] = []
    for key, value in raw.items():
        if isinstance(value, dict):
            nested.append(value)
        else:
            flat[column_name(str(key))] = value
    for inner in nested:
        for key, value in inner.items():
            flat.setdefault(column_name(str(key)), value)
    return flat


def _text(value: object, *, first: bool) -> str:
    """A cell as text; a list gives its first non-empty item for an address, else all."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, list):
        items = [_text(item, first=first) for item in value]
        items = [item for item in items if item]
        if first:
            return items[0] if items else ""
        return ", ".join(items)
    return orjson.dumps(value).decode()


def profile_values(raw: Mapping[str, object], fields: Sequence[str]) -> dict[str, object]:
    """The synced fields of one exported profile, keyed by the sync's field names."""
    flat = _flatten(raw)
    values: dict[str, object] = {}
    for name in fields:
        for alias in _ALIASES.get(name, (column_name(name),)):
            if alias in flat:
                values[name] = _text(flat[alias], first=name in ("email", "phone"))
                break
        else:
            values[name] = None
    return values


def lock_reason(raw: Mapping[str, object], resource_id: int | None) -> str | None:
    """Why Altcraft owns this profile: its subscription to the synced resource is off."""
    if resource_id is None:
        return None
    flat = _flatten(raw)
    value = next((flat[name] for name in _SUBSCRIPTIONS if name in flat), None)
    if isinstance(value, str) and value.strip():
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    if not isinstance(value, list):
        return None
    for item in value:
        if not isinstance(item, dict):
            continue
        if str(item.get("resource_id", "")).strip() != str(resource_id):
            continue
        status = str(item.get("status", "")).strip().lower()
        if status in LOCKED_STATUSES:
            channel = item.get("channel") or "subscription"
            return f"{channel} {LOCKED_STATUSES[status]} on resource {resource_id}"
    return None


class AltcraftSnapshot:
    """The downloaded export files, parsed lazily and re-readable (for dry-run samples)."""

    def __init__(self, paths: Sequence[Path], *, fields: Sequence[str], resource_id: int | None):
        self.paths = list(paths)
        self.fields = list(fields)
        self.resource_id = resource_id

    def _rows(self, path: Path) -> Iterator[RemoteRecord | RowProblem]:
        for item in iter_export_rows(path, source_name=f"Altcraft export {path.name}"):
            if isinstance(item, SourceRow):
                yield RemoteRecord(
                    item.origin,
                    profile_values(item.values, self.fields),
                    lock_reason(item.values, self.resource_id),
                )
            else:
                yield item

    def count_rows(self) -> int:
        """Rows in the files (broken ones included): to tell a partial export. Blocking."""
        return sum(
            1
            for path in self.paths
            for _ in iter_export_rows(path, source_name=f"Altcraft export {path.name}")
        )

    async def records(self) -> AsyncIterator[RemoteRecord | RowProblem]:
        for path in self.paths:
            async for item in iterate_in_thread(partial(self._rows, path)):
                yield item
