"""Shared eSputnik test helpers: a served emulator, config files, and the contract check.

The contract is the vendor's OpenAPI file (a copy beside this module). Every exchange
the emulator records is validated with openapi-core: the request the engine sent, and
the answer the emulator gave wherever the file documents that status.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from conftest import API_KEY, toml_value
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from sync_engine import SyncConfig, SyncEngine, SyncReport, load_config
from sync_engine.clock import FakeClock
from sync_engine.emulator import ESputnikEmulator, ESputnikOptions, Exchange
from sync_engine.testing import running_emulator

SPEC_PATH = Path(__file__).with_name("esputnik-openapi.json")
GROUP = "Customers"


@dataclass
class Served:
    """The eSputnik emulator under test, its loopback URL and the shared clock."""

    emulator: ESputnikEmulator
    base_url: str
    clock: FakeClock


@asynccontextmanager
async def serve_esputnik(
    options: ESputnikOptions | None = None, *, fake_time: bool = True
) -> AsyncIterator[Served]:
    """An emulator on loopback; with ``fake_time`` it shares the engine's FakeClock, so
    import sessions finish in virtual time and no test waits on the wall clock."""
    clock = FakeClock()
    emulator = ESputnikEmulator(
        api_key=API_KEY,
        options=options or ESputnikOptions(import_delay=5.0),
        clock=clock.now if fake_time else time.monotonic,
    )
    async with emulator, running_emulator(emulator) as base_url:
        yield Served(emulator, base_url, clock)


def write_esputnik_config(
    tmp_path: Path,
    served: Served,
    *,
    source: Path,
    mapping: Mapping[str, str] | None = None,
    sync: Mapping[str, Any] | None = None,
    provider_settings: Mapping[str, Any] | None = None,
    journal: Mapping[str, Any] | None = None,
    api_key: str = API_KEY,
    kind: str = "esputnik",
) -> Path:
    """A TOML config pointing at the emulator, as a user would write it."""
    settings: dict[str, Any] = {
        "type": kind,
        "base_url": served.base_url,
        "api_key": api_key,
        "group": GROUP,
        "source_opted_in": True,
        "import_poll_interval": 1.0,
        "import_poll_max": 2.0,
        **(provider_settings or {}),
    }
    settings = {k: v for k, v in settings.items() if v is not None}
    lines = ["[source]", 'type = "csv"', f"path = {toml_value(str(source))}", "", "[provider]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in settings.items()]
    lines += ["", "[sync]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in (sync or {}).items()]
    lines += ["", "[mapping]"]
    for name, column in (mapping or {"email": "email", "firstName": "name"}).items():
        lines.append(f"{toml_value(name)} = {toml_value(column)}")
    if journal:
        lines += ["", "[journal]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in journal.items()]
    path = tmp_path / "sync.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def esputnik_config(tmp_path: Path, served: Served, **kwargs: Any) -> SyncConfig:
    return load_config(write_esputnik_config(tmp_path, served, **kwargs))


async def sync(config: SyncConfig, served: Served, **kwargs: Any) -> SyncReport:
    async with SyncEngine(config, clock=served.clock) as engine:
        report: SyncReport = await engine.run(**kwargs)
        return report


def posted_bodies(emulator: ESputnikEmulator) -> list[dict[str, Any]]:
    """The JSON bodies of every POST /api/v1/contacts the emulator received."""
    return [
        orjson.loads(e.body)
        for e in emulator.exchanges
        if e.operation == "contactsBulkUpdate" and e.status == 200
    ]


@cache
def _openapi() -> OpenAPI:
    """The vendor's contract, with two evident defects repaired (and only those).

    Some enums list their values twice (an error for the strict document check, with no
    effect on what they allow), and ``contactFields`` also puts its string enum on the
    array itself, where no array could ever match. Duplicates are dropped and an
    array's own enum removed (its items keep theirs); every other rule applies as written.
    """
    spec = orjson.loads(SPEC_PATH.read_bytes())
    _repair(spec)
    return OpenAPI.from_dict(spec)


def _repair(node: object) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("enum"), list):
            if node.get("type") == "array":
                del node["enum"]
            else:
                node["enum"] = list(dict.fromkeys(node["enum"]))
        for value in node.values():
            _repair(value)
    elif isinstance(node, list):
        for value in node:
            _repair(value)


def _documented(exchange: Exchange) -> bool:
    spec = orjson.loads(SPEC_PATH.read_bytes())
    for _path, item in spec["paths"].items():
        operation = item.get(exchange.method.lower())
        if operation and operation.get("operationId") == exchange.operation:
            codes = operation.get("responses", {})
            return str(exchange.status) in codes or "default" in codes
    raise AssertionError(f"{exchange.operation} is not in the OpenAPI file")


def _mock(exchange: Exchange) -> tuple[MockRequest, MockResponse]:
    headers = {"Authorization": "Basic c3luYzpyZWRhY3RlZA=="} if exchange.authorized else {}
    request = MockRequest(
        "https://yespo.io",
        exchange.method.lower(),
        exchange.path,
        args=dict(exchange.query),
        data=exchange.body or None,
        headers=headers,
        content_type=exchange.content_type.split(";")[0] or "application/json",
    )
    response_headers = dict(exchange.response_headers)
    response = MockResponse(
        _as_schema_says(exchange),
        status_code=exchange.status,
        headers=response_headers,
        content_type=response_headers.get("Content-Type", "text/plain"),
    )
    return request, response


def _as_schema_says(exchange: Exchange) -> bytes:
    """The answer body, with one documented exception put in the schema's shape.

    The file's schema types ``failedContacts`` as an array, while its description (and
    the service) sends a single failure as a bare object. The object is checked as the
    one-element array the schema describes, so its content is still validated.
    """
    if exchange.operation != "contactsBulkUpdate" or exchange.status != 200:
        return exchange.response_body
    answer = orjson.loads(exchange.response_body)
    if isinstance(answer.get("failedContacts"), dict):
        answer["failedContacts"] = [answer["failedContacts"]]
    return orjson.dumps(answer)


def validate_exchanges(exchanges: Iterable[Exchange]) -> int:
    """Validate every request, and every answer with a documented status; the count.

    Undocumented statuses may only be the errors the file documents elsewhere (401,
    429, 5xx): eSputnik sends them on any endpoint.
    """
    openapi = _openapi()
    checked = 0
    for exchange in exchanges:
        request, response = _mock(exchange)
        openapi.validate_request(request)
        if _documented(exchange):
            openapi.validate_response(request, response)
        else:
            assert exchange.status in (401, 429) or exchange.status >= 500, exchange
        checked += 1
    return checked
