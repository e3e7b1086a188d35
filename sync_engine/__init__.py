"""sync-engine: keeps a provider's contact base equal to your local truth.

Library use::

    from sync_engine import SyncEngine, load_config

    async with SyncEngine(load_config("sync-engine.toml")) as engine:
        report = await engine.run()
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .config import (
    CsvSourceConfig,
    JsonlSourceConfig,
    PostgresSourceConfig,
    ProviderConfig,
    SqliteSourceConfig,
    SyncConfig,
    SyncSettings,
    UniSenderConfig,
    load_config,
    parse_config,
)
from .contact import Contact, RemoteContact, RemoteRecord
from .engine import SyncEngine
from .errors import (
    BatchRejectedError,
    ConfigError,
    ExportError,
    FatalProviderError,
    ProviderError,
    RetriableProviderError,
    RunRefusedError,
    SourceError,
    SyncEngineError,
)
from .plan import Batch, BatchKind, Change, ChangeKind, DeletionGuard, Plan, PlanSummary
from .providers.base import BatchOutcome, Provider, RowOutcome, RowStatus
from .records import RowOrigin, RowProblem, SourceRow
from .report import Outcome, Problem, SyncReport
from .secret import Secret
from .sources import (
    CsvSource,
    IterableSource,
    JsonlSource,
    PostgresSource,
    Source,
    SqliteSource,
)
from .transforms import FieldRule

try:
    __version__ = version("sync-engine")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "Batch",
    "BatchKind",
    "BatchOutcome",
    "BatchRejectedError",
    "Change",
    "ChangeKind",
    "ConfigError",
    "Contact",
    "CsvSource",
    "CsvSourceConfig",
    "DeletionGuard",
    "ExportError",
    "FatalProviderError",
    "FieldRule",
    "IterableSource",
    "JsonlSource",
    "JsonlSourceConfig",
    "Outcome",
    "Plan",
    "PlanSummary",
    "PostgresSource",
    "PostgresSourceConfig",
    "Problem",
    "Provider",
    "ProviderConfig",
    "ProviderError",
    "RemoteContact",
    "RemoteRecord",
    "RetriableProviderError",
    "RowOrigin",
    "RowOutcome",
    "RowProblem",
    "RowStatus",
    "RunRefusedError",
    "Secret",
    "Source",
    "SourceError",
    "SourceRow",
    "SqliteSource",
    "SqliteSourceConfig",
    "SyncConfig",
    "SyncEngine",
    "SyncEngineError",
    "SyncReport",
    "SyncSettings",
    "UniSenderConfig",
    "__version__",
    "load_config",
    "parse_config",
]
