"""The engine's answer to each fault: retried where safe, re-requested where lost, stopped
where retrying is pointless, and never a plan made from part of the remote side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import Provider, config_for, write_csv

from sync_engine import ExportError, Outcome, SyncConfig, SyncEngine, SyncReport
from sync_engine.emulator import SURVIVABLE_KINDS, EmulatedContact, EmulatorOptions, FaultKind
from sync_engine.emulator._faults import DOWNLOAD, fits

SITES = ("importContacts", "async/exportContacts", "async/getTaskResult", DOWNLOAD)
CASES = [(kind, site) for kind in SURVIVABLE_KINDS for site in SITES if fits(kind, site)]
SETTINGS: dict[str, Any] = {"timeout": 0.5, "batch_size": 50, "export_timeout": 60}


@pytest.fixture
def emulator_options() -> EmulatorOptions:
    # A hang outlasts the client's 0.5 s timeout but not the server's shutdown grace.
    return EmulatorOptions(fault_hang_seconds=1.0, fault_retry_after=7.0)


def rows(count: int) -> list[list[str]]:
    return [[f"f{i}@example.com", f"F{i}"] for i in range(count)]


async def sync(config: SyncConfig, provider: Provider) -> SyncReport:
    async with SyncEngine(config, clock=provider.clock) as engine:
        return await engine.run()


def members(provider: Provider) -> dict[str, str]:
    """The synced list as the provider holds it: email -> Name."""
    return {
        c.email: c.fields.get("Name", "")
        for c in provider.emulator.contacts()
        if c.email is not None
        and provider.list_id in c.email_list_ids
        and provider.list_id not in c.email_excluded_list_ids
    }


@pytest.mark.parametrize(("kind", "site"), CASES)
async def test_each_fault_at_each_site_is_survived(
    tmp_path: Path, provider: Provider, kind: FaultKind, site: str
) -> None:
    """Up to two firings of any survivable fault, wherever it fits, still end in the local
    truth (a fault that causes no resend, such as a slow answer, fires once)."""
    provider.emulator.faults.add(kind=kind, method=site, count=2)
    config = config_for(
        tmp_path,
        provider,
        source=write_csv(tmp_path / "c.csv", ["email", "name"], rows(120)),
        provider_settings=SETTINGS,
    )
    report = await sync(config, provider)
    assert provider.emulator.faults.injected[kind] >= 1
    assert report.outcome is Outcome.SUCCESS
    assert report.inserted == 120
    assert members(provider) == {f"f{i}@example.com": f"F{i}" for i in range(120)}


@pytest.mark.parametrize(
    ("kind", "site", "calls"),
    [
        ("export_failed", "async/getTaskResult", "async/exportContacts"),
        ("export_stalled", "async/exportContacts", "async/exportContacts"),
        ("export_short", "async/exportContacts", "async/exportContacts"),
        ("link_expired", DOWNLOAD, "async/exportContacts"),
        ("download_cut", DOWNLOAD, DOWNLOAD),
    ],
)
async def test_an_export_lost_every_time_stops_the_run_before_any_change(
    tmp_path: Path, provider: Provider, kind: FaultKind, site: str, calls: str
) -> None:
    """Re-requests are bounded, and a partial or missing export never reaches the diff:
    in mirror mode a partial remote side could plan false removals, so nothing is sent."""
    lid = provider.list_id
    kept = [f"keep{i}@example.com" for i in range(4)]
    provider.emulator.seed([EmulatedContact(email=e, email_list_ids={lid}) for e in kept])
    provider.emulator.faults.add(kind=kind, method=site, probability=1.0)
    config = config_for(
        tmp_path,
        provider,
        source=write_csv(tmp_path / "c.csv", ["email", "name"], rows(3)),
        provider_settings=SETTINGS,
        sync={"mode": "mirror"},
    )
    with pytest.raises(ExportError, match="no complete export after 3 attempts"):
        await sync(config, provider)
    assert provider.emulator.calls["importContacts"] == 0
    assert provider.emulator.calls[calls] >= 3
    assert set(kept) <= set(members(provider))


@pytest.mark.parametrize(
    "emulator_options", [EmulatorOptions(rate_limit=30, rate_limit_window=60.0)]
)
async def test_a_wrong_configured_limit_still_finishes_without_an_error_storm(
    tmp_path: Path, provider: Provider
) -> None:
    """Configured at 10x the account's real limit, the run slows down to it and finishes;
    refusals stay a fraction of the calls, and the report shows the rate it achieved."""
    config = config_for(
        tmp_path,
        provider,
        source=write_csv(tmp_path / "c.csv", ["email", "name"], rows(600)),
        provider_settings={**SETTINGS, "batch_size": 10, "rate_limit": 300},
    )
    report = await sync(config, provider)
    assert report.outcome is Outcome.SUCCESS
    assert report.inserted == 600
    refused = sum(report.retries.values())
    made = sum(report.calls.values())
    print(f"calls {made}, refused {refused}, rates {report.rates}")
    assert refused <= made // 4
    assert report.rates["slowdowns"] >= 1
    assert report.rates["effective"] < report.rates["configured"] / 2
    assert "calls/s effective" in report.render_text()
    assert report.to_dict()["rates"] == report.rates


async def test_retry_after_holds_every_call_for_that_long(
    tmp_path: Path, provider: Provider
) -> None:
    """A refusal with Retry-After: 7 pauses the next start by 7 s (fake time), then resends."""
    provider.emulator.faults.add(kind="rate_limited_retry_after", method="importContacts")
    config = config_for(
        tmp_path,
        provider,
        source=write_csv(tmp_path / "c.csv", ["email", "name"], rows(10)),
        provider_settings={**SETTINGS, "timeout": 30},  # no spurious timeout on a busy machine
    )
    report = await sync(config, provider)
    assert report.outcome is Outcome.SUCCESS
    assert provider.emulator.calls["importContacts"] == 2
    assert any(6.9 <= s <= 7.0 for s in provider.clock.sleeps)


async def test_a_call_that_never_answers_fails_after_bounded_retries_with_a_clear_message(
    tmp_path: Path, provider: Provider
) -> None:
    """The client's timeout fires on every attempt; the batch is failed, not waited on forever."""
    provider.emulator.faults.add(kind="hang", method="importContacts", probability=1.0)
    config = config_for(
        tmp_path,
        provider,
        source=write_csv(tmp_path / "c.csv", ["email", "name"], rows(10)),
        provider_settings={**SETTINGS, "max_attempts": 2},
    )
    report = await sync(config, provider)
    assert report.outcome is Outcome.FAILED
    assert report.failed == 10
    assert provider.emulator.calls["importContacts"] == 2
    assert any("no answer within 0.5 s" in str(p) for p in report.problems.kept)
