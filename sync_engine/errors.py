"""One exception tree for everything sync-engine raises on purpose.

The branches tell a caller what to do next, not where the error came from::

    SyncEngineError
    ├── ConfigError               the config or the command line is wrong: fix it (exit 2)
    ├── SourceError               the local source cannot be read at all (exit 3)
    ├── RunRefusedError           the engine refuses to run the plan (deletion guard) (exit 3)
    ├── RunLockedError            another run of the same target holds the lock (exit 75)
    ├── JournalError              the run journal cannot be opened or written (exit 3)
    └── ProviderError             the provider answered badly
        ├── FatalProviderError    retrying cannot help: bad key, no money, unknown method (exit 3)
        ├── RetriableProviderError   try again later: 5xx, network, timeout, rate limit
        ├── BatchRejectedError    the provider refused a whole batch as bad data; never looped
        └── ExportError           the provider's snapshot could not be obtained or trusted

Messages never carry secrets: whoever raises builds the message from redacted parts.
"""

from __future__ import annotations

__all__ = [
    "BatchRejectedError",
    "ConfigError",
    "ExportError",
    "FatalProviderError",
    "JournalError",
    "ProviderError",
    "RetriableProviderError",
    "RunLockedError",
    "RunRefusedError",
    "SourceError",
    "SyncEngineError",
]


class SyncEngineError(Exception):
    """Root of every error sync-engine raises deliberately."""


class ConfigError(SyncEngineError):
    """The configuration or the command line is invalid; the message names the key."""


class SourceError(SyncEngineError):
    """The local source cannot be read at all (missing file, unreadable database)."""


class RunRefusedError(SyncEngineError):
    """The engine refuses to apply a plan, e.g. the deletion guard tripped."""


class RunLockedError(SyncEngineError):
    """Another run of the same target is in progress; this one did not start."""


class JournalError(SyncEngineError):
    """The run journal (SQLite file or PostgreSQL) cannot be opened, read or written."""


class ProviderError(SyncEngineError):
    """The provider's API answered with an error or could not be reached.

    ``code`` is the provider's own error code where it sent one (``invalid_api_key``).
    """

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class FatalProviderError(ProviderError):
    """Retrying cannot help (bad key, access denied, no money): the run stops at once."""


class RetriableProviderError(ProviderError):
    """A temporary failure; ``retry_after`` is the provider's requested wait in seconds."""

    def __init__(
        self, message: str, *, code: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class BatchRejectedError(ProviderError):
    """The provider refused a whole batch as invalid (UniSender ``invalid_arg``).

    It means bad data or a bug in the request, so the batch is reported, never resent.
    """


class ExportError(ProviderError):
    """The provider's export failed, timed out, or produced a file that cannot be trusted."""
