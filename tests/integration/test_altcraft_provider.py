"""The Altcraft provider driven directly (no engine): retries and settling split batches."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from altcraft_support import TOKEN, TRIGGER, TRIGGER_ID, Altcraft, serve_altcraft

from sync_engine.config import SyncSettings
from sync_engine.plan import Batch, BatchKind, Change, ChangeKind
from sync_engine.providers.altcraft import AltcraftConfig, AltcraftProvider
from sync_engine.providers.base import RowStatus
from sync_engine.secret import Secret


class JournalEvents:
    """Records what the provider tells the journal."""

    def __init__(self) -> None:
        self.sends = 0
        self.tasks: list[str] = []

    async def sent(self) -> None:
        self.sends += 1

    async def task(self, task_id: str) -> None:
        self.tasks.append(task_id)


@pytest.fixture
async def altcraft() -> AsyncIterator[Altcraft]:
    async with serve_altcraft() as served:
        yield served


def provider_for(
    altcraft: Altcraft, session: aiohttp.ClientSession, tmp_path: Path, **settings: object
) -> AltcraftProvider:
    config = AltcraftConfig(
        base_url=altcraft.base_url,
        api_key=Secret(TOKEN),
        db_id=7,
        task_poll_interval=0.05,
        task_poll_max=0.1,
        **settings,  # type: ignore[arg-type]
    )
    return AltcraftProvider(
        config,
        session=session,
        work_dir=tmp_path,
        sync=SyncSettings(),
        clock=altcraft.clock,
        rng=random.Random(1),
    )


def batch(count: int) -> Batch:
    changes = tuple(
        Change(
            ChangeKind.INSERT,
            f"u{i}@example.com",
            {"email": f"u{i}@example.com", "first_name": "N"},
        )
        for i in range(count)
    )
    return Batch(1, BatchKind.UPSERT, changes)


async def test_import_is_retried_after_a_5xx_but_import_and_trigger_is_not(
    tmp_path: Path, altcraft: Altcraft
) -> None:
    altcraft.emulator.faults.add(kind="http_503", method="profiles/import_batch")
    altcraft.emulator.faults.add(kind="http_503", method=TRIGGER)
    async with aiohttp.ClientSession() as session:
        plain = provider_for(altcraft, session, tmp_path)
        outcome = await plain.apply(batch(3))
        assert outcome.rows == ()
        assert plain.stats.retries == {"profiles/import_batch": 1}
        assert plain.resend_is_safe(batch(3))

        trigger = provider_for(altcraft, session, tmp_path, trigger_id=TRIGGER_ID)
        assert not trigger.resend_is_safe(batch(3))
        events = JournalEvents()
        outcome = await trigger.apply(batch(3), events)
        assert {(r.status, r.code) for r in outcome.rows} == {
            (RowStatus.TRANSIENT, "unknown_outcome")
        }
        assert altcraft.emulator.calls[TRIGGER] == 1  # a 503 may come after Altcraft acted
        assert events.sends == 1
        assert events.tasks == ["?"]


async def test_settling_a_split_batch_tells_each_part_apart(
    tmp_path: Path, altcraft: Altcraft
) -> None:
    """Parts with a task id are read; the part in flight is unknown; later ones unsent."""
    async with aiohttp.ClientSession() as session:
        provider = provider_for(
            altcraft, session, tmp_path, trigger_id=TRIGGER_ID, max_body_bytes=260
        )
        events = JournalEvents()
        whole = batch(9)
        outcome = await provider.apply(whole, events)
        assert outcome.rows == ()
        refs = events.tasks[-1].split(",")
        assert len(refs) >= 3
        assert events.tasks == [",".join(refs[: n + 1]) for n in range(len(refs))]
        sends = altcraft.emulator.calls[TRIGGER]

        # As if the run had stopped while the second part was in flight.
        settled = await provider.settle(whole, refs[0])
        assert settled is not None
        by_code: dict[str, int] = {}
        for row in settled.rows:
            by_code[row.code] = by_code.get(row.code, 0) + 1
        bodies, _ = provider._bodies(whole)
        assert by_code == {
            "unknown_outcome": len(bodies[1].rows),
            "not_sent": sum(len(b.rows) for b in bodies[2:]),
        }
        assert len(whole) - len(settled.rows) == len(bodies[0].rows)  # read from its task
        full = await provider.settle(whole, ",".join(refs))
        assert full is not None
        assert full.rows == ()
        assert await provider.settle(whole, None) is None
        assert altcraft.emulator.calls[TRIGGER] == sends  # settling never sends


async def test_request_options_follow_the_config(tmp_path: Path, altcraft: Altcraft) -> None:
    async with aiohttp.ClientSession() as session:
        provider = provider_for(
            altcraft,
            session,
            tmp_path,
            trigger_id=TRIGGER_ID,
            resource_id=3,
            matching="email_sub",
            skip_invalid_subscriptions=True,
            detect_geo=True,
            trigger_custom_data={"source": "crm"},
        )
        await provider.apply(batch(2))
    (sent,) = [r for r in altcraft.emulator.requests if r.method == TRIGGER]
    options = {k: v for k, v in sent.body.items() if k != "data"}
    assert options == {
        "db_id": 7,
        "matching": "email_sub",
        "resource_id": 3,
        "skip_invalid_subscriptions": True,
        "detect_geo": True,
        "trigger_id": TRIGGER_ID,
        "custom_data": {"source": "crm"},
    }
    assert sent.auth == "header"
