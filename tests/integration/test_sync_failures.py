"""How a run ends when the provider refuses: every row accounted for, no endless loops."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import Provider, config_for, write_csv

from sync_engine import (
    ExportError,
    FatalProviderError,
    Outcome,
    SyncConfig,
    SyncEngine,
    SyncReport,
)
from sync_engine.emulator import EmulatedContact, EmulatorOptions, FaultKind


async def sync(config: SyncConfig, provider: Provider, **kwargs: object) -> SyncReport:
    async with SyncEngine(config, clock=provider.clock) as engine:
        return await engine.run(**kwargs)  # type: ignore[arg-type]


def rows(count: int) -> list[list[str]]:
    return [[f"f{i}@example.com", f"F{i}"] for i in range(count)]


async def test_invalid_arg_on_a_batch_is_reported_with_its_rows_and_not_looped(
    tmp_path: Path, provider: Provider
) -> None:
    """`invalid_arg` means bad data or a bug: that batch's rows are rejected, the rest go on."""
    provider.emulator.faults.add(method="importContacts", kind="invalid_arg", count=1)
    rejects = tmp_path / "rejects.csv"
    config = config_for(
        tmp_path, provider, source=write_csv(tmp_path / "c.csv", ["email", "name"], rows(700))
    )
    async with SyncEngine(config, clock=provider.clock, rejects_path=rejects) as engine:
        report = await engine.run()
    assert provider.emulator.calls["importContacts"] == 2  # no retry of the refused batch
    assert report.rejected + report.inserted == 700
    assert report.rejected in (500, 200)
    assert report.outcome is Outcome.REJECTED_ROWS
    with rejects.open(encoding="utf-8") as handle:
        refused = list(csv.DictReader(handle))
    assert len(refused) == report.rejected
    assert all(r["code"] == "invalid_arg" and "batch 1 not applied" in r["reason"] for r in refused)


@pytest.mark.parametrize("kind", ["access_denied", "not_enough_money"])
async def test_fatal_answers_stop_the_run_at_once(
    tmp_path: Path, provider: Provider, kind: FaultKind
) -> None:
    provider.emulator.faults.add(method="importContacts", kind=kind, count=1)
    config = config_for(
        tmp_path,
        provider,
        source=write_csv(tmp_path / "c.csv", ["email", "name"], rows(1200)),
        provider_settings={"concurrency": 1},
    )
    async with SyncEngine(config, clock=provider.clock) as engine:
        with pytest.raises(FatalProviderError, match=kind):
            await engine.run()
        report = engine.last_report
    assert report is not None
    assert report.outcome is Outcome.FAILED
    assert provider.emulator.calls["importContacts"] == 1
    assert "stopped after 0 of 1200 changes" in report.message


async def test_a_batch_failing_every_retry_is_recorded_and_fails_the_run(
    tmp_path: Path, provider: Provider
) -> None:
    """Retries are bounded; the rows of the batch that never got through are all listed."""
    provider.emulator.faults.add(method="importContacts", kind="http_503", count=3)
    config = config_for(
        tmp_path,
        provider,
        source=write_csv(tmp_path / "c.csv", ["email", "name"], rows(10)),
        provider_settings={"max_attempts": 3},
    )
    report = await sync(config, provider)
    assert provider.emulator.calls["importContacts"] == 3
    assert (report.failed, report.inserted) == (10, 0)
    assert report.outcome is Outcome.FAILED
    assert report.exit_code == 3
    assert {p.stage for p in report.problems.kept} == {"batch"}
    assert report.retries["importContacts"] == 2
    # The next run picks the same rows up again: nothing is forgotten.
    again = await sync(config, provider)
    assert again.inserted == 10


@pytest.mark.parametrize("emulator_options", [EmulatorOptions(contact_limit=3)])
async def test_overlimit_warning_is_surfaced_and_the_rows_still_count(
    tmp_path: Path, provider: Provider
) -> None:
    config = config_for(
        tmp_path, provider, source=write_csv(tmp_path / "c.csv", ["email", "name"], rows(5))
    )
    report = await sync(config, provider)
    assert report.inserted == 5
    assert report.row_warnings == 2
    assert report.outcome is Outcome.SUCCESS
    assert "Addresses overlimit for current period" in report.warnings
    assert any(w.startswith("w_common_overlimit") for w in report.warnings)
    assert "warning: Addresses overlimit" in report.render_text()


@pytest.mark.parametrize(
    "emulator_options",
    [EmulatorOptions(export_processing_after=10_000, export_ready_after=20_000)],
)
async def test_export_timeout_is_a_clear_error(tmp_path: Path, provider: Provider) -> None:
    """An export that never completes ends the run after export_timeout, with the task named."""
    config = config_for(
        tmp_path,
        provider,
        source=write_csv(tmp_path / "c.csv", ["email", "name"], rows(1)),
        provider_settings={"export_timeout": 600, "export_poll_max": 30},
    )
    with pytest.raises(ExportError, match=r"not completed after \d+ s \(status 'new'\)"):
        await sync(config, provider)
    assert provider.emulator.calls["importContacts"] == 0


@pytest.mark.parametrize("key", ["phone", "email_or_phone"])
async def test_phone_keys_converge(tmp_path: Path, provider: Provider, key: str) -> None:
    """Contacts keyed by E.164 phone (or email, else phone) converge in two runs."""
    lid = provider.list_id
    provider.emulator.seed(
        [EmulatedContact(phone="+79160000001", phone_list_ids={lid}, fields={"Name": "Old"})]
    )
    source = write_csv(
        tmp_path / "c.csv",
        ["email", "phone", "name"],
        [
            ["", "8 916 000-00-01", "New"],
            ["", "+7 916 000 00 02", "Two"],
            ["both@example.com" if key == "email_or_phone" else "", "+7 916 000 00 03", "Three"],
        ],
    )
    mapping = {"phone": "phone", "Name": "name"}
    if key == "email_or_phone":
        mapping["email"] = "email"
    config = config_for(
        tmp_path,
        provider,
        source=source,
        mapping=mapping,
        sync={"key": key, "default_region": "RU"},
    )
    first = await sync(config, provider)
    assert (first.inserted, first.updated) == (2, 1), first.render_text()
    updated = provider.emulator.contact(phone="+79160000001")
    assert updated is not None
    assert updated.fields["Name"] == "New"
    second = await sync(config, provider)
    assert second.plan.changes == 0, second.render_text()
