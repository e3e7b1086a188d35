"""Both planners make the same plan: random files, row path vs columnar path, end to end.

Each example writes a local CSV and a provider export with messy values (mixed case,
spaces, people-formatted and invalid phones, tag lists in any order, duplicates,
keyless and locked export rows), then syncs them through ``SyncEngine`` against two
emulators over loopback HTTP, once per planner: the reports (samples, problems, kept
contacts), the rejects files and every importContacts call must be identical.
"""

from __future__ import annotations

import contextlib
import csv
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import anyio
from conftest import Provider, config_for, serve_provider
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from sync_engine import SyncEngine, SyncEngineError
from sync_engine.columnar import _blocks
from sync_engine.emulator import EmulatorOptions

EXPORT_HEADER = (
    "email",
    "phone",
    "tags",
    "Name",
    "City",
    "email_list_ids",
    "phone_list_ids",
    "email_status",
    "email_unsubscribed_list_ids",
    "phone_status",
)

# Each field draws from classes of raw values that normalise alike (first = canonical),
# so that local and export rows often agree after normalisation and differ before it.
EMAILS = [
    ["anna@example.com", " Anna@Example.COM ", "ANNA@example.com"],
    ["boris@example.com", "Boris@Example.com"],
    ["ivan@xn--e1afmkfd.xn--p1ai", "ivan@пример.рф", "IVAN@пример.рф"],
    ["zoe+tag@sub.example.co.uk"],
    ["not-an-email"],
    ["x@host.test"],
    [""],
]
PHONES = [
    ["+79261232323", "+7 926 123-23-23", "+7 (926) 123 23 23", "79261232323"],
    ["+447700900123", "+44 7700 900123"],
    ["+12025550123", "+1 202-555-0123"],
    ["+11000000001"],
    ["12"],
    [""],
]
TAGS = [
    [""],
    ["vip", " vip "],
    ["news,vip", "vip, news", " news ; vip", "vip,news,vip"],
    ["Äpfel,b", "b ; Äpfel"],
    ["a,b", "b,,a"],
]
TEXTS = [
    ["Anna", " Anna "],
    ["Zoë", "Zoe\u0308"],
    ["Москва", "\u00a0Москва"],
    ["x\u2028y"],
    [""],
]
LISTS = [[""], ["1", "01", " 1 "], ["1,2", "2;1"], ["x"], ["²"]]
STATUSES = ["active", "active", "active", "unsubscribed", "blocked", ""]
FIELDS = (EMAILS, PHONES, TAGS, TEXTS, TEXTS, LISTS)

CONTACT = st.tuples(*(st.integers(0, len(classes) - 1) for classes in FIELDS))


@st.composite
def render(draw: st.DrawFn, contact: tuple[int, ...]) -> list[str]:
    """One raw row for a contact: a random member of each field's class; sometimes a
    field moves to another class (a change)."""
    classes = list(contact)
    if draw(st.booleans()):
        field = draw(st.integers(0, len(FIELDS) - 1))
        classes[field] = draw(st.integers(0, len(FIELDS[field]) - 1))
    return [draw(st.sampled_from(FIELDS[i][c])) for i, c in enumerate(classes)]


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    base = draw(st.lists(CONTACT, max_size=15))
    local = [draw(render(c)) for c in base if draw(st.integers(0, 4))]
    local += (
        [draw(render(c)) for c in draw(st.lists(st.sampled_from(base), max_size=3))] if base else []
    )
    remote = [
        [*draw(render(c)), draw(st.sampled_from(STATUSES)), draw(st.sampled_from(["", "1"]))]
        for c in base
        if draw(st.integers(0, 4))
    ]
    remote += [[*draw(render(c)), "active", ""] for c in draw(st.lists(CONTACT, max_size=3))]
    return {
        "local": draw(st.permutations(local)),
        "remote": remote,
        "key": draw(st.sampled_from(["email", "email", "phone", "email_or_phone"])),
        "mode": draw(st.sampled_from(["upsert", "mirror", "insert-only", "update-only"])),
        "overwrite_tags": draw(st.booleans()),
        "map_lists": draw(st.booleans()),
        "full": draw(st.integers(0, 3)) == 0,
        # Tiny blocks: keys repeated across blocks, per-block lock decisions, prefetch.
        "block_bytes": draw(st.sampled_from([None, 64, 300])),
    }


def write_files(directory: Path, scenario: dict[str, Any], list_id: int) -> tuple[Path, Path]:
    local = directory / "local.csv"
    with local.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "phone", "tags", "name", "city", "lists"])
        writer.writerows(scenario["local"])
    export = directory / "export.csv"
    with export.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(EXPORT_HEADER)
        for email, phone, tags, name, city, lists, status, unsubscribed in scenario["remote"]:
            listed = lists.replace("2", str(list_id)) or str(list_id)
            writer.writerow(
                [email, phone, tags, name, city, listed, "", status, unsubscribed, status]
            )
    return local, export


async def sync_both(directory: Path, scenario: dict[str, Any], export: Path) -> list[Any]:
    """Plan and run with each planner; return what each produced."""
    outcomes = []
    for columnar in (True, False):
        options = EmulatorOptions(export_file=export, request_log_size=10_000)
        async with serve_provider(options, fake_time=True) as provider:
            outcomes.append(await sync_once(directory, scenario, provider, columnar))
    return outcomes


async def sync_once(
    directory: Path, scenario: dict[str, Any], provider: Provider, columnar: bool
) -> dict[str, Any]:
    local, _ = write_files(directory, scenario, provider.list_id)
    mapping = {"email": "email", "phone": "phone", "tags": "tags", "Name": "name", "City": "city"}
    if scenario["map_lists"]:
        mapping["email_list_ids"] = "lists"
    config = config_for(
        directory,
        provider,
        source=local,
        mapping=mapping,
        sync={"key": scenario["key"], "mode": scenario["mode"], "max_delete_share": 1.0},
        provider_settings={"overwrite_tags": scenario["overwrite_tags"], "concurrency": 1},
        journal={"dir": str(directory / f"journal-{columnar}")},  # each planner: run #1
    )
    rejects = directory / f"rejects-{columnar}.csv"
    with capture_logs() as logs, small_blocks(scenario["block_bytes"]):
        async with SyncEngine(
            config, clock=provider.clock, columnar=columnar, rejects_path=rejects
        ) as engine:
            dry = (await engine.plan(full=scenario["full"])).to_dict()
            try:
                await engine.run(full=scenario["full"])
            except SyncEngineError as error:  # refused by the deletion guard, for one
                dry["refused"] = str(error)
            assert engine.last_report is not None
            wet = engine.last_report.to_dict()
    planned = {e["event"] for e in logs} & {"planning row by row", "planned column-wise"}
    assert planned == ({"planned column-wise"} if columnar else set()), logs
    for report in (dry, wet):
        report.pop("stages")
    imports = [r.items for r in provider.emulator.requests if r.method == "importContacts"]
    return {
        "dry": dry,
        "wet": wet,
        "rejects": rejects.read_text(encoding="utf-8"),
        "imports": imports,
    }


@contextlib.contextmanager
def small_blocks(size: int | None) -> Iterator[None]:
    """Read files in blocks of ``size`` bytes (None: the default) for the duration."""
    if size is None:
        yield
        return
    with mock.patch.object(_blocks, "BLOCK_BYTES", size):
        yield


def _differences(a: dict[str, Any], b: dict[str, Any]) -> Sequence[str]:
    return [name for name in a if a[name] != b[name]]


@given(scenarios())
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
def test_the_columnar_planner_makes_the_row_planners_plan(scenario: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        _, export = write_files(directory, scenario, 1)
        columnar, rows = anyio.run(sync_both, directory, scenario, export)
    assert not _differences(columnar, rows), (columnar, rows)
