"""Narrow HTTP-layer tests of the UniSender client: export statuses the emulator never sends."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest
from aioresponses import aioresponses
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_engine import ExportError, Secret, UniSenderConfig
from sync_engine.clock import FakeClock
from sync_engine.providers.unisender import LOCK_COLUMNS, LOCK_PRESENCE, UniSenderProvider

BASE = "https://api.example.com"
EXPORT = re.compile(rf"^{BASE}/en/api/async/exportContacts.*")
RESULT = re.compile(rf"^{BASE}/en/api/async/getTaskResult.*")


def make(session: aiohttp.ClientSession, tmp_path: Path) -> UniSenderProvider:
    config = UniSenderConfig(
        base_url=BASE, api_key=Secret("k-provider-123"), export_poll_interval=0.5
    )
    return UniSenderProvider(config, session=session, work_dir=tmp_path, clock=FakeClock())


@pytest.mark.parametrize("status", ["failed", "error", ""])
async def test_unknown_export_status_is_a_clear_error(tmp_path: Path, status: str) -> None:
    """A failed task is requested again (issue #8), three times at most, then named."""
    async with aiohttp.ClientSession() as session:
        with aioresponses() as mocked:
            for _ in range(3):
                mocked.post(EXPORT, payload={"result": {"task_uuid": "t-1", "status": "new"}})
                mocked.post(
                    RESULT, payload={"result": {"task_uuid": "t-1", "status": "processing"}}
                )
                mocked.post(RESULT, payload={"result": {"task_uuid": "t-1", "status": status}})
            with pytest.raises(
                ExportError,
                match=f"after 3 attempts; last: export task t-1 reported status {status!r}",
            ):
                await make(session, tmp_path).snapshot(["email"])


async def test_queued_status_is_waited_on_and_relative_links_resolve(tmp_path: Path) -> None:
    """`queued` (seen in one client) means wait; a relative link resolves on base_url."""
    async with aiohttp.ClientSession() as session:
        with aioresponses() as mocked:
            mocked.post(EXPORT, payload={"result": {"task_uuid": "t-2", "status": "new"}})
            mocked.post(RESULT, payload={"result": {"status": "queued"}})
            mocked.post(
                RESULT,
                payload={"result": {"status": "completed", "file_to_download": "/files/x.csv"}},
            )
            mocked.get(f"{BASE}/files/x.csv", body=b"email,email_status\na@x.com,active\n")
            snapshot = await make(session, tmp_path).snapshot(["email"])
            records = [r async for r in snapshot.records()]
    assert [dict(r.values) for r in records] == [  # type: ignore[union-attr]
        {"email": "a@x.com", "email_status": "active", "email_unsubscribed_list_ids": None}
    ]


async def test_export_request_sends_field_names_and_list_in_the_body(tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as session:
        with aioresponses() as mocked:
            mocked.post(EXPORT, payload={"error": "bad list", "code": "invalid_arg"})
            provider = make(session, tmp_path)
            with pytest.raises(ExportError, match="bad list"):
                await provider.snapshot(["email", "Name"])
            (call,) = next(iter(mocked.requests.values()))
    body = call.kwargs["data"].decode()
    assert "field_names%5B%5D=email&field_names%5B%5D=Name" in body
    assert "api_key=k-provider-123" in body  # in the body, never in the URL
    assert "api_key" not in str(next(iter(mocked.requests))[1])


VALUE = st.one_of(st.none(), st.sampled_from(["", " ", "\u00a0", "1", "5", "1, 5", "x"]), st.text())
STATUS = st.one_of(
    st.none(), st.sampled_from(["active", "unsubscribed", " Blocked ", "activation_requested"])
)


@given(
    st.sampled_from(["email", "phone", "email_or_phone"]),
    st.sampled_from([None, 5]),
    st.fixed_dictionaries(
        {
            "email": VALUE,
            "phone": VALUE,
            "email_status": STATUS,
            "phone_status": STATUS,
            "email_unsubscribed_list_ids": VALUE,
            "Name": VALUE,
        }
    ),
)
@settings(max_examples=300, deadline=None)
def test_the_lock_reads_only_what_it_declares(
    key: str, list_id: int | None, values: dict[str, str | None]
) -> None:
    """LOCK_COLUMNS by value and LOCK_PRESENCE by blankness decide _lock_reason alone: the
    columnar planner calls it once per distinct combination of just those."""
    config = UniSenderConfig(base_url=BASE, api_key=Secret("k-provider-123"), list_id=list_id)
    # _lock_reason needs no session; none is opened for a pure function.
    provider = UniSenderProvider(
        config,
        session=None,  # type: ignore[arg-type]
        work_dir=Path("."),
        key=key,
    )
    reduced: dict[str, object] = {name: values[name] for name in LOCK_COLUMNS}
    reduced.update({name: "x" if str(values[name] or "").strip() else "" for name in LOCK_PRESENCE})
    assert provider._lock_reason(values) == provider._lock_reason(reduced)
