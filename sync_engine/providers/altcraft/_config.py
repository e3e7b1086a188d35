"""The ``[provider]`` section for Altcraft, and the rules it imposes on the rest of a config.

Altcraft Platform is self-hosted, so ``base_url`` has no default. The token is read from
``token`` (Altcraft's word) or ``api_key`` (the engine's), never both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from sync_engine.config import ConfigTable, ProviderConfig, SyncConfig, SyncSettings, positive
from sync_engine.config import base_url as parse_base_url
from sync_engine.errors import ConfigError
from sync_engine.secret import Secret

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "MATCHING_MODES",
    "MAX_BATCH_ROWS",
    "AltcraftConfig",
    "check_altcraft",
    "matching_for",
    "parse_altcraft",
]

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024  # "Тело запроса ограничено по умолчанию до 10мб"
MAX_BATCH_ROWS = 10_000  # "не рекомендуется передавать более 10 000 профилей"
# Matching modes a sync can use, by the [sync] key they fit. profile_id is left out on
# purpose: Altcraft matches by it "only on update", and a sync also inserts.
MATCHING_MODES: Mapping[str, frozenset[str]] = {
    "email": frozenset({"email", "email_profile", "email_sub"}),
    "phone": frozenset({"phone", "phone_sub"}),
    "email_or_phone": frozenset({"email_phone", "email_phone_sub"}),
    "field": frozenset({"custom", "custom_sub"}),
}
_DEFAULT_MATCHING = {"email": "email", "phone": "phone", "email_or_phone": "email_phone"}
_CHANNELS = frozenset({"email", "phone"})
_TIMEOUT_KEYS = frozenset({"days", "hours", "minutes"})


@dataclass(frozen=True, kw_only=True)
class AltcraftConfig(ProviderConfig):
    """One Altcraft database (optionally read back through a segment), and how to write it.

    ``trigger_id`` switches apply from ``profiles/import_batch`` (idempotent) to
    ``campaigns/triggers/import_and_start_batch_task`` (sends a campaign: never resent).
    ``matching`` None derives the mode from ``[sync] key``.
    """

    kind: str = "altcraft"
    db_id: int
    resource_id: int | None = None
    segment_id: int | None = None
    subscribe: tuple[str, ...] = ()
    matching: str | None = None
    trigger_id: int | None = None
    trigger_timeout: Mapping[str, int] | None = None
    trigger_content: Mapping[str, object] | None = None
    trigger_custom_data: Mapping[str, object] | None = None
    skip_triggers: bool = False
    skip_invalid_subscriptions: bool = False
    detect_geo: bool = False
    token_in: Literal["header", "body"] = "header"  # noqa: S105 - where it goes, not a token
    batch_size: int = 1000
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    rate_limit: int = 20  # calls per rate_period; Altcraft documents no limit (providers.md §3)
    rate_period: float = 1.0
    export_format: Literal["csv", "json"] = "csv"
    task_timeout: float = 3600.0  # overall wait for an export or trigger task
    task_poll_interval: float = 1.0  # first poll delay; grows to task_poll_max
    task_poll_max: float = 15.0

    def scope(self) -> str:
        return f"db/{self.db_id}"

    def warnings(self) -> list[str]:
        """What ``check-config`` points out: a trigger that the import may skip."""
        if self.trigger_id is not None and self.skip_triggers:
            return [
                "[provider] trigger_id is set with skip_triggers = true: Altcraft may import"
                " without sending the trigger campaign"
            ]
        return []

    def fingerprint(self) -> list[object]:
        # The trigger and the body limit decide what a journaled batch's requests were,
        # which settling a lost answer depends on.
        return [
            *super().fingerprint(),
            self.resource_id,
            self.segment_id,
            self.matching,
            self.trigger_id,
            self.max_body_bytes,
            self.subscribe,
        ]


def parse_altcraft(table: ConfigTable, kind: str) -> AltcraftConfig:
    """``[provider]`` for Altcraft."""
    if table.optional("base_url", str) is None:
        raise ConfigError(
            f"{table.where('base_url')} is required: Altcraft is self-hosted"
            ' (e.g. "https://altcraft.example.com")'
        )
    return AltcraftConfig(
        kind=kind,
        base_url=parse_base_url(table, ""),
        api_key=_token(table),
        db_id=_id(table, "db_id", required=True) or 0,
        resource_id=_id(table, "resource_id"),
        segment_id=_id(table, "segment_id"),
        subscribe=_subscribe(table),
        matching=_matching(table),
        trigger_id=_id(table, "trigger_id"),
        trigger_timeout=_trigger_timeout(table),
        trigger_content=_object(table, "trigger_content"),
        trigger_custom_data=_object(table, "trigger_custom_data"),
        skip_triggers=table.get("skip_triggers", bool, False),
        skip_invalid_subscriptions=table.get("skip_invalid_subscriptions", bool, False),
        detect_geo=table.get("detect_geo", bool, False),
        token_in=table.choice("token_in", Literal["header", "body"], "header"),
        timeout=positive(table, "timeout", float, 30.0),
        batch_size=positive(table, "batch_size", int, 1000, maximum=MAX_BATCH_ROWS),
        max_body_bytes=positive(table, "max_body_bytes", int, DEFAULT_MAX_BODY_BYTES),
        concurrency=positive(table, "concurrency", int, 4, maximum=64),
        max_attempts=positive(table, "max_attempts", int, 5, maximum=50),
        rate_limit=positive(table, "rate_limit", int, 20),
        rate_period=positive(table, "rate_period", float, 1.0),
        export_format=table.choice("export_format", Literal["csv", "json"], "csv"),
        task_timeout=positive(table, "task_timeout", float, 3600.0),
        task_poll_interval=positive(table, "task_poll_interval", float, 1.0),
        task_poll_max=positive(table, "task_poll_max", float, 15.0),
    )


def _token(table: ConfigTable) -> Secret:
    has_token = table.optional("token", str) is not None
    has_key = table.optional("api_key", str) is not None
    if has_token and has_key:
        raise ConfigError(f"{table.where('token')}: give token or api_key, not both")
    return table.secret("api_key" if has_key else "token")


def _id(table: ConfigTable, key: str, *, required: bool = False) -> int | None:
    value = table.optional(key, int)
    if value is None and required:
        raise ConfigError(f"{table.where(key)} is required")
    if value is not None and value <= 0:
        raise ConfigError(f"{table.where(key)} must be a positive id; got {value}")
    return value


def _subscribe(table: ConfigTable) -> tuple[str, ...]:
    channels = table.get("subscribe", list, [])
    if not all(isinstance(c, str) and c in _CHANNELS for c in channels):
        raise ConfigError(f'{table.where("subscribe")} must list channels among "email", "phone"')
    return tuple(dict.fromkeys(channels))


def _matching(table: ConfigTable) -> str | None:
    value = table.optional("matching", str)
    known = frozenset().union(*MATCHING_MODES.values())
    if value is not None and value not in known:
        raise ConfigError(
            f"{table.where('matching')} must be one of {', '.join(sorted(known))}; got {value!r}"
            " (profile_id matches only on update, so a sync cannot use it)"
        )
    return value


def _object(table: ConfigTable, key: str) -> Mapping[str, object] | None:
    value = table.optional(key, dict)
    return dict(value) if value is not None else None


def _trigger_timeout(table: ConfigTable) -> Mapping[str, int] | None:
    value = _object(table, "trigger_timeout")
    if value is None:
        return None
    if not set(value) <= _TIMEOUT_KEYS or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value.values()
    ):
        raise ConfigError(
            f"{table.where('trigger_timeout')} must be a table of days, hours, minutes"
            " (whole numbers, 0 or more)"
        )
    return {k: int(v) for k, v in value.items()}  # type: ignore[call-overload]  # checked


def matching_for(config: AltcraftConfig, sync: SyncSettings) -> str:
    """The matching mode of this sync: the configured one, else the one its key implies."""
    if config.matching is not None:
        return config.matching
    if sync.key == "field":
        return "custom"
    return _DEFAULT_MATCHING[sync.key]


def check_altcraft(config: SyncConfig, label: str) -> None:
    """Altcraft's own rules: matching fits the key, removals delete, triggers are explicit."""
    provider = config.provider
    assert isinstance(provider, AltcraftConfig)
    sync = config.sync
    matching = matching_for(provider, sync)
    if matching not in MATCHING_MODES[sync.key]:
        raise ConfigError(
            f"{label}: [provider] matching = {matching!r} does not fit [sync] key ="
            f" {sync.key!r} (use one of {', '.join(sorted(MATCHING_MODES[sync.key]))})"
        )
    if sync.mode == "mirror" and sync.removal != "delete":
        raise ConfigError(
            f'{label}: [sync] mode = "mirror" with Altcraft removes by profiles/delete, so it'
            ' needs removal = "delete" (unsubscribing would overwrite consent)'
        )
    if provider.subscribe and provider.resource_id is None:
        raise ConfigError(f"{label}: [provider] subscribe needs resource_id: the resource")
    for channel in provider.subscribe:
        if channel not in config.mapping:
            raise ConfigError(
                f"{label}: [provider] subscribe = [{channel!r}] needs [mapping] {channel}"
            )
    extras = ("trigger_timeout", "trigger_content", "trigger_custom_data")
    for name in extras:
        if getattr(provider, name) is not None and provider.trigger_id is None:
            raise ConfigError(f"{label}: [provider] {name} applies only with trigger_id")
    if provider.task_poll_interval > provider.task_poll_max:
        raise ConfigError(f"{label}: [provider] task_poll_interval is above task_poll_max")
