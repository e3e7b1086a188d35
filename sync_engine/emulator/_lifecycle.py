"""What every emulator shares as an object: ``async with`` closes it."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["ClosingEmulator"]


class ClosingEmulator:
    """``async with SomeEmulator(...) as emulator:`` calls ``aclose()`` on the way out.

    Serving is separate (``sync_engine.testing``), so one emulator's state can outlive
    several servers; closing releases what the emulator itself holds (export files).
    """

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release what the emulator holds; its state stays readable."""
