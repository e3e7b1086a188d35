"""The Altcraft emulator over HTTP: auth, the documented body-limit answer, matching modes,
the task life cycle, export downloads and deletes, as a client other than ours sees them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from altcraft_support import DB_ID, RESOURCE_ID, TOKEN, TRIGGER, Altcraft, serve_altcraft

from sync_engine.emulator.altcraft import AltcraftOptions, Subscription


@pytest.fixture
async def client() -> AsyncIterator[tuple[Altcraft, aiohttp.ClientSession]]:
    async with (
        serve_altcraft(AltcraftOptions(max_body_bytes=2000)) as served,
        aiohttp.ClientSession() as session,
    ):
        yield served, session


async def post(
    served: Altcraft, session: aiohttp.ClientSession, method: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    async with session.post(f"{served.base_url}/api/v1.1/{method}", json=body) as response:
        return response.status, await response.json()


async def test_token_rules_and_the_documented_body_limit_answer(
    client: tuple[Altcraft, aiohttp.ClientSession],
) -> None:
    served, session = client
    status, answer = await post(served, session, "profiles/import_batch", {"db_id": DB_ID})
    assert (status, answer["error"]) == (401, 401)
    status, answer = await post(served, session, "tasks/status", {"token": "nope", "task_id": "x"})
    assert (status, answer["error"]) == (403, 403)
    big = {"token": TOKEN, "db_id": DB_ID, "data": [{"email": "a@example.com", "x": "y" * 3000}]}
    status, answer = await post(served, session, "profiles/import_batch", big)
    assert status == 400
    assert answer == {
        "error": 400,
        "error_text": "Invalid request",
        "error_debug": "http: request body too large",
    }
    assert served.emulator.profiles() == []


async def test_matching_modes(client: tuple[Altcraft, aiohttp.ClientSession]) -> None:
    served, session = client
    by_sub = served.emulator.seed(
        DB_ID, {"email": "", "_fname": "Sub"}, [Subscription("email", RESOURCE_ID, "s@example.com")]
    )
    by_phone = served.emulator.seed(DB_ID, {"phones": "+79000000001", "_fname": "Phone"})
    by_crm = served.emulator.seed(DB_ID, {"CRM": "42", "_fname": "Crm"})

    async def upsert(matching: str, data: dict[str, str], **extra: object) -> dict[str, Any]:
        body = {"token": TOKEN, "db_id": DB_ID, "matching": matching, "data": [data], **extra}
        status, answer = await post(served, session, "profiles/import_batch", body)
        assert status == 200, answer
        result: dict[str, Any] = answer["result"][0]
        return result

    profile_only = await upsert("email_profile", {"email": "s@example.com"})
    assert profile_only["profile_id"] != by_sub.id  # no profile has that email field: new
    assert (await upsert("email_sub", {"email": "s@example.com"}))["profile_id"] == by_sub.id
    assert (await upsert("phone", {"phones": "+79000000001"}))["profile_id"] == by_phone.id
    both = await upsert("email_phone", {"email": "new@example.com", "phones": "+79000000001"})
    assert both["profile_id"] == by_phone.id
    crm = await upsert("custom", {"CRM": "42", "_fname": "Renamed"}, field_name="CRM")
    assert crm["profile_id"] == by_crm.id
    assert served.emulator.profile(CRM="42") is not None
    missing = await upsert("profile_id", {"_id": "f" * 24})
    assert missing["error"] == 404  # profile_id matching only updates
    bad = await upsert("email", {"email": "not-an-email"})
    assert bad["error"] == 400


async def test_trigger_task_life_cycle_export_and_delete(
    client: tuple[Altcraft, aiohttp.ClientSession],
) -> None:
    served, session = client
    body = {
        "token": TOKEN,
        "db_id": DB_ID,
        "trigger_id": 13,
        "data": [{"data": {"email": "t@example.com"}}],
    }
    status, answer = await post(served, session, TRIGGER, body)
    assert status == 200
    task = answer["task_id"]
    _, polled = await post(served, session, "tasks/status", {"token": TOKEN, "task_id": task})
    assert polled["data"]["status"] == "processing"
    served.clock.advance(1.0)
    _, polled = await post(served, session, "tasks/status", {"token": TOKEN, "task_id": task})
    assert polled["data"]["status"] == "completed"
    (profile,) = served.emulator.profiles()
    assert polled["data"]["result"]["result"] == [{"profile_id": profile.id}]
    assert served.emulator.trigger_count(profile, 13) == 1

    export = {"token": TOKEN, "source_type": "database", "source_id": DB_ID, "file_format": "json"}
    _, started = await post(served, session, "profiles/get_all", export)
    served.clock.advance(1.0)
    _, done = await post(
        served, session, "tasks/status", {"token": TOKEN, "task_id": started["data"]["task_id"]}
    )
    (url,) = done["data"]["result"]["urls"]
    async with session.get(served.base_url + url) as refused:
        assert refused.status == 401
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with session.get(served.base_url + url, headers=headers) as response:
        assert b"t@example.com" in await response.read()

    gone = {"token": TOKEN, "db_id": DB_ID, "matching": "email", "email": "t@example.com"}
    assert (await post(served, session, "profiles/delete", gone))[0] == 200
    assert served.emulator.profiles() == []
    status, answer = await post(served, session, "profiles/delete", gone)
    assert (status, answer["error"]) == (404, 404)
