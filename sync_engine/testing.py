"""Public test helpers: serve an emulator on loopback for a test or for ``sync-engine emulate``.

Neither helper closes the emulator: the caller owns it (``async with UniSenderEmulator(...)``
or ``await emulator.aclose()``), so one emulator's state can outlive several servers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol

from aiohttp import web
from yarl import URL

from .emulator._gc import freeze_long_lived_objects

__all__ = ["ServableEmulator", "running_emulator", "serve_forever"]


class ServableEmulator(Protocol):
    """Any provider emulator: it builds the aiohttp application that serves its API."""

    def app(self) -> web.Application: ...

    async def aclose(self) -> None: ...


# In-flight requests get this long to finish when a server stops; tests should not wait more.
_SHUTDOWN_TIMEOUT = 2.0


@asynccontextmanager
async def _serving(emulator: ServableEmulator, host: str, port: int) -> AsyncIterator[str]:
    runner = web.AppRunner(emulator.app(), access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
        yield str(URL.build(scheme="http", host=host, port=bound_port))
    finally:
        await runner.cleanup()


@asynccontextmanager
async def running_emulator(
    emulator: ServableEmulator, *, host: str = "127.0.0.1"
) -> AsyncIterator[str]:
    """Serve the emulator on a free loopback port; yields a base URL like ``http://127.0.0.1:PORT``."""
    async with _serving(emulator, host, 0) as base_url:
        yield base_url


async def serve_forever(
    emulator: ServableEmulator,
    *,
    host: str,
    port: int,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until cancelled; ``ready(base_url)`` is called once the socket listens.

    The server has the process to itself, so a growing contact base may keep its objects
    out of the cyclic collector's way (see ``emulator._gc``).
    """
    freeze_long_lived_objects()
    async with _serving(emulator, host, port) as base_url:
        if ready is not None:
            ready(base_url)
        await asyncio.Event().wait()
