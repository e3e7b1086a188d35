"""TOML config -> frozen, validated config objects.

Every error names the file and the key, so a user can fix it without reading code.
Strings may reference the environment as ``${NAME}`` (or ``${NAME:-default}``);
secrets end up in :class:`~sync_engine.secret.Secret`, whose repr is masked.
Unknown keys are errors: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import os
import re
import tomllib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from .errors import ConfigError
from .secret import Secret
from .sources._dsn import dsn_secrets, redact_dsn
from .sources._types import DEFAULT_DATE_FORMAT, DEFAULT_DATETIME_FORMAT
from .transforms import FieldRule, NullPolicy, check_date_format, parse_transforms

__all__ = [
    "ConfigTable",
    "CsvSourceConfig",
    "DuplicateRule",
    "JournalConfig",
    "JsonlSourceConfig",
    "KeyKind",
    "Mode",
    "NullPolicy",
    "PostgresSourceConfig",
    "ProviderConfig",
    "ProviderKind",
    "RemovalKind",
    "SourceConfig",
    "SqliteSourceConfig",
    "SyncConfig",
    "SyncSettings",
    "UniSenderConfig",
    "load_config",
    "parse_config",
    "positive",
]

Mode = Literal["upsert", "mirror", "insert-only", "update-only"]
KeyKind = Literal["email", "phone", "email_or_phone", "field"]
RemovalKind = Literal["exclude", "delete"]
ProviderKind = Literal["unisender", "selzy", "esputnik", "yespo", "altcraft"]
SourceKind = Literal["csv", "jsonl", "postgresql", "postgres", "sqlite"]
DuplicateRule = Literal["first", "last", "newest"]

DEFAULT_BASE_URLS: Mapping[str, str] = {
    "unisender": "https://api.unisender.com",
    "selzy": "https://api.selzy.com",
}


@dataclass(frozen=True, kw_only=True)
class SourceSettings:
    """What every source shares: how its rows become field values, and duplicate keys.

    ``null``: a NULL without a default is cleared (sent empty) or kept (left out of the
    comparison and the upload, so the provider's value stays). ``duplicates``: which of
    two rows with one key wins: the first, the last, or the newest by ``newest_by``.
    Dates and timestamps are written with the two formats (timestamps in UTC); naive
    timestamps are read in ``timezone``.
    """

    name: str | None = None  # how reports name the source; None: a default per type
    null: NullPolicy = "clear"
    duplicates: DuplicateRule = "first"
    newest_by: str | None = None
    date_format: str = DEFAULT_DATE_FORMAT
    datetime_format: str = DEFAULT_DATETIME_FORMAT
    timezone: str = "UTC"


@dataclass(frozen=True, kw_only=True)
class CsvSourceConfig(SourceSettings):
    """A CSV file with a header row."""

    path: Path
    delimiter: str | None = ","  # None: sniff from the header line
    encoding: str = "utf-8-sig"  # utf-8 with or without BOM

    def describe(self) -> str:
        return f"{type(self).__name__} {self.path}"


@dataclass(frozen=True, kw_only=True)
class JsonlSourceConfig(SourceSettings):
    """A JSON Lines file: one object per line."""

    path: Path
    encoding: str = "utf-8"

    def describe(self) -> str:
        return f"{type(self).__name__} {self.path}"


@dataclass(frozen=True, kw_only=True)
class PostgresSourceConfig(SourceSettings):
    """A PostgreSQL query or table, read through a server-side cursor.

    ``dsn`` is a secret: it usually carries the password. Timeouts are in seconds;
    ``statement_timeout`` bounds each statement (the query and every fetch), 0 for none.
    """

    dsn: Secret
    query: str | None = None
    table: str | None = None
    columns: tuple[str, ...] | None = None  # table mode: the columns to read
    chunk_size: int = 5000
    connect_timeout: float = 10.0
    statement_timeout: float = 300.0

    def describe(self) -> str:
        what = f"table {self.table}" if self.table else "query"
        return f"{type(self).__name__} {redact_dsn(self.dsn.reveal())} {what}"


@dataclass(frozen=True, kw_only=True)
class SqliteSourceConfig(SourceSettings):
    """A query or table of an SQLite database file, opened read-only."""

    path: Path
    query: str | None = None
    table: str | None = None
    columns: tuple[str, ...] | None = None
    chunk_size: int = 5000
    timeout: float = 5.0  # waiting for a writer's lock
    statement_timeout: float = 300.0  # per fetch of one chunk; 0 for none

    def describe(self) -> str:
        what = f"table {self.table}" if self.table else "query"
        return f"{type(self).__name__} {self.path} {what}"


SourceConfig = CsvSourceConfig | JsonlSourceConfig | PostgresSourceConfig | SqliteSourceConfig


@dataclass(frozen=True, kw_only=True)
class ProviderConfig:
    """What every provider's ``[provider]`` section has; each provider adds its own keys.

    ``api_key`` is the account's credential whatever the provider calls it (a token for
    Altcraft); it never leaves the provider client.
    """

    kind: str
    base_url: str
    api_key: Secret
    timeout: float = 30.0
    batch_size: int
    concurrency: int = 4
    max_attempts: int = 5

    def scope(self) -> str:
        """The part of the account a sync owns (``list/7``, ``group/VIP``), for the journal."""
        return "all"

    def fingerprint(self) -> list[object]:
        """What of this section shapes a plan (never secrets or timeouts)."""
        return [self.kind, self.base_url, self.scope(), self.batch_size]

    def secrets(self) -> list[str]:
        return [self.api_key.reveal()]

    def warnings(self) -> list[str]:
        """What ``check-config`` should point out about this section without going online."""
        return []


@dataclass(frozen=True, kw_only=True)
class UniSenderConfig(ProviderConfig):
    """UniSender or Selzy: one API, two hosts. Defaults follow the documented limits."""

    kind: str = "unisender"
    base_url: str = DEFAULT_BASE_URLS["unisender"]
    lang: Literal["en", "ru", "ua"] = "en"
    list_id: int | None = None
    overwrite_tags: bool = False
    overwrite_lists: bool = False
    timeout: float = 30.0  # per call, as the importContacts page recommends
    batch_size: int = 500  # documented maximum rows per importContacts call
    rate_limit: int = 1200  # calls per rate_period per API key, for the whole API
    rate_period: float = 60.0
    export_rate_limit: int = 20  # async/exportContacts: 20 per 60 s
    export_timeout: float = 3600.0  # overall wait for the export task
    export_poll_interval: float = 1.0  # first poll delay; grows to export_poll_max
    export_poll_max: float = 15.0
    platform: str = "sync-engine"

    def scope(self) -> str:
        return f"list/{self.list_id}" if self.list_id is not None else "all"

    def fingerprint(self) -> list[object]:
        return [*super().fingerprint(), self.overwrite_tags, self.overwrite_lists]


@dataclass(frozen=True, kw_only=True)
class SyncSettings:
    """How the two sides are compared and what a run may change."""

    mode: Mode = "upsert"
    key: KeyKind = "email"
    key_field: str | None = None  # key = "field": the mapped provider field that is the key
    default_region: str | None = None  # ISO country for phones written without +CC
    removal: RemovalKind = "exclude"  # mirror mode: leave the synced list, or delete
    max_delete_share: float = 0.10
    max_delete_count: int | None = None


@dataclass(frozen=True, kw_only=True)
class JournalConfig:
    """Where runs are journaled (resume, lock, history, remembered rejects).

    The default is a SQLite file in ``.sync-engine/`` beside the config file, with the
    run lock as an OS file lock in the same folder; a ``dsn`` puts the journal and the
    lock (an advisory lock) in PostgreSQL instead, for targets synced from several hosts.
    """

    enabled: bool = True
    dir: Path = Path(".sync-engine")  # also holds the plan files of unfinished runs
    dsn: Secret | None = None
    schema: str = "sync_engine"
    max_plan_age: float = 6 * 3600.0  # a resumed run re-plans when its plan is older
    drain_timeout: float = 30.0  # on stop: how long batches in flight may still take
    lock_wait: float = 0.0  # how long a second run waits for the lock before refusing
    retry_rejects_after_runs: int = 5  # unchanged rejected rows are held back this long
    keep_batches_of_runs: int = 20  # batch rows of older runs are pruned

    @property
    def path(self) -> Path:
        return self.dir / "journal.sqlite"


@dataclass(frozen=True, kw_only=True)
class SyncConfig:
    """Everything one sync needs. ``mapping`` is provider field -> local column.

    ``field_rules`` holds the table-form entries of ``[mapping]`` (transforms, NULL
    policy, date format); a field without one takes its column as it is.
    """

    source: SourceConfig
    provider: ProviderConfig
    sync: SyncSettings = field(default_factory=SyncSettings)
    mapping: Mapping[str, str]
    journal: JournalConfig = field(default_factory=JournalConfig)
    field_rules: Mapping[str, FieldRule] = field(default_factory=dict)
    path: Path | None = None  # the file it was loaded from, for messages
    work_dir: Path | None = None  # where exports and plan spools go; None: system temp

    @property
    def label(self) -> str:
        return str(self.path) if self.path else "<config>"

    def rule(self, provider_field: str) -> FieldRule:
        """The rule of a mapped field (a plain one for the simple form)."""
        return self.field_rules.get(provider_field) or FieldRule(
            column=self.mapping[provider_field]
        )

    def secrets(self) -> list[str]:
        """Every secret value, for log redaction."""
        values = self.provider.secrets()
        if isinstance(self.source, PostgresSourceConfig):
            values.extend(dsn_secrets(self.source.dsn.reveal()))
        if self.journal.dsn is not None:
            values.extend(dsn_secrets(self.journal.dsn.reveal()))
        return values


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_USER_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
T = TypeVar("T")


def load_config(
    path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None
) -> SyncConfig:
    """Read and validate a TOML config file; relative paths resolve beside it."""
    config_path = Path(path)
    try:
        raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{config_path}: config file not found") from None
    except OSError as error:
        raise ConfigError(f"{config_path}: cannot read config: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{config_path}: config is not valid UTF-8") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{config_path}: invalid TOML: {error}") from None
    return parse_config(raw, path=config_path, env=env)


def parse_config(
    raw: Mapping[str, Any],
    *,
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> SyncConfig:
    """Validate an already-parsed config mapping (also handy for library users)."""
    label = str(path) if path else "<config>"
    base_dir = path.parent if path else Path.cwd()
    environ = os.environ if env is None else env
    root = ConfigTable(raw, label, "", environ)
    source = _parse_source(root.table("source", required=True), base_dir)
    provider = _parse_provider(root.table("provider", required=True))
    sync = _parse_sync(root.table("sync"))
    mapping, rules = _parse_mapping(root.table("mapping", required=True))
    journal = _parse_journal(root.table("journal"), base_dir)
    work_dir_text = root.get("work_dir", str, None)
    root.finish()
    config = SyncConfig(
        source=source,
        provider=provider,
        sync=sync,
        mapping=mapping,
        field_rules=rules,
        journal=journal,
        path=path,
        work_dir=_resolve(base_dir, work_dir_text) if work_dir_text else None,
    )
    _check_consistency(config, label)
    _check_rules(config, label)
    _check_source_columns(config, label)
    return config


class ConfigTable:
    """Typed access to one TOML table that remembers which keys were used."""

    def __init__(self, data: Any, label: str, name: str, env: Mapping[str, str]) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{label}: [{name}] must be a table")
        self._data: Mapping[str, Any] = data
        self._label = label
        self._name = name
        self._env = env
        self._used: set[str] = set()

    def where(self, key: str) -> str:
        return f"{self._label}: [{self._name}] {key}" if self._name else f"{self._label}: {key}"

    def table(self, key: str, *, required: bool = False) -> ConfigTable:
        self._used.add(key)
        if key not in self._data:
            if required:
                raise ConfigError(f"{self._label}: missing section [{key}]")
            return ConfigTable({}, self._label, key, self._env)
        return ConfigTable(self._data[key], self._label, key, self._env)

    def get(self, key: str, kind: type[T], default: T) -> T:
        self._used.add(key)
        if key not in self._data:
            return default
        value = self._data[key]
        if isinstance(value, str):
            value = self._interpolate(key, value)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is int and isinstance(value, bool):
            raise ConfigError(f"{self.where(key)} must be an integer, got {value!r}")
        if not isinstance(value, kind):
            raise ConfigError(
                f"{self.where(key)} must be {kind.__name__}, got {type(value).__name__}"
            )
        return value

    def optional(self, key: str, kind: type[T]) -> T | None:
        self._used.add(key)
        if key not in self._data:
            return None
        value: T = self.get(key, kind, self._data[key])
        return value

    def choice(self, key: str, allowed: Any, default: str) -> Any:
        options = get_args(allowed)
        value = self.get(key, str, default)
        if value not in options:
            raise ConfigError(
                f"{self.where(key)} must be one of {', '.join(options)}; got {value!r}"
            )
        return value

    def secret(self, key: str) -> Secret:
        self._used.add(key)
        if key not in self._data:
            raise ConfigError(f"{self.where(key)} is required")
        raw = self._data[key]
        if not isinstance(raw, str):
            raise ConfigError(f"{self.where(key)} must be a string")
        value = self._interpolate(key, raw)
        if not value.strip():
            raise ConfigError(f"{self.where(key)} is empty")
        return Secret(value.strip())

    def nested(self, key: str) -> ConfigTable:
        """A table inside this one, named ``[this.key]`` in messages."""
        self._used.add(key)
        return ConfigTable(self._data[key], self._label, f"{self._name}.{key}", self._env)

    def items(self) -> list[tuple[str, Any]]:
        self._used.update(self._data)
        return [
            (k, self._interpolate(k, v) if isinstance(v, str) else v) for k, v in self._data.items()
        ]

    def finish(self) -> None:
        unknown = sorted(set(self._data) - self._used)
        if unknown:
            raise ConfigError(f"{self.where(unknown[0])}: unknown key (known: {self._known()})")

    def _known(self) -> str:
        return ", ".join(sorted(self._used)) or "none"

    def _interpolate(self, key: str, value: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in self._env:
                return self._env[name]
            if default is not None:
                return default
            raise ConfigError(f"{self.where(key)}: environment variable {name} is not set")

        return _ENV.sub(substitute, value)


def _resolve(base_dir: Path, text: str) -> Path:
    try:
        candidate = Path(text).expanduser()
    except RuntimeError:  # "~name" with no such user: kept as written, as a shell does
        candidate = Path(text)
    return candidate if candidate.is_absolute() else base_dir / candidate


def _parse_source(table: ConfigTable, base_dir: Path) -> SourceConfig:
    kind = table.choice("type", SourceKind, "csv")
    common = _source_settings(table)
    source: SourceConfig
    if kind == "csv":
        delimiter = table.get("delimiter", str, ",")
        if delimiter not in (",", ";", "\t", "|", "auto"):
            raise ConfigError(f"{table.where('delimiter')} must be one of , ; | \\t or auto")
        source = CsvSourceConfig(
            **common,
            path=_required_path(table, base_dir),
            delimiter=None if delimiter == "auto" else delimiter,
            encoding=_encoding(table, "utf-8-sig"),
        )
    elif kind == "jsonl":
        source = JsonlSourceConfig(
            **common, path=_required_path(table, base_dir), encoding=_encoding(table, "utf-8")
        )
    elif kind == "sqlite":
        source = SqliteSourceConfig(
            **common,
            path=_required_path(table, base_dir),
            **_query_or_table(table),
            chunk_size=positive(table, "chunk_size", int, 5000, maximum=1_000_000),
            timeout=positive(table, "timeout", float, 5.0),
            statement_timeout=_not_negative(table, "statement_timeout", 300.0),
        )
    else:
        source = PostgresSourceConfig(
            **common,
            dsn=_dsn(table),
            **_query_or_table(table),
            chunk_size=positive(table, "chunk_size", int, 5000, maximum=1_000_000),
            connect_timeout=positive(table, "connect_timeout", float, 10.0),
            statement_timeout=_not_negative(table, "statement_timeout", 300.0),
        )
    table.finish()
    return source


def _source_settings(table: ConfigTable) -> dict[str, Any]:
    """The keys every source type shares (see ``SourceSettings``)."""
    duplicates = table.choice("duplicates", DuplicateRule, "first")
    newest_by = table.optional("newest_by", str)
    if duplicates == "newest" and not newest_by:
        raise ConfigError(
            f'{table.where("duplicates")} = "newest" needs newest_by = "<column>": the column'
            " whose greatest value wins"
        )
    if newest_by is not None and duplicates != "newest":
        raise ConfigError(f'{table.where("newest_by")} is used only with duplicates = "newest"')
    timezone = table.get("timezone", str, "UTC")
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{table.where('timezone')}: unknown time zone {timezone!r} (e.g. UTC, Europe/Berlin)"
        ) from None
    return {
        "name": table.optional("name", str),
        "null": table.choice("null", NullPolicy, "clear"),
        "duplicates": duplicates,
        "newest_by": newest_by,
        "date_format": _date_format(table, "date_format", DEFAULT_DATE_FORMAT),
        "datetime_format": _date_format(table, "datetime_format", DEFAULT_DATETIME_FORMAT),
        "timezone": timezone,
    }


def _required_path(table: ConfigTable, base_dir: Path) -> Path:
    path_text = table.get("path", str, "")
    if not path_text:
        raise ConfigError(f"{table.where('path')} is required")
    return _resolve(base_dir, path_text)


def _dsn(table: ConfigTable) -> Secret:
    dsn = table.secret("dsn")
    if not re.match(r"^postgres(ql)?://", dsn.reveal()):
        raise ConfigError(
            f"{table.where('dsn')} must be a postgresql:// URL"
            f" (postgresql://user:password@host:5432/database); got {redact_dsn(dsn.reveal())!r}"
        )
    return dsn


def _query_or_table(table: ConfigTable) -> dict[str, Any]:
    """Exactly one of ``query`` and ``table``; ``columns`` only with a table."""
    query = table.optional("query", str)
    name = table.optional("table", str)
    columns = table.optional("columns", list)
    if (query is None) == (name is None):
        raise ConfigError(
            f'{table.where("query")}: give either query = "SELECT ..." or table = "name"'
        )
    if query is not None and not query.strip():
        raise ConfigError(f"{table.where('query')} is empty")
    if name is not None and (not name.strip() or any(not p.strip() for p in name.split("."))):
        raise ConfigError(f"{table.where('table')} must be a table name, or schema.table")
    if columns is not None:
        if name is None:
            raise ConfigError(
                f"{table.where('columns')} goes with table = ...; a query names its own columns"
            )
        if not columns or not all(isinstance(c, str) and c for c in columns):
            raise ConfigError(f"{table.where('columns')} must be a list of column names")
    return {
        "query": query.strip() if query is not None else None,
        "table": name,
        "columns": tuple(columns) if columns is not None else None,
    }


def _date_format(table: ConfigTable, key: str, default: str) -> str:
    text = table.get(key, str, default)
    try:
        return check_date_format(text)
    except ValueError as error:
        raise ConfigError(f"{table.where(key)}: {error}") from None


def _not_negative(table: ConfigTable, key: str, default: float) -> float:
    value = table.get(key, float, default)
    if value < 0:
        raise ConfigError(f"{table.where(key)} must be 0 (no limit) or more; got {value}")
    return value


def _encoding(table: ConfigTable, default: str) -> str:
    import codecs

    name = table.get("encoding", str, default)
    try:
        codecs.lookup(name)
    except (LookupError, ValueError):  # ValueError: a NUL in the name
        raise ConfigError(f"{table.where('encoding')}: unknown encoding {name!r}") from None
    return name


def positive(
    table: ConfigTable, key: str, kind: type[T], default: T, maximum: float | None = None
) -> T:
    value = table.get(key, kind, default)
    assert isinstance(value, int | float)
    if value <= 0 or (maximum is not None and value > maximum):
        bound = f" and at most {maximum:g}" if maximum is not None else ""
        raise ConfigError(f"{table.where(key)} must be above 0{bound}; got {value}")
    return value


def _parse_provider(table: ConfigTable) -> ProviderConfig:
    from .providers.registry import provider_spec

    kind = table.choice("type", ProviderKind, "unisender")
    config = provider_spec(kind).parse_config(table, kind)
    table.finish()
    return config


def base_url(table: ConfigTable, default: str) -> str:
    """The ``base_url`` key: an http(s) URL without a trailing slash."""
    url = table.get("base_url", str, default).rstrip("/")
    if not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError(f"{table.where('base_url')} must be an http(s) URL; got {url!r}")
    return url


def parse_unisender(table: ConfigTable, kind: str) -> UniSenderConfig:
    """``[provider]`` for UniSender and Selzy."""
    list_id = table.optional("list_id", int)
    if list_id is not None and list_id <= 0:
        raise ConfigError(f"{table.where('list_id')} must be a positive list id")
    return UniSenderConfig(
        kind=kind,
        base_url=base_url(table, DEFAULT_BASE_URLS[kind]),
        lang=table.choice("lang", Literal["en", "ru", "ua"], "en"),
        api_key=table.secret("api_key"),
        list_id=list_id,
        overwrite_tags=table.get("overwrite_tags", bool, False),
        overwrite_lists=table.get("overwrite_lists", bool, False),
        timeout=positive(table, "timeout", float, 30.0),
        batch_size=positive(table, "batch_size", int, 500, maximum=500),
        concurrency=positive(table, "concurrency", int, 4, maximum=64),
        rate_limit=positive(table, "rate_limit", int, 1200),
        rate_period=positive(table, "rate_period", float, 60.0),
        export_rate_limit=positive(table, "export_rate_limit", int, 20),
        export_timeout=positive(table, "export_timeout", float, 3600.0),
        export_poll_interval=positive(table, "export_poll_interval", float, 1.0),
        export_poll_max=positive(table, "export_poll_max", float, 15.0),
        max_attempts=positive(table, "max_attempts", int, 5, maximum=50),
        platform=table.get("platform", str, "sync-engine"),
    )


def _parse_sync(table: ConfigTable) -> SyncSettings:
    share = table.get("max_delete_share", float, 0.10)
    if not 0.0 <= share <= 1.0:
        raise ConfigError(f"{table.where('max_delete_share')} must be between 0 and 1; got {share}")
    count = table.optional("max_delete_count", int)
    if count is not None and count < 0:
        raise ConfigError(f"{table.where('max_delete_count')} must be 0 or more")
    region = table.optional("default_region", str)
    if region is not None:
        import phonenumbers

        region = region.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(f"{table.where('default_region')}: unknown region {region!r}")
    key = table.choice("key", KeyKind, "email")
    key_field = table.optional("key_field", str)
    if key == "field" and not key_field:
        raise ConfigError(
            f'{table.where("key")} = "field" needs key_field: the [mapping] field that is the key'
        )
    if key != "field" and key_field is not None:
        raise ConfigError(f'{table.where("key_field")} applies only with key = "field"')
    settings = SyncSettings(
        mode=table.choice("mode", Mode, "upsert"),
        key=key,
        key_field=key_field,
        default_region=region,
        removal=table.choice("removal", RemovalKind, "exclude"),
        max_delete_share=share,
        max_delete_count=count,
    )
    table.finish()
    return settings


def _parse_journal(table: ConfigTable, base_dir: Path) -> JournalConfig:
    dsn = table.secret("dsn") if table.optional("dsn", str) is not None else None
    if dsn is not None and not re.match(r"^postgres(ql)?://", dsn.reveal()):
        raise ConfigError(f"{table.where('dsn')} must be a postgresql:// URL")
    schema = table.get("schema", str, "sync_engine")
    if not _USER_FIELD.match(schema):
        raise ConfigError(f"{table.where('schema')} must be a plain identifier; got {schema!r}")
    drain = table.get("drain_timeout", float, 30.0)
    wait = table.get("lock_wait", float, 0.0)
    for key, value in (("drain_timeout", drain), ("lock_wait", wait)):
        if value < 0:
            raise ConfigError(f"{table.where(key)} must be 0 or more; got {value}")
    journal = JournalConfig(
        enabled=table.get("enabled", bool, True),
        dir=_resolve(base_dir, table.get("dir", str, ".sync-engine")),
        dsn=dsn,
        schema=schema,
        max_plan_age=positive(table, "max_plan_age", float, 6 * 3600.0),
        drain_timeout=drain,
        lock_wait=wait,
        retry_rejects_after_runs=positive(table, "retry_rejects_after_runs", int, 5),
        keep_batches_of_runs=positive(table, "keep_batches_of_runs", int, 20),
    )
    table.finish()
    return journal


def _parse_mapping(table: ConfigTable) -> tuple[dict[str, str], dict[str, FieldRule]]:
    """``field = "column"``, or a table (inline or ``[mapping.Field]``) with transforms."""
    mapping: dict[str, str] = {}
    rules: dict[str, FieldRule] = {}
    for provider_field, value in table.items():
        if not _USER_FIELD.match(provider_field):
            raise ConfigError(
                f"{table.where(provider_field)}: provider field names use Latin letters, digits,"
                " '_' and '-', starting with a letter"
            )
        if isinstance(value, Mapping):
            rule = _parse_rule(table.nested(provider_field))
            rules[provider_field] = rule
            mapping[provider_field] = rule.column
        elif isinstance(value, str) and value:
            mapping[provider_field] = value
        else:
            raise ConfigError(
                f"{table.where(provider_field)} must name a local column, or be a table"
                ' such as { column = "name", transforms = ["trim"] }'
            )
    if not mapping:
        raise ConfigError(f"{table.where('')}: map at least the key field (email or phone)")
    return mapping, rules


def _parse_rule(table: ConfigTable) -> FieldRule:
    column = table.get("column", str, "")
    if not column:
        raise ConfigError(f"{table.where('column')} is required: the local column to read")
    try:
        transforms = parse_transforms(table.get("transforms", list, []))
    except ValueError as error:
        raise ConfigError(f"{table.where('transforms')}: {error}") from None
    split = table.optional("split", str)
    if split == "":
        raise ConfigError(f'{table.where("split")} must be a delimiter such as "," or "|"')
    null = table.optional("null", str)
    if null is not None and null not in get_args(NullPolicy):
        raise ConfigError(f"{table.where('null')} must be one of clear, keep; got {null!r}")
    date_format = table.optional("date_format", str)
    rule = FieldRule(
        column=column,
        transforms=transforms,
        default=table.optional("default", str),
        split=split,
        date_format=(
            _date_format(table, "date_format", date_format) if date_format is not None else None
        ),
        null=null,  # type: ignore[arg-type]  # checked against NullPolicy above
    )
    table.finish()
    return rule


def _check_rules(config: SyncConfig, label: str) -> None:
    """Options that make sense only for some kinds of field."""
    from .providers.registry import provider_spec
    from .schema import FieldKind

    schema = provider_spec(config.provider.kind).schema

    sets = (FieldKind.TAGS, FieldKind.IDS)
    for name, rule in config.field_rules.items():
        kind = schema.kind(name)
        where = f"{label}: [mapping.{name}]"
        if rule.split is not None and kind not in sets:
            raise ConfigError(
                f"{where} split: splitting makes a list, which only tags and list-id fields take"
            )
        if rule.date_format is not None and kind is not FieldKind.TEXT:
            raise ConfigError(f"{where} date_format: {name} is not a text field")
        if rule.null == "keep" and kind is FieldKind.IDS:
            raise ConfigError(
                f'{where} null = "keep" does not apply to list ids: a NULL means no lists from'
                " this row, and the synced list is added all the same"
            )


def _check_source_columns(config: SyncConfig, label: str) -> None:
    """A table source with explicit ``columns`` must read every column the sync needs."""
    source = config.source
    if not isinstance(source, PostgresSourceConfig | SqliteSourceConfig) or not source.columns:
        return
    needed = dict.fromkeys(config.mapping.values())
    if source.newest_by:
        needed[source.newest_by] = None
    missing = [c for c in needed if c not in source.columns]
    if missing:
        raise ConfigError(
            f"{label}: [source] columns does not include {missing[0]!r}, which"
            f" {'[mapping] reads' if missing[0] in config.mapping.values() else 'newest_by names'}"
        )


def _check_consistency(config: SyncConfig, label: str) -> None:
    from .providers.registry import provider_spec

    spec = provider_spec(config.provider.kind)
    mapping = config.mapping
    sync = config.sync
    if sync.key == "field":
        assert sync.key_field is not None
        needed = [sync.key_field]
    else:
        needed = {"email": ["email"], "phone": ["phone"], "email_or_phone": ["email", "phone"]}[
            sync.key
        ]
    missing = [name for name in needed if name not in mapping]
    if missing:
        what = f"key_field = {sync.key_field!r}" if sync.key == "field" else f"key = {sync.key!r}"
        raise ConfigError(f'{label}: [sync] {what} needs [mapping] {missing[0]} = "<local column>"')
    for name in mapping:
        if name in spec.schema.reserved:
            raise ConfigError(
                f"{label}: [mapping] {name}: this field is the provider's to manage"
                " (statuses and consent are never overwritten from local data)"
            )
    spec.validate(config, label)


def check_unisender(config: SyncConfig, label: str) -> None:
    """UniSender's own rules: its keys, its 50 user fields, its list options."""
    from .providers.unisender import UNISENDER_SCHEMA

    provider = config.provider
    assert isinstance(provider, UniSenderConfig)
    mapping = config.mapping
    if config.sync.key == "field":
        raise ConfigError(
            f'{label}: [sync] key = "field": {provider.kind} imports match contacts by email'
            " or phone only"
        )
    user_fields = [n for n in mapping if n not in UNISENDER_SCHEMA.system]
    if len(user_fields) > 50:
        raise ConfigError(
            f"{label}: [mapping] maps {len(user_fields)} user fields; the limit is 50"
        )
    if provider.overwrite_lists and not {"email_list_ids", "phone_list_ids"} & set(mapping):
        raise ConfigError(
            f"{label}: [provider] overwrite_lists = true replaces every list of a contact, so it"
            " needs [mapping] email_list_ids (or phone_list_ids) from local data"
        )
    if provider.overwrite_tags and "tags" not in mapping:
        raise ConfigError(f"{label}: [provider] overwrite_tags = true needs [mapping] tags")
    if (
        config.sync.mode == "mirror"
        and config.sync.removal == "exclude"
        and provider.list_id is None
    ):
        raise ConfigError(
            f'{label}: [sync] removal = "exclude" removes contacts from the synced list, so'
            ' [provider] list_id is required (or use removal = "delete")'
        )
