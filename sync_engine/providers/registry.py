"""Which providers exist, and the few things the engine and config need from each.

Each provider module exports a ``SPEC``; this module finds it by the ``[provider] type``
and imports the module only when that provider is used, so a UniSender run never loads
the others (and config parsing never imports a client at module load).
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from sync_engine.clock import Clock
from sync_engine.schema import FieldSchema

if TYPE_CHECKING:
    from sync_engine.config import ConfigTable, ProviderConfig, SyncConfig

    from .base import Provider

__all__ = ["PROVIDER_MODULES", "ProviderContext", "ProviderSpec", "open_provider", "provider_spec"]

# ``[provider] type`` -> the module whose ``SPEC`` serves it.
PROVIDER_MODULES: Mapping[str, str] = {
    "unisender": "sync_engine.providers.unisender",
    "selzy": "sync_engine.providers.unisender",
    "esputnik": "sync_engine.providers.esputnik",
    "yespo": "sync_engine.providers.esputnik",
    "altcraft": "sync_engine.providers.altcraft",
}


@dataclass(frozen=True, kw_only=True)
class ProviderContext:
    """What the engine lends a provider for one run."""

    session: aiohttp.ClientSession
    work_dir: Path
    clock: Clock | None = None
    rng: random.Random | None = None
    on_progress: Callable[[str, Mapping[str, Any]], None] | None = None


@dataclass(frozen=True, kw_only=True)
class ProviderSpec:
    """One provider as the rest of the engine sees it.

    ``parse_config`` reads the ``[provider]`` table (the caller checks for unknown keys);
    ``validate`` checks the whole config against the provider's rules (its keys, field
    limits, removal options) and raises ConfigError naming the file and key; ``open``
    makes the client for one run.
    """

    schema: FieldSchema
    parse_config: Callable[[ConfigTable, str], ProviderConfig]
    validate: Callable[[SyncConfig, str], None]
    open: Callable[[SyncConfig, ProviderContext], Provider]


def provider_spec(kind: str) -> ProviderSpec:
    try:
        module_name = PROVIDER_MODULES[kind]
    except KeyError:
        raise ValueError(f"unknown provider type {kind!r}") from None
    spec = importlib.import_module(module_name).SPEC
    assert isinstance(spec, ProviderSpec)
    return spec


def open_provider(config: SyncConfig, context: ProviderContext) -> Provider:
    """The client for ``config``'s provider, for one run."""
    return provider_spec(config.provider.kind).open(config, context)
