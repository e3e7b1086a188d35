"""Names for what a journal keys on: the target (one provider list of one account) and
the config a plan was made with (a resumed plan is only valid for the same config)."""

from __future__ import annotations

import dataclasses
import hashlib
from urllib.parse import urlsplit

import orjson
import xxhash

from sync_engine.config import SyncConfig

__all__ = ["config_digest", "target_of"]


def target_of(config: SyncConfig) -> str:
    """``unisender://api.unisender.com/list/7#3fa2c1d0``: host, list, and an account tag.

    The account tag is a short keyed hash of the API key, so two accounts on one host
    never share a lock or a journal entry, while the key itself is never stored.
    """
    provider = config.provider
    host = urlsplit(provider.base_url).netloc
    account = hashlib.blake2b(
        provider.api_key.reveal().encode(), digest_size=4, person=b"sync-engine-acct"
    ).hexdigest()
    return f"{provider.kind}://{host}/{provider.scope()}#{account}"


def config_digest(config: SyncConfig) -> str:
    """A fingerprint of everything that shapes a plan (not of secrets or timeouts)."""
    provider = config.provider
    shape = {
        "source": repr(config.source),
        "mapping": sorted(config.mapping.items()),
        "sync": dataclasses.asdict(config.sync),
        "provider": provider.fingerprint(),
    }
    return xxhash.xxh3_64_hexdigest(orjson.dumps(shape, default=str))
