"""The Altcraft emulator's profiles: databases, matching modes, subscriptions, deletes.

Matching follows providers.md §3.4: ``email`` looks at the profile and its subscriptions,
``email_profile`` at the profile only, ``email_sub`` at subscriptions only (likewise for
phone); ``email_phone`` tries email, then phone; ``custom`` looks up a custom field named
by ``field_name``; ``profile_id`` only updates. A subscription sent without ``status``
(or with -1) keeps the status it has, which is how a client avoids resubscribing anyone.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._gc import LongLived

__all__ = ["AltcraftError", "Profile", "ProfileStore", "Subscription"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+\d{7,15}$")
_INDEXED = ("email", "phones")
MATCHING = frozenset(
    {
        "email",
        "email_profile",
        "email_sub",
        "phone",
        "phone_sub",
        "profile_id",
        "custom",
        "custom_sub",
        "email_phone",
        "email_phone_sub",
    }
)


class AltcraftError(Exception):
    """An error answer: Altcraft's code (also the HTTP status) and its text."""

    def __init__(self, code: int, text: str, debug: str = "") -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.debug = debug

    def answer(self) -> dict[str, object]:
        body: dict[str, object] = {"error": self.code, "error_text": self.text}
        if self.debug:
            body["error_debug"] = self.debug
        return body


@dataclass(slots=True)
class Subscription:
    channel: str
    resource_id: int
    address: str
    status: str = "subscribed"

    def to_json(self) -> dict[str, object]:
        return {
            "channel": self.channel,
            "resource_id": self.resource_id,
            self.channel: self.address,
            "status": self.status,
        }


@dataclass(slots=True)
class Profile:
    id: str
    db_id: int
    fields: dict[str, str] = field(default_factory=dict)
    subscriptions: list[Subscription] = field(default_factory=list)

    @property
    def email(self) -> str:
        return self.fields.get("email", "")

    @property
    def phone(self) -> str:
        return self.fields.get("phones", "")

    def subscription(self, channel: str, resource_id: int) -> Subscription | None:
        for sub in self.subscriptions:
            if sub.channel == channel and sub.resource_id == resource_id:
                return sub
        return None


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return str(value)


class ProfileStore:
    """Every database's profiles, in creation order."""

    def __init__(self, *, rejected_email_domains: frozenset[str], profile_limit: int | None):
        self.rejected_email_domains = rejected_email_domains
        self.profile_limit = profile_limit
        self.databases: set[int] = set()
        self._profiles: dict[str, Profile] = {}
        # (db_id, "email" | "phones", value) -> the first profile with it: imports of many
        # thousands of profiles must not scan the base once per profile.
        self._index: dict[tuple[int, str, str], list[str]] = {}
        self._long_lived = LongLived()

    def __len__(self) -> int:
        return len(self._profiles)

    def profiles(self, db_id: int | None = None) -> Iterator[Profile]:
        return (p for p in self._profiles.values() if db_id is None or p.db_id == db_id)

    def check_db(self, db_id: object) -> int:
        if not isinstance(db_id, int) or isinstance(db_id, bool) or db_id not in self.databases:
            raise AltcraftError(400, f"Database {db_id!r} not found")
        return db_id

    def add(
        self, db_id: int, fields: Mapping[str, str], subscriptions: list[Subscription]
    ) -> Profile:
        profile = Profile(uuid.uuid4().hex[:24], db_id, dict(fields), list(subscriptions))
        self._profiles[profile.id] = profile
        self._long_lived.stored()
        self._reindex(profile, set())
        return profile

    @staticmethod
    def _keys(profile: Profile) -> set[tuple[int, str, str]]:
        """The index entries of a profile: its email and phone, and its subscriptions'."""
        keys = {(profile.db_id, name, profile.fields.get(name, "")) for name in _INDEXED}
        keys |= {(profile.db_id, f"sub:{s.channel}", s.address) for s in profile.subscriptions}
        return {key for key in keys if key[2]}

    def _reindex(self, profile: Profile, before: set[tuple[int, str, str]]) -> None:
        """Move the profile's index entries from the ``before`` keys to its current ones."""
        after = self._keys(profile) if profile.id in self._profiles else set()
        for key in before - after:
            self._index[key].remove(profile.id)
            if not self._index[key]:
                del self._index[key]
        for key in after - before:
            self._index.setdefault(key, []).append(profile.id)

    # -- matching ---------------------------------------------------------------------
    def _lookup(self, db_id: int, name: str, value: str) -> Profile | None:
        ids = self._index.get((db_id, name, value))
        return self._profiles[ids[0]] if ids else None

    def _by(self, db_id: int, test: Callable[[Profile], bool]) -> Profile | None:
        return next((p for p in self.profiles(db_id) if test(p)), None)

    def _by_sub(
        self, db_id: int, channel: str, address: str, resource_id: int | None
    ) -> Profile | None:
        for profile_id in self._index.get((db_id, f"sub:{channel}", address), []):
            profile = self._profiles[profile_id]
            if any(
                s.channel == channel
                and s.address == address
                and (resource_id is None or s.resource_id == resource_id)
                for s in profile.subscriptions
            ):
                return profile
        return None

    def find(
        self,
        db_id: int,
        matching: str,
        values: Mapping[str, str],
        *,
        field_name: str | None,
        resource_id: int | None,
    ) -> Profile | None:
        """The profile this data matches, or None; AltcraftError when it cannot match."""
        email = values.get("email", "").strip().lower()
        phone = values.get("phones", "").strip()
        if matching in ("email", "email_profile", "email_sub"):
            if not email:
                raise AltcraftError(400, f"matching {matching}: email is required")
            found = None
            if matching != "email_sub":
                found = self._lookup(db_id, "email", email)
            if found is None and matching != "email_profile":
                found = self._by_sub(db_id, "email", email, resource_id)
            return found
        if matching in ("phone", "phone_sub"):
            if not phone:
                raise AltcraftError(400, f"matching {matching}: phone is required")
            if matching == "phone":
                return self._lookup(db_id, "phones", phone)
            return self._by_sub(db_id, "phone", phone, resource_id)
        if matching in ("email_phone", "email_phone_sub"):
            sub = matching == "email_phone_sub"
            found = None
            if email:
                found = (
                    self._by_sub(db_id, "email", email, resource_id)
                    if sub
                    else self._lookup(db_id, "email", email)
                )
            if found is None and phone:
                found = (
                    self._by_sub(db_id, "phone", phone, resource_id)
                    if sub
                    else self._lookup(db_id, "phones", phone)
                )
            if not email and not phone:
                raise AltcraftError(400, f"matching {matching}: email or phone is required")
            return found
        if matching in ("custom", "custom_sub"):
            if not field_name:
                raise AltcraftError(400, f"matching {matching}: field_name is required")
            value = values.get(field_name, "").strip()
            if not value:
                raise AltcraftError(400, f"matching {matching}: {field_name} is required")
            return self._by(db_id, lambda p: p.fields.get(field_name, "").strip() == value)
        if matching == "profile_id":
            profile_id = values.get("_id") or values.get("profile_id") or ""
            found = self._profiles.get(profile_id)
            if found is None or found.db_id != db_id:
                raise AltcraftError(404, "Profile not found (profile_id matching only updates)")
            return found
        raise AltcraftError(400, f"Unknown matching {matching!r}")

    # -- writes -----------------------------------------------------------------------
    def import_one(
        self,
        db_id: int,
        data: object,
        *,
        matching: str,
        field_name: str | None,
        resource_id: int | None,
    ) -> tuple[dict[str, object], Profile | None]:
        """Insert or update one profile; the result entry and the profile (None if refused).

        A tariff limit (402) is raised: it refuses the whole call.
        """
        try:
            if not isinstance(data, dict):
                raise AltcraftError(400, "each profile must be an object")
            values = {k: _text(v) for k, v in data.items() if k != "subscriptions"}
            if "email" in values:
                values["email"] = values["email"].strip().lower()
                self._check_email(values["email"])
            if values.get("phones") and not _PHONE.match(values["phones"]):
                raise AltcraftError(400, f"Invalid phone {values['phones']!r}")
            subscriptions = self._subscriptions(data.get("subscriptions"))
            profile = self.find(
                db_id, matching, values, field_name=field_name, resource_id=resource_id
            )
        except AltcraftError as error:
            return {"error": error.code, "error_text": error.text}, None
        if profile is None:
            if self.profile_limit is not None and len(self._profiles) >= self.profile_limit:
                raise AltcraftError(402, "Tariff limit reached: no room for more profiles")
            profile = self.add(db_id, {}, [])
        before = self._keys(profile)
        profile.fields.update(values)
        for incoming, status in subscriptions:
            current = profile.subscription(incoming.channel, incoming.resource_id)
            if current is None:
                incoming.status = status or "subscribed"
                profile.subscriptions.append(incoming)
            else:
                current.address = incoming.address
                if status:
                    current.status = status
        self._reindex(profile, before)
        return {"profile_id": profile.id}, profile

    def _check_email(self, email: str) -> None:
        if not email:
            return
        if not _EMAIL.match(email):
            raise AltcraftError(400, f"Invalid email {email!r}")
        if email.rsplit("@", 1)[1] in self.rejected_email_domains:
            raise AltcraftError(400, f"Email {email!r} is on a suppression list")

    @staticmethod
    def _subscriptions(raw: object) -> list[tuple[Subscription, str | None]]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise AltcraftError(400, "subscriptions must be an array")
        result = []
        for item in raw:
            if not isinstance(item, dict):
                raise AltcraftError(400, "each subscription must be an object")
            channel = item.get("channel")
            resource = item.get("resource_id")
            if channel not in ("email", "phone", "sms") or not isinstance(resource, int):
                raise AltcraftError(400, "a subscription needs channel and resource_id")
            data: Any = item.get(f"{channel}_data") or {}
            address = _text(item.get(channel) or data.get(channel) or "").strip()
            status = item.get("status")
            keep = status is None or status in (-1, "-1")
            result.append(
                (
                    Subscription(
                        str(channel), resource, address.lower() if channel == "email" else address
                    ),
                    None if keep else _text(status),
                )
            )
        return result

    def delete(self, db_id: int, params: Mapping[str, Any]) -> None:
        """profiles/delete: one profile, found by the call's matching."""
        matching = str(params.get("matching") or "email")
        if matching not in ("email", "phone", "profile_id", "custom"):
            raise AltcraftError(400, f"Unknown matching {matching!r}")
        values = {
            "email": _text(params.get("email")),
            "phones": _text(params.get("phone")),
            "_id": _text(params.get("profile_id")),
        }
        field_name = params.get("field_name")
        if isinstance(field_name, str):
            values[field_name] = _text(params.get("field_value"))
        try:
            profile = self.find(
                db_id,
                matching,
                values,
                field_name=field_name if isinstance(field_name, str) else None,
                resource_id=None,
            )
        except AltcraftError as error:
            if error.code == 404:
                profile = None
            else:
                raise
        if profile is None:
            raise AltcraftError(404, "Profile not found")
        before = self._keys(profile)
        del self._profiles[profile.id]
        self._reindex(profile, before)
