"""Altcraft under fire (issue #8): retried where safe, re-requested where lost, paced by
the install's refusals, and a campaign-sending call never resent on a guess."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from altcraft_support import (
    DB_ID,
    TRIGGER,
    TRIGGER_ID,
    Altcraft,
    altcraft_config,
    serve_altcraft,
    sync,
)
from conftest import write_csv

from sync_engine import ExportError, Outcome, SyncConfig
from sync_engine.emulator import SURVIVABLE_KINDS, FaultKind
from sync_engine.emulator._faults import DOWNLOAD
from sync_engine.emulator.altcraft import AltcraftOptions, altcraft_fits

IMPORT = "profiles/import_batch"
EXPORT = "profiles/get_all"
STATUS = "tasks/status"
DELETE = "profiles/delete"
SITES = (IMPORT, EXPORT, STATUS, DELETE, DOWNLOAD)
CASES = [(kind, site) for kind in SURVIVABLE_KINDS for site in SITES if altcraft_fits(kind, site)]
TRIGGER_KINDS = [kind for kind in SURVIVABLE_KINDS if altcraft_fits(kind, TRIGGER)]
# Stalls and polls cost fake time only; a hang outlasts the 0.5 s client timeout.
SETTINGS: dict[str, Any] = {"timeout": 0.5, "batch_size": 20, "task_timeout": 60}
OPTIONS = AltcraftOptions(fault_hang_seconds=1.0, fault_retry_after=7.0)


@pytest.fixture
async def altcraft() -> AsyncIterator[Altcraft]:
    async with serve_altcraft(OPTIONS) as served:
        yield served


def truth(count: int) -> dict[str, str]:
    return {f"f{i}@example.com": f"F{i}" for i in range(count)}


def seed(altcraft: Altcraft, count: int) -> list[str]:
    """A quarter of the truth already right, a quarter stale, and four extra to remove."""
    for i, (email, name) in enumerate(truth(count).items()):
        if i % 4 < 2:
            altcraft.emulator.seed(DB_ID, {"email": email, "_fname": name if i % 4 else "old"})
    extra = [f"gone{i}@example.com" for i in range(4)]
    for email in extra:
        altcraft.emulator.seed(DB_ID, {"email": email, "_fname": "Gone"})
    return extra


def mirror_config(tmp_path: Path, altcraft: Altcraft, count: int, **provider: Any) -> SyncConfig:
    rows = [[email, name] for email, name in truth(count).items()]
    return altcraft_config(
        tmp_path,
        altcraft,
        source=write_csv(tmp_path / "c.csv", ["email", "name"], rows),
        sync={"mode": "mirror", "removal": "delete"},
        provider_settings={**SETTINGS, **provider},
    )


def database(altcraft: Altcraft) -> dict[str, str]:
    """The synced database as Altcraft holds it: email -> first name."""
    return {p.email: p.fields.get("_fname", "") for p in altcraft.emulator.profiles(DB_ID)}


@pytest.mark.parametrize(("kind", "site"), CASES)
async def test_each_fault_at_each_site_is_survived(
    tmp_path: Path, altcraft: Altcraft, kind: FaultKind, site: str
) -> None:
    """Two firings of any survivable fault, wherever it fits, still end in the local truth."""
    seed(altcraft, 80)
    altcraft.emulator.faults.add(kind=kind, method=site, count=2)
    config = mirror_config(tmp_path, altcraft, 80, task_poll_max=5.0)
    report = await sync(config, altcraft)
    assert altcraft.emulator.faults.injected[kind] >= 1
    assert report.outcome is Outcome.SUCCESS, report.problems.kept
    assert (report.inserted, report.updated, report.removed) == (40, 20, 4)
    assert database(altcraft) == truth(80)


@pytest.mark.parametrize(
    ("kind", "site"),
    [
        ("export_failed", STATUS),
        ("export_stalled", EXPORT),
        ("export_short", EXPORT),
        ("link_expired", DOWNLOAD),
        ("download_cut", DOWNLOAD),
    ],
)
async def test_an_export_lost_every_time_stops_the_run_before_any_change(
    tmp_path: Path, altcraft: Altcraft, kind: FaultKind, site: str
) -> None:
    """Re-requests are bounded (3 exports), and a partial or missing export never reaches
    the diff: in mirror mode it would plan false removals, so nothing is sent."""
    extra = seed(altcraft, 8)
    altcraft.emulator.faults.add(kind=kind, method=site, probability=1.0)
    config = mirror_config(tmp_path, altcraft, 8, task_timeout=20, task_poll_max=5.0)
    with pytest.raises(ExportError, match="no complete export after 3 attempts"):
        await sync(config, altcraft)
    assert altcraft.emulator.calls[EXPORT] == 3
    assert altcraft.emulator.calls[IMPORT] == altcraft.emulator.calls[DELETE] == 0
    assert set(extra) <= set(database(altcraft))


async def test_a_rate_limit_far_below_the_configured_one_slows_the_run_and_it_finishes(
    tmp_path: Path,
) -> None:
    """Configured at 50 calls/s against an install that takes 5: the adaptive limiter
    learns the pace from the refusals, which stay a bounded fraction of the calls (AIMD
    probes back up now and then, so a few recur), and the report shows the slowdowns and
    the rate achieved."""
    options = AltcraftOptions(rate_limit=5, rate_limit_window=1.0)
    async with serve_altcraft(options) as altcraft:
        extra = seed(altcraft, 800)
        config = mirror_config(tmp_path, altcraft, 800, batch_size=5, rate_limit=50)
        report = await sync(config, altcraft)
        assert report.outcome is Outcome.SUCCESS, report.problems.kept
        assert database(altcraft) == truth(800)
        assert not set(extra) & set(database(altcraft))
        refused = sum(report.retries.values())
        made = sum(report.calls.values())
        print(f"calls {made}, refused {refused}, rates {report.rates}")
        assert made >= 125  # 120 imports, 4 deletes, the export and its polls
        # Unpaced, 9 calls in 10 would be refused; AIMD's probing back up costs a few.
        assert refused < made // 3
        assert report.rates["slowdowns"] >= 1
        assert report.rates["lowest"] < report.rates["configured"] / 10
        assert report.rates["effective"] < report.rates["configured"] / 4
        assert "calls/s effective" in report.render_text()
        assert report.to_dict()["rates"] == report.rates


async def test_retry_after_holds_the_next_call_for_that_long(
    tmp_path: Path, altcraft: Altcraft
) -> None:
    """A 429 with Retry-After: 7 pauses the next start by 7 s (fake time), then resends."""
    altcraft.emulator.faults.add(kind="rate_limited_retry_after", method=IMPORT)
    config = mirror_config(tmp_path, altcraft, 10, timeout=30)
    report = await sync(config, altcraft)
    assert report.outcome is Outcome.SUCCESS
    assert altcraft.emulator.calls[IMPORT] == 2
    assert report.rates["slowdowns"] == 1
    assert any(6.9 <= s <= 7.0 for s in altcraft.clock.sleeps)


@pytest.mark.parametrize("kind", TRIGGER_KINDS)
async def test_a_fault_on_the_trigger_call_never_sends_a_campaign_twice(
    tmp_path: Path, altcraft: Altcraft, kind: FaultKind
) -> None:
    """Only a refusal (certainly not executed) is resent; any other fault leaves its batch
    unknown_outcome, reported, and the next run sends only what did not arrive. After it
    every profile has had exactly one campaign, and so had every row reported applied."""
    altcraft.emulator.faults.add(kind=kind, method=TRIGGER, count=1, after=1)
    config = mirror_config(tmp_path, altcraft, 60, trigger_id=TRIGGER_ID, concurrency=1)
    first = await sync(config, altcraft)
    assert altcraft.emulator.faults.injected[kind] == 1
    unknown = [p for p in first.problems.kept if p.code == "unknown_outcome"]
    assert first.inserted + first.failed == 60
    assert len(unknown) == first.failed
    if kind in ("rate_limited", "rate_limited_retry_after", "slow"):
        assert first.outcome is Outcome.SUCCESS
    else:
        assert len(unknown) == 20  # the one batch that met the fault, and only it
        assert altcraft.emulator.calls[TRIGGER] == 3  # never resent
    applied = {email for email in truth(60) if email not in {p.key for p in unknown}}
    counts = {
        p.email: altcraft.emulator.trigger_count(p, TRIGGER_ID)
        for p in altcraft.emulator.profiles()
    }
    assert all(counts[email] == 1 for email in applied)
    second = await sync(config, altcraft)
    assert second.outcome is Outcome.SUCCESS
    assert second.inserted <= len(unknown)
    assert database(altcraft) == truth(60)
    assert [
        altcraft.emulator.trigger_count(p, TRIGGER_ID) for p in altcraft.emulator.profiles()
    ] == [1] * 60
