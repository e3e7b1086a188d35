"""End-to-end syncs through the library API against the emulator over loopback HTTP."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from conftest import Provider, config_for, write_csv
from structlog.testing import capture_logs

from sync_engine import (
    FatalProviderError,
    Outcome,
    RunRefusedError,
    SyncConfig,
    SyncEngine,
    SyncReport,
)
from sync_engine.emulator import EmulatedContact, EmulatorOptions, ExportFormat, FaultKind

MAPPING = {
    "email": "email",
    "phone": "phone",
    "tags": "tags",
    "email_list_ids": "lists",
    "Name": "name",
    "City": "city",
}

PEOPLE = [
    ("Anna.Ivanova@Example.com", "8 (916) 123-45-01", "vip, newsletter", "", "Анна", "Москва"),
    ("boris@example.com", "+7 916 123 45 02", "newsletter", "", "Борис", "Санкт-Петербург"),
    ("kate@example.org", "+44 20 7946 0958", "", "", "Kate", "London"),
    ("li.wei@example.com", "+86 138 0013 8000", "", "", "李伟", "北京"),
    ("zoe@example.com", "+41 44 668 18 00", "a,b", "", "Zoe\u0308", "Zürich"),
    ("ivan@пример.рф", "", "", "", "Иван", ""),
]


async def sync(config: SyncConfig, provider: Provider, **kwargs: object) -> SyncReport:
    async with SyncEngine(config, clock=provider.clock) as engine:
        return await engine.run(**kwargs)  # type: ignore[arg-type]


def people_csv(tmp_path: Path, other_list: int) -> Path:
    rows = [list(p) for p in PEOPLE]
    rows[0][3] = str(other_list)  # Anna is also in a second list
    return write_csv(
        tmp_path / "people.csv", ["email", "phone", "tags", "lists", "name", "city"], rows
    )


async def test_first_run_inserts_everything_and_second_run_plans_nothing(
    tmp_path: Path, provider: Provider
) -> None:
    """Convergence with tags, list ids, user fields, unicode names and local phone formats."""
    other = provider.list_id + 1
    config = config_for(
        tmp_path,
        provider,
        source=people_csv(tmp_path, other),
        mapping=MAPPING,
        sync={"default_region": "RU"},
    )
    first = await sync(config, provider)
    assert first.outcome is Outcome.SUCCESS, first.render_text()
    assert (first.inserted, first.updated, first.removed) == (len(PEOPLE), 0, 0)

    anna = provider.emulator.contact(email="anna.ivanova@example.com")
    assert anna is not None
    assert anna.phone == "+79161234501"
    assert anna.tags == {"vip", "newsletter"}
    assert anna.email_list_ids == {provider.list_id, other}
    assert anna.fields == {"Name": "Анна", "City": "Москва"}
    zoe = provider.emulator.contact(email="zoe@example.com")
    assert zoe is not None
    assert zoe.fields["Name"] == "Zoë"
    assert provider.emulator.contact(email="ivan@xn--e1afmkfd.xn--p1ai") is not None

    imports = provider.emulator.calls["importContacts"]
    second = await sync(config, provider)
    assert second.plan.changes == 0, second.render_text()
    assert second.plan.unchanged == len(PEOPLE)
    assert provider.emulator.calls["importContacts"] == imports


async def test_updates_and_mirror_removals_are_applied_exactly(
    tmp_path: Path, provider: Provider
) -> None:
    """Changed fields are updated, new contacts inserted, a missing one leaves the list."""
    lid = provider.list_id
    provider.emulator.seed(
        EmulatedContact(email=f"u{i}@example.com", email_list_ids={lid}, fields={"Name": f"U{i}"})
        for i in range(20)
    )
    rows = [[f"u{i}@example.com", f"U{i}"] for i in range(19)]  # u19 is gone locally
    rows[3][1] = "Renamed"
    rows.append(["new@example.com", "Newcomer"])
    config = config_for(
        tmp_path,
        provider,
        source=write_csv(tmp_path / "c.csv", ["email", "name"], rows),
        sync={"mode": "mirror"},
    )
    report = await sync(config, provider)
    assert (report.inserted, report.updated, report.removed) == (1, 1, 1), report.render_text()
    gone = provider.emulator.contact(email="u19@example.com")
    assert gone is not None
    assert lid not in gone.email_list_ids
    assert lid in gone.email_excluded_list_ids
    renamed = provider.emulator.contact(email="u3@example.com")
    assert renamed is not None
    assert renamed.fields["Name"] == "Renamed"
    untouched = provider.emulator.contact(email="u4@example.com")
    assert untouched is not None
    assert untouched.fields["Name"] == "U4"
    assert (await sync(config, provider)).plan.changes == 0


async def test_mirror_delete_removes_the_contact(tmp_path: Path, provider: Provider) -> None:
    """With removal = "delete" the `delete` column deletes the contact at the provider."""
    lid = provider.list_id
    provider.emulator.seed(
        EmulatedContact(email=f"d{i}@example.com", email_list_ids={lid}) for i in range(20)
    )
    rows = [[f"d{i}@example.com", ""] for i in range(18)]
    config = config_for(
        tmp_path,
        provider,
        source=write_csv(tmp_path / "c.csv", ["email", "name"], rows),
        sync={"mode": "mirror", "removal": "delete"},
    )
    report = await sync(config, provider)
    assert report.removed == 2, report.render_text()
    assert provider.emulator.contact(email="d18@example.com") is None
    assert provider.emulator.contact(email="d19@example.com") is None
    assert len(provider.emulator.contacts()) == 18


async def test_deletion_guard_refuses_a_mass_removal_and_allow_deletes_lifts_it(
    tmp_path: Path, provider: Provider
) -> None:
    """Half the base missing locally: refused with nothing sent; allowed once explicitly."""
    lid = provider.list_id
    provider.emulator.seed(
        EmulatedContact(email=f"g{i}@example.com", email_list_ids={lid}) for i in range(20)
    )
    rows = [[f"g{i}@example.com", ""] for i in range(10)]
    config = config_for(
        tmp_path,
        provider,
        source=write_csv(tmp_path / "c.csv", ["email", "name"], rows),
        sync={"mode": "mirror"},
    )
    with pytest.raises(RunRefusedError, match="--allow-deletes 10"):
        await sync(config, provider)
    assert provider.emulator.calls["importContacts"] == 0
    report = await sync(config, provider, allow_deletes=10)
    assert report.removed == 10
    assert sum(1 for c in provider.emulator.contacts() if c.in_list(lid)) == 10


async def test_unsubscribed_contacts_stay_unsubscribed(tmp_path: Path, provider: Provider) -> None:
    """The provider's consent wins: no update is sent, even with --full, and it is reported."""
    lid = provider.list_id
    provider.emulator.seed(
        [
            EmulatedContact(
                email="gone@example.com",
                email_status="unsubscribed",
                email_list_ids={lid},
                fields={"Name": "Old"},
            ),
            EmulatedContact(
                email="left-list@example.com",
                email_list_ids={lid},
                email_unsubscribed_list_ids={lid},
                fields={"Name": "Old"},
            ),
            EmulatedContact(email="fine@example.com", email_list_ids={lid}, fields={"Name": "Old"}),
        ]
    )
    rows = [
        ["gone@example.com", "New"],
        ["left-list@example.com", "New"],
        ["fine@example.com", "New"],
    ]
    config = config_for(
        tmp_path, provider, source=write_csv(tmp_path / "c.csv", ["email", "name"], rows)
    )
    for full in (False, True):
        report = await sync(config, provider, full=full)
        assert report.plan.kept_by_consent == 2
        assert dict(report.kept) == {
            "gone@example.com": "email_status=unsubscribed",
            "left-list@example.com": f"unsubscribed from list {lid}",
        }
        assert "kept as the provider has them" in report.render_text()
    gone = provider.emulator.contact(email="gone@example.com")
    assert gone is not None
    assert gone.email_status == "unsubscribed"
    assert gone.fields["Name"] == "Old"
    left = provider.emulator.contact(email="left-list@example.com")
    assert left is not None
    assert left.fields["Name"] == "Old"
    fine = provider.emulator.contact(email="fine@example.com")
    assert fine is not None
    assert fine.fields["Name"] == "New"


async def test_1234_changes_go_out_in_three_calls_with_per_row_rejects(
    tmp_path: Path, provider: Provider
) -> None:
    """ceil(1234/500) importContacts calls; provider rejects come back per row with reasons."""
    rows = [[f"p{i}@example.com", f"+7916{i:07d}"] for i in range(1234)]
    rows[10][0] = "trap1@spamtrap.example.com"
    rows[700][0] = "trap2@spamtrap.example.com"
    rows[20][1] = rows[21][1]  # two local contacts share one phone
    rows[1100][1] = rows[5][1]
    rejects = tmp_path / "rejects.csv"
    config = config_for(
        tmp_path,
        provider,
        source=write_csv(tmp_path / "c.csv", ["email", "phone"], rows),
        mapping={"email": "email", "phone": "phone"},
    )
    async with SyncEngine(config, clock=provider.clock, rejects_path=rejects) as engine:
        report = await engine.run()
    assert provider.emulator.calls["importContacts"] == 3
    assert report.batches == 3
    assert report.rejected == 4, report.render_text()
    assert report.inserted == 1230
    assert report.exit_code == 1
    with rejects.open(encoding="utf-8") as handle:
        rejected = {r["key"]: r for r in csv.DictReader(handle)}
    assert rejected["trap1@spamtrap.example.com"]["code"] == "e_email_invalid"
    assert rejected["trap1@spamtrap.example.com"]["line"] == "12"
    assert {rejected[k]["code"] for k in ("p21@example.com", "p1100@example.com")} == {
        "e_phone_not_unique"
    }
    assert rejected["p1100@example.com"]["source"].endswith("c.csv")


@pytest.mark.parametrize("kind", ["rate_limited", "http_503", "retry_later"])
async def test_rate_limit_and_server_errors_are_retried_and_the_run_converges(
    tmp_path: Path, provider: Provider, kind: FaultKind
) -> None:
    provider.emulator.faults.add(method="importContacts", kind=kind, count=2)
    provider.emulator.faults.add(method="async/getTaskResult", kind=kind, count=1)
    rows = [[f"r{i}@example.com", f"R{i}"] for i in range(700)]
    config = config_for(
        tmp_path, provider, source=write_csv(tmp_path / "c.csv", ["email", "name"], rows)
    )
    report = await sync(config, provider)
    assert report.outcome is Outcome.SUCCESS, report.render_text()
    assert report.inserted == 700
    assert report.retries["importContacts"] == 2
    assert report.retries["async/getTaskResult"] == 1
    assert (await sync(config, provider)).plan.changes == 0


async def test_retry_after_is_honoured(
    tmp_path: Path, emulator_options: EmulatorOptions, provider: Provider
) -> None:
    """A rate-limit answer with Retry-After makes the engine wait at least that long."""
    provider.emulator.faults.add(method="importContacts", kind="rate_limited", count=1)
    provider.emulator.options = EmulatorOptions(retry_after=42)
    config = config_for(
        tmp_path,
        provider,
        source=write_csv(tmp_path / "c.csv", ["email", "name"], [["a@example.com", "A"]]),
    )
    report = await sync(config, provider)
    assert report.inserted == 1
    assert any(s >= 42 for s in provider.clock.sleeps)


async def test_invalid_api_key_stops_the_run_without_showing_the_key(
    tmp_path: Path, provider: Provider
) -> None:
    wrong = "wrong-key-8d7c6b5a4f"
    config = config_for(
        tmp_path,
        provider,
        source=write_csv(tmp_path / "c.csv", ["email", "name"], [["a@example.com", "A"]]),
        api_key=wrong,
    )
    async with SyncEngine(config, clock=provider.clock) as engine:
        with pytest.raises(FatalProviderError, match="invalid_api_key") as caught:
            await engine.run()
        assert engine.last_report is not None
        assert engine.last_report.outcome is Outcome.FAILED
        assert wrong not in repr(engine.last_report.to_dict())
    assert wrong not in str(caught.value)
    assert provider.emulator.calls["importContacts"] == 0


async def test_bad_local_input_is_reported_and_the_rest_goes_on(
    tmp_path: Path, provider: Provider
) -> None:
    """Missing key, malformed email, a ragged line and a wrong-encoding byte: named, skipped."""
    path = tmp_path / "bad.csv"
    path.write_bytes(
        b"email,name\n"
        b"good1@example.com,One\n"
        b",No Key\n"
        b"not-an-email,Bad\n"
        b"good2@example.com,Two,extra\n"
        b"bad\xff@example.com,Latin\n"
        b"good3@example.com,Three\n"
    )
    config = config_for(tmp_path, provider, source=path)
    report = await sync(config, provider)
    assert report.inserted == 2
    assert report.exit_code == 1
    problems = {p.line: p for p in report.problems.kept}
    assert set(problems) == {3, 4, 5, 6}
    assert "no email" in problems[3].reason
    assert problems[4].field == "email"
    assert "invalid email" in problems[4].reason
    assert "fields" in problems[5].reason
    assert "utf" in problems[6].reason.lower()
    assert all(p.source == str(path) for p in problems.values())
    assert report.plan.invalid_local == 4


async def test_a_row_with_a_bad_field_protects_its_contact_from_removal(
    tmp_path: Path, provider: Provider
) -> None:
    """A typo in a phone must not make mirror mode remove that person."""
    lid = provider.list_id
    provider.emulator.seed(
        EmulatedContact(email=f"k{i}@example.com", email_list_ids={lid}) for i in range(5)
    )
    rows = [[f"k{i}@example.com", "+7916000000" + str(i)] for i in range(5)]
    rows[2][1] = "12"  # not a phone
    config = config_for(
        tmp_path,
        provider,
        source=write_csv(tmp_path / "c.csv", ["email", "phone"], rows),
        mapping={"email": "email", "phone": "phone"},
        sync={"mode": "mirror"},
    )
    report = await sync(config, provider)
    assert report.plan.to_remove == 0
    assert report.plan.invalid_local == 1
    assert report.removed == 0


@pytest.mark.parametrize(
    "export_format",
    [
        ExportFormat(),
        ExportFormat(delimiter=";", bom=True),
        ExportFormat(delimiter="\t", line_terminator="\n"),
        ExportFormat(compression="gzip"),
        ExportFormat(compression="zip"),
        ExportFormat(header=False),
    ],
    ids=["csv", "semicolon-bom", "tab-lf", "gzip", "zip", "headerless"],
)
async def test_every_export_file_variant_converges(
    tmp_path: Path, provider: Provider, export_format: ExportFormat
) -> None:
    """The undocumented export format is sniffed: each variant reads back to zero changes."""
    provider.emulator.options = EmulatorOptions(export_format=export_format)
    rows = [
        [f"v{i}@example.com", f'Name; {i}, "q"', "+7916000000" + str(i % 10), "x,y"]
        for i in range(30)
    ]
    config = config_for(
        tmp_path,
        provider,
        source=write_csv(tmp_path / "c.csv", ["email", "name", "phone", "tags"], rows[:10]),
        mapping={"email": "email", "Name": "name", "tags": "tags"},
    )
    assert (await sync(config, provider)).inserted == 10
    report = await sync(config, provider)
    assert report.plan.remote_total == 10
    assert report.plan.changes == 0, report.render_text()


async def test_modes_insert_only_and_update_only(tmp_path: Path, provider: Provider) -> None:
    lid = provider.list_id
    provider.emulator.seed(
        [EmulatedContact(email="old@example.com", email_list_ids={lid}, fields={"Name": "A"})]
    )
    source = write_csv(
        tmp_path / "c.csv", ["email", "name"], [["old@example.com", "B"], ["new@example.com", "N"]]
    )
    insert_only = await sync(
        config_for(tmp_path, provider, source=source, sync={"mode": "insert-only"}), provider
    )
    assert (insert_only.inserted, insert_only.updated, insert_only.plan.skipped_by_mode) == (
        1,
        0,
        1,
    )
    provider.emulator.seed([EmulatedContact(email="new2@example.com", email_list_ids={lid})])
    source = write_csv(
        tmp_path / "c.csv",
        ["email", "name"],
        [["old@example.com", "B"], ["brand-new@example.com", "N"]],
    )
    update_only = await sync(
        config_for(tmp_path, provider, source=source, sync={"mode": "update-only"}), provider
    )
    assert (update_only.inserted, update_only.updated, update_only.plan.skipped_by_mode) == (
        0,
        1,
        1,
    )
    assert provider.emulator.contact(email="brand-new@example.com") is None


async def test_dry_run_shows_field_level_changes_and_sends_nothing(
    tmp_path: Path, provider: Provider
) -> None:
    lid = provider.list_id
    provider.emulator.seed(
        [EmulatedContact(email="a@example.com", email_list_ids={lid}, fields={"Name": "Old"})]
    )
    source = write_csv(
        tmp_path / "c.csv", ["email", "name"], [["a@example.com", "New"], ["b@example.com", "Bee"]]
    )
    config = config_for(tmp_path, provider, source=source)
    async with SyncEngine(config, clock=provider.clock) as engine:
        report = await engine.plan()
    assert report.dry_run
    assert (report.plan.to_insert, report.plan.to_update) == (1, 1)
    update = next(s for s in report.samples if s.key == "a@example.com")
    assert [(c.field, c.old, c.new) for c in update.fields] == [("Name", "Old", "New")]
    assert provider.emulator.calls["importContacts"] == 0


async def test_library_accepts_any_iterable_of_mappings(tmp_path: Path, provider: Provider) -> None:
    """Embedded use: the caller's own async generator is the source."""

    async def contacts() -> AsyncIterator[dict[str, str]]:
        for i in range(3):
            yield {"email": f"lib{i}@example.com", "name": f"L{i}"}

    config = config_for(
        tmp_path, provider, source=write_csv(tmp_path / "unused.csv", ["email", "name"], [])
    )
    async with SyncEngine(config, source=contacts(), clock=provider.clock) as engine:
        report = await engine.run()
    assert report.inserted == 3
    assert provider.emulator.contact(email="lib2@example.com") is not None


async def test_jsonl_source(tmp_path: Path, provider: Provider) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(
        '{"email": "j1@example.com", "name": "J1", "tags": ["a", "b"]}\n'
        "{broken\n"
        '{"email": "j2@example.com", "name": null}\n',
        encoding="utf-8",
    )
    config = config_for(
        tmp_path, provider, source=path, mapping={"email": "email", "Name": "name", "tags": "tags"}
    )
    report = await sync(config, provider)
    assert report.inserted == 2
    assert [p.line for p in report.problems.kept] == [2]
    j1 = provider.emulator.contact(email="j1@example.com")
    assert j1 is not None
    assert j1.tags == {"a", "b"}
    assert (await sync(config, provider)).plan.changes == 0


async def test_cancellation_stops_cleanly_with_a_report(tmp_path: Path, provider: Provider) -> None:
    """Cancelling run() mid-apply: the engine unwinds, last_report says what was done."""
    rows = [[f"c{i}@example.com", ""] for i in range(3000)]
    config = config_for(
        tmp_path,
        provider,
        source=write_csv(tmp_path / "c.csv", ["email", "name"], rows),
        provider_settings={"concurrency": 1},
    )

    class CancelAfterFirstBatch:
        def __init__(self, scope: anyio.CancelScope) -> None:
            self.scope = scope

        def stage(self, name: str) -> None:
            pass

        def update(self, stage: str, info: object) -> None:
            if stage == "batches":
                self.scope.cancel()

        def close(self) -> None:
            pass

    with anyio.CancelScope() as scope:
        engine = SyncEngine(config, clock=provider.clock, progress=CancelAfterFirstBatch(scope))
        async with engine:
            await engine.run()
    assert scope.cancelled_caught
    report = engine.last_report
    assert report is not None
    assert report.outcome is Outcome.CANCELLED
    assert 500 <= report.inserted < 3000
    assert len(provider.emulator.contacts()) == report.inserted


async def test_selzy_is_the_same_provider_on_another_host(
    tmp_path: Path, provider: Provider
) -> None:
    config = config_for(
        tmp_path,
        provider,
        source=write_csv(tmp_path / "c.csv", ["email", "name"], [["s@example.com", "S"]]),
        provider_settings={"type": "selzy"},
    )
    assert config.provider.kind == "selzy"
    report = await sync(config, provider)
    assert report.provider == "selzy"
    assert report.inserted == 1


async def test_a_file_the_columnar_reader_refuses_is_planned_row_by_row(
    tmp_path: Path, provider: Provider
) -> None:
    """A quoted line break shifts line numbers: the engine logs why and plans by rows,
    with the same result as ever (the second contact's line is still 4)."""
    source = tmp_path / "c.csv"
    source.write_text(
        'email,name\r\na@example.com,"two\r\nlines"\r\nnot-an-email,B\r\n', encoding="utf-8"
    )
    config = config_for(tmp_path, provider, source=source)
    with capture_logs() as logs:
        report = await sync(config, provider)
    assert {"event": "planning row by row", "log_level": "info"}.items() <= next(
        e for e in logs if e["event"] == "planning row by row"
    ).items()
    assert report.inserted == 1
    assert [(p.line, p.field) for p in report.problems.kept] == [(4, "email")]


@pytest.mark.parametrize("block_bytes", [None, 48])
async def test_repeated_keys_new_and_known_are_reported_like_the_row_path(
    tmp_path: Path, provider: Provider, block_bytes: int | None
) -> None:
    """Keys the provider has and keys it lacks, each repeated (in one block and, with
    tiny blocks, across blocks): the first row counts, every repeat is reported with the
    row it repeats, exactly as the row planner does it."""
    from unittest import mock

    from sync_engine.columnar import _blocks

    lid = provider.list_id
    provider.emulator.seed(
        EmulatedContact(email=f"k{i}@example.com", email_list_ids={lid}, fields={"Name": "K"})
        for i in range(3)
    )
    rows = [
        ["k0@example.com", "K"],
        ["new1@example.com", "N1"],
        ["K0@example.com", "again"],  # a known key, written otherwise
        ["new1@example.com", "N1 again"],  # a new key
        ["k1@example.com", "Changed"],
        ["new2@example.com", "N2"],
        ["new2@example.com", "N2"],
        ["k1@example.com", "K"],
    ]
    config = config_for(
        tmp_path, provider, source=write_csv(tmp_path / "c.csv", ["email", "name"], rows)
    )
    reports = []
    for columnar in (True, False):
        with (
            capture_logs() as logs,
            mock.patch.object(_blocks, "BLOCK_BYTES", block_bytes or _blocks.BLOCK_BYTES),
        ):
            async with SyncEngine(config, clock=provider.clock, columnar=columnar) as engine:
                report = (await engine.plan()).to_dict()
        report.pop("stages")
        planned = [e["event"] for e in logs if e["event"] == "planned column-wise"]
        assert planned == (["planned column-wise"] if columnar else [])
        reports.append(report)
    assert reports[0] == reports[1]
    plan = reports[0]["plan"]
    assert (plan["to_insert"], plan["to_update"], plan["duplicates"]) == (2, 1, 4)
    repeated = [(p["key"], p["line"]) for p in reports[0]["problems"] if "duplicate" in p["reason"]]
    assert repeated == [
        ("k0@example.com", 4),
        ("new1@example.com", 5),
        ("new2@example.com", 8),
        ("k1@example.com", 9),
    ]
