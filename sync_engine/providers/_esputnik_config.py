"""The ``[provider]`` section for eSputnik / Yespo, and the rules a config must follow.

Defaults follow the documented limits: 3000 contacts per ``POST /api/v1/contacts``,
200 requests/s for the API, 50/s for contact search, 500 rows per search page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sync_engine.config import ConfigTable, ProviderConfig, SyncConfig, base_url, positive
from sync_engine.errors import ConfigError

from ._esputnik_wire import ESPUTNIK_SCHEMA, SEARCH_FIELDS, custom_field_id, dedupe_for

__all__ = ["DEFAULT_HOSTS", "OPT_IN_WARNING", "ESputnikConfig", "check_esputnik", "parse_esputnik"]

DEFAULT_HOSTS = {"esputnik": "https://esputnik.com", "yespo": "https://yespo.io"}
OPT_IN_WARNING = (
    "eSputnik creates contacts from POST /api/v1/contacts as confirmed (no double"
    " opt-in); set [provider] source_opted_in = true once the source's contacts have"
    " opted in elsewhere, since mailing contacts who did not is spam"
)
# eventKeyForNewContacts: the spec forbids these characters and caps the length at 100.
_BAD_EVENT_KEY = re.compile(r"[<;’\\/|\"`'^?!,>\s]")


@dataclass(frozen=True, kw_only=True)
class ESputnikConfig(ProviderConfig):
    """One eSputnik (or Yespo) account; ``group`` is the segment the sync owns."""

    kind: str = "esputnik"
    base_url: str = DEFAULT_HOSTS["esputnik"]
    group: str | None = None
    restore_deleted: bool = False
    event_key: str | None = None  # eventKeyForNewContacts
    source_opted_in: bool = False  # the source's contacts already passed double opt-in
    erase: bool = False  # removal = "delete": also erase the contact's data for good
    batch_size: int = 3000  # documented maximum per POST /api/v1/contacts
    max_body_bytes: int = 8 * 1024 * 1024  # a request larger than this is split
    rate_limit: int = 200  # requests per second, the account's default
    search_rate_limit: int = 50  # GET /api/v1/contacts, per second
    page_size: int = 500  # documented maximum for maxrows
    read_concurrency: int = 4  # search pages in flight at once
    read_attempts: int = 3  # whole re-reads when the paged read was inconsistent
    import_poll_interval: float = 1.0  # first importstatus poll; grows to import_poll_max
    import_poll_max: float = 10.0
    import_timeout: float = 3600.0  # one import session, start to FINISHED

    def scope(self) -> str:
        return f"group/{self.group}" if self.group is not None else "all"

    def fingerprint(self) -> list[object]:
        return [*super().fingerprint(), self.restore_deleted, self.event_key]

    def warnings(self) -> list[str]:
        return [] if self.source_opted_in else [OPT_IN_WARNING]


def parse_esputnik(table: ConfigTable, kind: str) -> ESputnikConfig:
    """``[provider]`` for eSputnik and Yespo (the same API on two hosts)."""
    group = table.optional("group", str)
    if group is not None and not group.strip():
        raise ConfigError(f"{table.where('group')} must not be empty")
    event_key = table.optional("event_key", str)
    if event_key is not None and (
        not event_key or len(event_key) > 100 or _BAD_EVENT_KEY.search(event_key)
    ):
        raise ConfigError(
            f"{table.where('event_key')}: at most 100 characters, no spaces or"
            " < ; ' \\ / | \" ` ^ ? ! , >"
        )
    return ESputnikConfig(
        kind=kind,
        base_url=base_url(table, DEFAULT_HOSTS[kind]),
        api_key=table.secret("api_key"),
        group=group,
        restore_deleted=table.get("restore_deleted", bool, False),
        event_key=event_key,
        source_opted_in=table.get("source_opted_in", bool, False),
        erase=table.get("erase", bool, False),
        timeout=positive(table, "timeout", float, 30.0),
        batch_size=positive(table, "batch_size", int, 3000, maximum=3000),
        max_body_bytes=positive(table, "max_body_bytes", int, 8 * 1024 * 1024),
        concurrency=positive(table, "concurrency", int, 4, maximum=64),
        rate_limit=positive(table, "rate_limit", int, 200),
        search_rate_limit=positive(table, "search_rate_limit", int, 50),
        page_size=positive(table, "page_size", int, 500, maximum=500),
        read_concurrency=positive(table, "read_concurrency", int, 4, maximum=32),
        read_attempts=positive(table, "read_attempts", int, 3, maximum=10),
        import_poll_interval=positive(table, "import_poll_interval", float, 1.0),
        import_poll_max=positive(table, "import_poll_max", float, 10.0),
        import_timeout=positive(table, "import_timeout", float, 3600.0),
        max_attempts=positive(table, "max_attempts", int, 5, maximum=50),
    )


def check_esputnik(config: SyncConfig, label: str) -> None:
    """eSputnik's own rules: which keys it can dedupe on, and what removal needs."""
    provider = config.provider
    assert isinstance(provider, ESputnikConfig)
    sync = config.sync
    for name in config.mapping:
        if name not in ESPUTNIK_SCHEMA.system and custom_field_id(name) is None:
            raise ConfigError(
                f"{label}: [mapping] {name}: not an eSputnik field; use a standard field"
                f" ({', '.join(sorted(ESPUTNIK_SCHEMA.system))}) or a custom field as"
                " field_<id>"
            )
    if sync.key == "field":
        assert sync.key_field is not None
        if sync.key_field != "externalCustomerId" and custom_field_id(sync.key_field) is None:
            raise ConfigError(
                f"{label}: [sync] key_field = {sync.key_field!r}: eSputnik dedupes on"
                " externalCustomerId or a custom field (field_<id>)"
            )
    if provider.group is None:
        # Without a group the read-back is the contact search, whose BaseContact carries
        # only these; any other field would never read back equal, so never converge.
        unreadable = [
            n for n in config.mapping if n not in SEARCH_FIELDS and custom_field_id(n) is None
        ]
        if unreadable:
            raise ConfigError(
                f"{label}: [mapping] {unreadable[0]}: eSputnik's contact search does not"
                " return it; set [provider] group (its member list returns every field)"
            )
    dedupe = dedupe_for(sync.key, sync.key_field)
    if "externalCustomerId" in config.mapping and dedupe.on != "externalCustomerId":
        raise ConfigError(
            f"{label}: [mapping] externalCustomerId: eSputnik matches on it whenever it is"
            ' sent, ignoring dedupeOn; use key = "field" with key_field = "externalCustomerId"'
        )
    if sync.mode == "mirror" and sync.removal == "exclude" and provider.group is None:
        raise ConfigError(
            f'{label}: [sync] removal = "exclude" takes contacts out of the synced group, so'
            ' [provider] group is required (or use removal = "delete")'
        )
    if sync.mode == "mirror" and sync.removal == "delete" and dedupe.on == "fieldId":
        raise ConfigError(
            f'{label}: [sync] removal = "delete" finds contacts by email, phone or'
            " externalCustomerId; eSputnik cannot search by a custom field"
        )
