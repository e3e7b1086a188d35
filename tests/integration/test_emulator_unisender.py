"""The UniSender/Selzy emulator over real HTTP on loopback: wire shapes, export, limits, faults."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import tempfile
import zipfile
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
import orjson
import pytest

from sync_engine.emulator import (
    EmulatedContact,
    EmulatorOptions,
    ExportFormat,
    FaultInjector,
    UniSenderEmulator,
)
from sync_engine.testing import running_emulator, serve_forever

KEY = "test-key-0123456789"


class ManualClock:
    """The emulator's clock, moved by hand so no test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Served:
    emulator: UniSenderEmulator
    url: str
    session: aiohttp.ClientSession
    clock: ManualClock

    async def call(
        self, method: str, params: Mapping[str, str] | None = None, *, lang: str = "en"
    ) -> Any:
        """POST urlencoded like the official PHP wrapper; return the decoded JSON."""
        async with self.session.post(
            f"{self.url}/{lang}/api/{method}?format=json", data={"api_key": KEY, **(params or {})}
        ) as response:
            assert response.status == 200
            return await response.json()

    async def get_text(self, url: str) -> tuple[int, str]:
        async with self.session.get(url) as response:
            return response.status, await response.text()


class Serve(Protocol):
    async def __call__(self, options: EmulatorOptions | None = None) -> Served: ...


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start emulators (each with its own manual clock) on loopback; all stop after the test."""
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())

        async def start(options: EmulatorOptions | None = None) -> Served:
            clock = ManualClock()
            emulator = await stack.enter_async_context(
                UniSenderEmulator(api_key=KEY, options=options, clock=clock)
            )
            url = await stack.enter_async_context(running_emulator(emulator))
            return Served(emulator, url, session, clock)

        yield start


@pytest.fixture
async def served(serve: Serve) -> Served:
    return await serve()


def import_params(rows: list[list[str]], field_names: list[str]) -> dict[str, str]:
    params = {f"field_names[{i}]": name for i, name in enumerate(field_names)}
    for i, row in enumerate(rows):
        params.update({f"data[{i}][{j}]": cell for j, cell in enumerate(row)})
    return params


# -- wire shapes ----------------------------------------------------------------------------


async def test_urlencoded_post_with_percent_encoded_brackets(served: Served) -> None:
    """The PHP wrapper's body (brackets %-encoded, api_key in the body) imports contacts."""
    served.emulator.add_field("Name")
    body = "&".join(
        f"{quote(k, safe='')}={quote(v, safe='')}"
        for k, v in {
            "api_key": KEY,
            **import_params([["a@example.com", "Ann"], ["b@example.com"]], ["email", "Name"]),
        }.items()
    )
    assert "field_names%5B0%5D=email" in body
    async with served.session.post(
        f"{served.url}/en/api/importContacts?format=json",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as response:
        answer = await response.json()
    assert answer["result"]["inserted"] == 2
    assert served.emulator.contact(email="a@example.com") == EmulatedContact(
        email="a@example.com", email_status="new", fields={"Name": "Ann"}, id=1
    )
    b = served.emulator.contact(email="b@example.com")
    assert b is not None
    assert b.fields == {"Name": ""}


async def test_multipart_post(served: Served) -> None:
    """A multipart body (the WordPress plugin's curl array) is read like a form."""
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("api_key", KEY)
    for key, value in import_params([["+79261232323"]], ["phone"]).items():
        form.add_field(key, value)
    async with served.session.post(f"{served.url}/ru/api/importContacts", data=form) as response:
        answer = await response.json()
    assert answer["result"]["inserted"] == 1
    assert served.emulator.contact(phone="+79261232323") is not None
    assert served.emulator.requests[-1].content_type == "multipart/form-data"


async def test_get_with_query(served: Served) -> None:
    """A GET with everything in the query string works (the documented URL form)."""
    params = {"format": "json", "api_key": KEY, **import_params([["a@x.io"]], ["email"])}
    async with served.session.get(f"{served.url}/ua/api/importContacts", params=params) as resp:
        answer = await resp.json()
    assert answer["result"]["inserted"] == 1


async def test_api_key_in_query_with_body_params(served: Served) -> None:
    """api_key in the URL and the arguments in the body (niklucky/unisender-node) merge."""
    async with served.session.post(
        f"{served.url}/en/api/createList?api_key={KEY}", data={"title": "Main"}
    ) as response:
        answer = await response.json()
    assert answer == {"result": {"id": 1}}


async def test_export_accepts_repeated_field_names(served: Served) -> None:
    """field_names[] repeated (the export's documented form) picks the columns in order."""
    served.emulator.seed([EmulatedContact(email="a@x.io", phone="+79260000001")])
    body = [("api_key", KEY), ("field_names[]", "phone"), ("field_names[]", "email")]
    async with served.session.post(
        f"{served.url}/en/api/async/exportContacts", data=body
    ) as response:
        task = (await response.json())["result"]
    rows = await download_rows(served, task["task_uuid"])
    assert rows == [["phone", "email"], ["+79260000001", "a@x.io"]]


@pytest.mark.parametrize("key", [None, "wrong", KEY + "x"])
async def test_wrong_or_missing_key(served: Served, key: str | None) -> None:
    """A wrong or missing key answers invalid_api_key without echoing any key."""
    data = {"title": "x"} if key is None else {"api_key": key, "title": "x"}
    async with served.session.post(f"{served.url}/en/api/createList", data=data) as response:
        assert response.status == 200
        text = await response.text()
    answer = orjson.loads(text)
    assert answer["code"] == "invalid_api_key"
    assert KEY not in text
    if key:
        assert key not in text
    assert served.emulator.add_list("Fresh") == 1  # the refused call created nothing


async def test_unknown_method_and_language(served: Served) -> None:
    """An unknown method is unknown_method; an unsupported language is a 404."""
    assert (await served.call("sendTelegram"))["code"] == "unknown_method"
    status, _ = await served.get_text(f"{served.url}/de/api/getLists?api_key={KEY}")
    assert status == 404


async def test_error_messages_are_html_escaped(served: Served) -> None:
    """Error messages are HTML-encoded, as the provider documents."""
    answer = await served.call("importContacts", import_params([["a@x.io"]], ["email", "<b>"]))
    assert answer["code"] == "invalid_arg"
    assert "&lt;b&gt;" in answer["error"]


async def test_import_warnings_and_log_over_http(serve: Serve) -> None:
    """The overlimit warning is top-level and the row log keeps the documented shape."""
    served = await serve(EmulatorOptions(contact_limit=1))
    answer = await served.call(
        "importContacts", import_params([["bad"], ["a@x.io"], ["b@x.io"]], ["email"])
    )
    assert answer["warnings"] == [{"warning": "Addresses overlimit for current period"}]
    assert answer["result"]["log"] == [
        {"index": 0, "code": "e_email_invalid", "message": "Invalid email format"},
        {
            "index": 2,
            "code": "w_common_overlimit",
            "message": "The number of contacts for the current tariff plan has been exceeded "
            "(but the string has been added)",
        },
    ]
    assert (answer["result"]["total"], answer["result"]["inserted"]) == (3, 2)


async def test_gapped_data_rows_are_invalid(served: Served) -> None:
    """data rows must be numbered 0..N-1, so log indexes mean what the client sent."""
    params = {"field_names[0]": "email", "data[0][0]": "a@x.io", "data[2][0]": "b@x.io"}
    answer = await served.call("importContacts", params)
    assert answer["code"] == "invalid_arg"


async def test_lists_fields_and_contact(served: Served) -> None:
    """getLists, createList, getFields, createField and getContact answer the documented shapes."""
    assert await served.call("createList", {"title": "Main"}) == {"result": {"id": 1}}
    assert (await served.call("createList", {"title": "Main"}))["code"] == "invalid_arg"
    assert await served.call("getLists") == {"result": [{"id": 1, "title": "Main"}]}
    assert await served.call("createField", {"name": "City", "type": "string"}) == {
        "result": {"id": 1}
    }
    assert (await served.call("createField", {"name": "1bad"}))["code"] == "invalid_arg"
    assert await served.call("getFields") == {
        "result": [{"id": 1, "name": "City", "type": "string", "is_visible": 1, "view_pos": 1}]
    }
    await served.call(
        "importContacts",
        import_params([["a@x.io", "1", "Riga"]], ["email", "email_list_ids", "City"]),
    )
    answer = await served.call(
        "getContact", {"email": "A@x.io", "include_lists": "1", "include_fields": "1"}
    )
    result = answer["result"]
    assert result["email"]["email"] == "a@x.io"
    assert result["email"]["status"] == "new"
    assert len(result["email"]["added_at"]) == len("YYYY-MM-DD hh:mm:ss")
    assert [(entry["id"], entry["status"]) for entry in result["lists"]] == [(1, "active")]
    assert result["fields"] == {"City": "Riga"}
    assert (await served.call("getContact", {"email": "nobody@x.io"}))["code"] == "invalid_arg"


# -- export life cycle ----------------------------------------------------------------------


async def task_result(served: Served, task_uuid: str) -> dict[str, Any]:
    answer = await served.call("async/getTaskResult", {"task_uuid": task_uuid})
    result: dict[str, Any] = answer["result"]
    return result


async def download(served: Served, task_uuid: str) -> tuple[dict[str, str], bytes]:
    served.clock.now += 3600
    result = await task_result(served, task_uuid)
    async with served.session.get(result["file_to_download"]) as response:
        assert response.status == 200
        return dict(response.headers), await response.read()


async def download_rows(served: Served, task_uuid: str) -> list[list[str]]:
    _, body = await download(served, task_uuid)
    return list(csv.reader(io.StringIO(body.decode("utf-8"))))


async def test_export_life_cycle(served: Served) -> None:
    """new -> processing -> completed by the emulator's clock, then the file downloads as CSV."""
    list_id = served.emulator.add_list("Main")
    served.emulator.seed(
        [
            EmulatedContact(email="in@x.io", email_list_ids={list_id}, tags={"b", "a"}),
            EmulatedContact(email="out@x.io"),
        ]
    )
    answer = await served.call(
        "async/exportContacts",
        {"list_id": str(list_id), "field_names[0]": "email", "field_names[1]": "tags"},
    )
    task_uuid = answer["result"]["task_uuid"]
    assert answer["result"]["status"] == "new"
    # Later changes do not reach a snapshot taken at creation.
    served.emulator.seed([EmulatedContact(email="late@x.io", email_list_ids={list_id})])

    assert (await task_result(served, task_uuid))["status"] == "new"
    served.clock.now += 0.1
    assert await task_result(served, task_uuid) == {
        "task_uuid": task_uuid,
        "task_type": "exportContacts",
        "status": "processing",
    }
    served.clock.now += 0.1
    result = await task_result(served, task_uuid)
    assert result["status"] == "completed"
    assert result["file_to_download"].startswith(f"{served.url}/download/")

    async with served.session.get(result["file_to_download"]) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/csv")
        body = await response.read()
    assert body == b'email,tags\r\nin@x.io,"a,b"\r\n'


async def test_download_before_completion_or_unknown_is_404(served: Served) -> None:
    """A download link is dead until the task completes; unknown tokens are 404."""
    answer = await served.call("async/exportContacts")
    task_uuid = answer["result"]["task_uuid"]
    served.clock.now += 1
    link = (await task_result(served, task_uuid))["file_to_download"]
    served.clock.now -= 1  # the same link, asked for before the task was ready
    assert (await served.get_text(link))[0] == 404
    assert (await served.get_text(f"{served.url}/download/nope/contacts.csv"))[0] == 404
    assert (await served.call("async/getTaskResult", {"task_uuid": "nope"}))["code"] == (
        "invalid_arg"
    )


async def test_export_argument_errors(served: Served) -> None:
    """Unknown lists, fields and statuses in an export request are invalid_arg."""
    for params in ({"list_id": "42"}, {"field_names[]": "nope"}, {"email_status": "gone"}):
        assert (await served.call("async/exportContacts", params))["code"] == "invalid_arg"


@pytest.mark.parametrize(
    ("fmt", "decode"),
    [
        pytest.param(
            ExportFormat(compression="gzip"),
            lambda b: gzip.decompress(b).decode("utf-8"),
            id="gzip",
        ),
        pytest.param(
            ExportFormat(compression="zip"),
            lambda b: zipfile.ZipFile(io.BytesIO(b)).read("contacts.csv").decode("utf-8"),
            id="zip",
        ),
        pytest.param(ExportFormat(delimiter=";"), lambda b: b.decode("utf-8"), id="semicolon"),
        pytest.param(ExportFormat(delimiter="\t"), lambda b: b.decode("utf-8"), id="tab"),
        pytest.param(ExportFormat(bom=True), lambda b: b.decode("utf-8-sig"), id="bom"),
        pytest.param(ExportFormat(header=False), lambda b: b.decode("utf-8"), id="no-header"),
        pytest.param(ExportFormat(line_terminator="\n"), lambda b: b.decode("utf-8"), id="lf"),
    ],
)
async def test_export_format_variants(serve: Serve, fmt: ExportFormat, decode: Any) -> None:
    """Each configurable file variant is written as configured and parses back with csv."""
    served = await serve(EmulatorOptions(export_format=fmt))
    served.emulator.seed(
        [EmulatedContact(email="ann@x.io", tags={"a", "b"}, fields={"City": 'Rīga; "old"'})]
    )
    answer = await served.call(
        "async/exportContacts",
        {"field_names[0]": "email", "field_names[1]": "City", "field_names[2]": "tags"},
    )
    headers, body = await download(served, answer["result"]["task_uuid"])
    text = decode(body)

    assert headers["Content-Type"].split(";")[0] == fmt.content_type.split(";")[0]
    assert body.startswith(b"\xef\xbb\xbf") == fmt.bom
    assert body.startswith(b"\x1f\x8b") == (fmt.compression == "gzip")
    assert body.startswith(b"PK") == (fmt.compression == "zip")
    assert ("\r\n" in text) == (fmt.line_terminator == "\r\n")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=fmt.delimiter))
    expected = [["ann@x.io", 'Rīga; "old"', "a,b"]]
    if fmt.header:
        expected.insert(0, ["email", "City", "tags"])
    assert rows == expected


# -- provider-side rate limits --------------------------------------------------------------


async def test_rate_limit_and_recovery_after_the_window(serve: Serve) -> None:
    """Over the per-key limit a call is refused (not executed) until the window rolls on."""
    served = await serve(EmulatorOptions(rate_limit=3))
    for _ in range(3):
        assert "result" in await served.call("getLists")
    served.clock.now += 30
    refused = await served.call("createList", {"title": "Refused"})
    assert refused["code"] == "api_call_limit_exceeded_for_api_key"
    assert served.emulator.add_list("Refused") == 1  # the refused call created nothing
    served.clock.now += 30  # 60 s after the first three calls
    assert "result" in await served.call("getLists")


async def test_export_has_its_own_limit(serve: Serve) -> None:
    """async/exportContacts has a tighter limit; other methods stay available."""
    served = await serve(EmulatorOptions(export_rate_limit=2))
    for _ in range(2):
        assert "result" in await served.call("async/exportContacts")
    answer = await served.call("async/exportContacts")
    assert answer["code"] == "api_call_limit_exceeded_for_api_key"
    assert "result" in await served.call("getLists")
    served.clock.now += 60
    assert "result" in await served.call("async/exportContacts")


@pytest.mark.parametrize(("retry_after", "header"), [(None, None), (7.0, "7"), (0.5, "0.5")])
async def test_retry_after_header(
    serve: Serve, retry_after: float | None, header: str | None
) -> None:
    """Rate-limit answers carry Retry-After only when the option is set."""
    served = await serve(EmulatorOptions(rate_limit=1, retry_after=retry_after))
    await served.call("getLists")
    async with served.session.post(
        f"{served.url}/en/api/getLists", data={"api_key": KEY}
    ) as response:
        assert response.headers.get("Retry-After") == header
        assert (await response.json())["code"] == "api_call_limit_exceeded_for_api_key"


# -- fault injection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("http_503", 503, None),
        ("http_500", 500, None),
        ("retry_later", 200, "retry_later"),
        ("rate_limited", 200, "api_call_limit_exceeded_for_api_key"),
        ("invalid_arg", 200, "invalid_arg"),
        ("access_denied", 200, "access_denied"),
        ("not_enough_money", 200, "not_enough_money"),
    ],
)
async def test_each_fault_kind(served: Served, kind: Any, status: int, code: str | None) -> None:
    """A fault answers instead of executing the call, is counted, and is spent after count."""
    served.emulator.faults.add(method="importContacts", kind=kind, count=2)
    params = {"api_key": KEY, **import_params([["a@x.io"]], ["email"])}
    url = f"{served.url}/en/api/importContacts"
    for _ in range(2):
        async with served.session.post(url, data=params) as response:
            assert response.status == status
            text = await response.text()
        if code is None:
            assert response.content_type == "text/html"
            assert str(status) in text
        else:
            assert orjson.loads(text)["code"] == code
    assert served.emulator.contacts() == []
    assert "result" in await served.call("getLists")  # other methods are untouched
    assert (await served.call("importContacts", import_params([["a@x.io"]], ["email"])))["result"][
        "inserted"
    ] == 1
    assert served.emulator.calls["importContacts"] == 3


async def test_fault_after_and_any_method(served: Served) -> None:
    """after=N lets N calls through first; a rule without a method matches every method."""
    served.emulator.faults.add(kind="retry_later", after=1)
    assert "result" in await served.call("getLists")
    assert (await served.call("getFields"))["code"] == "retry_later"
    assert "result" in await served.call("getFields")


def test_probability_faults_are_reproducible() -> None:
    """The same seed fires the same calls; a count caps a probabilistic rule."""

    def pattern(seed: int) -> list[bool]:
        faults = FaultInjector(seed=seed)
        faults.add(kind="http_503", probability=0.5)
        return [faults.take("importContacts") is not None for _ in range(64)]

    assert pattern(1) == pattern(1)
    assert 10 < sum(pattern(1)) < 54
    capped = FaultInjector(seed=3)
    capped.add(kind="http_503", probability=1.0, count=2)
    assert [capped.take("x") for _ in range(3)] == ["http_503", "http_503", None]
    with pytest.raises(ValueError, match="kind"):
        capped.add(kind="boom")  # type: ignore[arg-type]


async def test_request_log_omits_the_api_key(served: Served) -> None:
    """Recorded requests keep the parameters but never the api_key."""
    await served.call("createList", {"title": "Main"})
    recorded = served.emulator.requests[-1]
    assert recorded.method == "createList"
    assert recorded.params == {"format": "json", "title": "Main"}
    assert all(key != "api_key" and KEY not in value for key, value in recorded.items)


async def test_selzy_brand_changes_only_messages(serve: Serve) -> None:
    """The Selzy brand speaks the same API and names Selzy in its messages."""
    served = await serve(EmulatorOptions(brand="selzy"))
    served.emulator.faults.add(kind="access_denied")
    answer = await served.call("getLists")
    assert answer["code"] == "access_denied"
    assert "Selzy" in answer["error"]
    assert await served.call("getLists") == {"result": []}


# -- admin endpoints and serving ------------------------------------------------------------


async def test_admin_endpoints(served: Served) -> None:
    """Seed, read contacts, arm faults and read call counts over HTTP without an API key."""
    session, url = served.session, served.url
    seed = [{"email": "a@x.io", "email_list_ids": [5], "tags": ["t"], "fields": {"City": "Oslo"}}]
    async with session.post(f"{url}/_emulator/seed", json=seed) as response:
        assert await response.json() == {"seeded": 1}
    async with session.post(f"{url}/_emulator/seed", json=[{"nope": 1}]) as response:
        assert response.status == 400
    async with session.get(f"{url}/_emulator/contacts") as response:
        (contact,) = await response.json()
    assert contact["email_list_ids"] == [5]
    assert contact["fields"] == {"City": "Oslo"}
    assert await served.call("getLists") == {"result": [{"id": 5, "title": "List 5"}]}

    fault = {"method": "getFields", "kind": "not_enough_money", "count": 1}
    async with session.post(f"{url}/_emulator/faults", json=fault) as response:
        assert await response.json() == {"armed": 1}
    assert (await served.call("getFields"))["code"] == "not_enough_money"
    async with session.post(f"{url}/_emulator/faults", json={"kind": "boom"}) as response:
        assert response.status == 400
    served.emulator.faults.add(kind="http_503", count=5)
    async with session.delete(f"{url}/_emulator/faults") as response:
        assert await response.json() == {"armed": 0}
    async with session.get(f"{url}/_emulator/calls") as response:
        assert await response.json() == {"getLists": 1, "getFields": 1}
    async with session.get(f"{url}/_emulator/requests") as response:
        assert [r["method"] for r in await response.json()] == ["getLists", "getFields"]


async def test_serve_forever_reports_ready_and_stops_on_cancel() -> None:
    """serve_forever listens, calls ready(base_url) once, and releases the port when cancelled."""
    ready: asyncio.Queue[str] = asyncio.Queue()
    async with UniSenderEmulator(api_key=KEY) as emulator:
        server = asyncio.create_task(
            serve_forever(emulator, host="127.0.0.1", port=0, ready=ready.put_nowait)
        )
        try:
            url = await asyncio.wait_for(ready.get(), timeout=5)
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{url}/_emulator/calls") as response,
            ):
                assert await response.json() == {}
        finally:
            server.cancel()
            with pytest.raises(asyncio.CancelledError):
                await server
    assert ready.empty()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session:
            await session.get(f"{url}/_emulator/calls")


def export_files(name: str) -> list[Path]:
    """Export files of that name in any emulator's temporary directory."""
    return list(Path(tempfile.gettempdir()).glob(f"sync-engine-emulator-*/{name}"))


async def test_aclose_removes_export_files(served: Served) -> None:
    """Closing the emulator deletes its export files."""
    answer = await served.call("async/exportContacts")
    served.clock.now += 1
    link = (await task_result(served, answer["result"]["task_uuid"]))["file_to_download"]
    name = link.rsplit("/", 1)[1]
    assert len(export_files(name)) == 1
    await served.emulator.aclose()
    assert export_files(name) == []
    assert (await served.get_text(link))[0] == 404
