"""Altcraft export files: fields found by name in any layout; consent read from subscriptions."""

from __future__ import annotations

import csv
from pathlib import Path

import anyio
import orjson
import pytest

from sync_engine.contact import RemoteRecord
from sync_engine.providers.altcraft._snapshot import AltcraftSnapshot, lock_reason, profile_values

FIELDS = ["email", "phone", "first_name", "CRM_ID"]
SUBS = [{"channel": "email", "resource_id": 3, "email": "a@x.io", "status": "unsubscribed"}]
WANT = {"email": "a@x.io", "phone": "+79000000001", "first_name": "Ann", "CRM_ID": "42"}


def write_csv(path: Path, header: list[str], row: list[str], delimiter: str = ",") -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerow(row)
    return path


def records(path: Path, resource_id: int | None = 3) -> list[RemoteRecord]:
    snapshot = AltcraftSnapshot([path], fields=FIELDS, resource_id=resource_id)

    async def collect() -> list[RemoteRecord]:
        return [r async for r in snapshot.records() if isinstance(r, RemoteRecord)]

    return anyio.run(collect)


@pytest.mark.parametrize(
    ("header", "delimiter"),
    [
        (["_id", "email", "phones", "_fname", "CRM_ID", "subscriptions"], ","),
        (["subscriptions", "crm_id", "_fname", "phones", "email", "_id"], ";"),
        (["Profile ID", "E-mail", "Phone", "First name", "CRM ID", "Subscriptions"], ","),
        (["ID", "Email", "Phone Number", "FirstName", "Crm-Id", "_subscriptions"], "\t"),
    ],
)
def test_csv_layouts(tmp_path: Path, header: list[str], delimiter: str) -> None:
    cells = {
        "id": "p1",
        "email": "a@x.io",
        "phone": "+79000000001",
        "name": "Ann",
        "crm": "42",
        "subs": orjson.dumps(SUBS).decode(),
    }
    order = {
        0: ["id", "email", "phone", "name", "crm", "subs"],
        1: ["subs", "crm", "name", "phone", "email", "id"],
    }[1 if header[0].lower().startswith("sub") else 0]
    path = write_csv(tmp_path / "e.csv", header, [cells[k] for k in order], delimiter)
    (record,) = records(path)
    assert dict(record.values) == WANT
    assert record.locked == "email unsubscribed on resource 3"


@pytest.mark.parametrize("style", ["array", "lines", "nested"])
def test_json_layouts(tmp_path: Path, style: str) -> None:
    flat = {
        "_id": "p1",
        "Email": "a@x.io",
        "phones": ["+79000000001"],
        "_fname": "Ann",
        "CRM_ID": 42,
    }
    item: dict[str, object]
    if style == "nested":
        item = {
            "profile_id": "p1",
            "data": {k: v for k, v in flat.items() if k != "_id"},
            "subscriptions": SUBS,
        }
    else:
        item = {**flat, "subscriptions": SUBS}
    line = orjson.dumps(item)
    content = line + b"\n" if style == "lines" else b"[\n" + line + b"\n]\n"
    path = tmp_path / "e.json"
    path.write_bytes(content)
    (record,) = records(path)
    assert dict(record.values) == WANT
    assert record.locked is not None


def test_consent_is_judged_on_the_synced_resource_only() -> None:
    subs = [
        {"channel": "email", "resource_id": 4, "status": "unsubscribed"},
        {"channel": "phone", "resource_id": 3, "status": "subscribed"},
    ]
    assert lock_reason({"subscriptions": subs}, 3) is None
    assert lock_reason({"subscriptions": subs}, 4) == "email unsubscribed on resource 4"
    assert lock_reason({"subscriptions": subs}, None) is None
    suspended = [{"channel": "email", "resource_id": "3", "status": "Suspended"}]
    assert lock_reason({"Subscriptions": orjson.dumps(suspended).decode()}, 3) is not None
    assert lock_reason({"subscriptions": "not json"}, 3) is None


def test_a_missing_column_is_none_not_an_error() -> None:
    values = profile_values({"email": "a@x.io"}, FIELDS)
    assert values == {"email": "a@x.io", "phone": None, "first_name": None, "CRM_ID": None}
