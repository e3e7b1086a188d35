"""Altcraft Platform API v1.1 (self-hosted): config, client, snapshot and ``SPEC``."""

from __future__ import annotations

from sync_engine.config import SyncConfig
from sync_engine.providers.registry import ProviderContext, ProviderSpec

from ._config import AltcraftConfig, check_altcraft, parse_altcraft
from ._schema import ALTCRAFT_SCHEMA
from .provider import AltcraftProvider

__all__ = ["ALTCRAFT_SCHEMA", "SPEC", "AltcraftConfig", "AltcraftProvider"]


def _open(config: SyncConfig, context: ProviderContext) -> AltcraftProvider:
    assert isinstance(config.provider, AltcraftConfig)
    return AltcraftProvider(
        config.provider,
        session=context.session,
        work_dir=context.work_dir,
        sync=config.sync,
        clock=context.clock,
        rng=context.rng,
        on_progress=context.on_progress,
    )


SPEC = ProviderSpec(
    schema=ALTCRAFT_SCHEMA,
    parse_config=parse_altcraft,
    validate=check_altcraft,
    open=_open,
)
