"""End-to-end Altcraft syncs through the library, against the emulator over loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from altcraft_support import (
    DB_ID,
    RESOURCE_ID,
    TOKEN,
    Altcraft,
    altcraft_config,
    serve_altcraft,
    sync,
)
from conftest import write_csv

from sync_engine import FatalProviderError, Outcome
from sync_engine.emulator.altcraft import AltcraftOptions, ExportLayout, Subscription

PEOPLE = [
    ("Anna.Ivanova@Example.com", "8 (916) 123-45-01", "Анна", "Иванова", "Москва"),
    ("boris@example.com", "+7 916 123 45 02", "Борис", "", "Санкт-Петербург"),
    ("kate@example.org", "+44 20 7946 0958", "Kate", "Smith", "London"),
    ("li.wei@example.com", "", "李伟", "", "北京"),
    ("zoe@example.com", "+41 44 668 18 00", "Zoe\u0308", "Muller", "Zürich, CH"),
]
MAPPING = {
    "email": "email",
    "phone": "phone",
    "first_name": "first",
    "last_name": "last",
    "City": "city",
}


@pytest.fixture
async def altcraft() -> AsyncIterator[Altcraft]:
    async with serve_altcraft() as served:
        yield served


def people_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "people.csv", ["email", "phone", "first", "last", "city"], PEOPLE)


@pytest.mark.parametrize(
    ("export_format", "layout"),
    [
        ("csv", ExportLayout()),
        ("csv", ExportLayout(names="titled", order="reversed", delimiter=";")),
        ("json", ExportLayout()),
        ("json", ExportLayout(json_style="nested", names="titled")),
        ("json", ExportLayout(json_style="lines", order="reversed", rows_per_file=2)),
    ],
)
async def test_first_run_imports_and_second_run_plans_nothing(
    tmp_path: Path, export_format: str, layout: ExportLayout
) -> None:
    """Convergence over every export layout: fields are found by name, not position."""
    async with serve_altcraft(AltcraftOptions(export_layout=layout)) as altcraft:
        config = altcraft_config(
            tmp_path,
            altcraft,
            source=people_csv(tmp_path),
            mapping=MAPPING,
            sync={"default_region": "RU"},
            provider_settings={"export_format": export_format},
        )
        first = await sync(config, altcraft)
        assert first.outcome is Outcome.SUCCESS, first.render_text()
        assert (first.inserted, first.updated) == (len(PEOPLE), 0)
        anna = altcraft.emulator.profile(email="anna.ivanova@example.com")
        assert anna is not None
        assert anna.fields["phones"] == "+79161234501"
        assert anna.fields["_fname"] == "Анна"
        assert anna.fields["City"] == "Москва"
        zoe = altcraft.emulator.profile(email="zoe@example.com")
        assert zoe is not None
        assert zoe.fields["_fname"] == "Zoë"

        imports = altcraft.emulator.calls["profiles/import_batch"]
        second = await sync(config, altcraft)
        assert second.plan.changes == 0, second.render_text()
        assert second.plan.unchanged == len(PEOPLE)
        assert altcraft.emulator.calls["profiles/import_batch"] == imports


async def test_token_travels_in_the_header_or_body_never_in_the_url(
    tmp_path: Path, altcraft: Altcraft
) -> None:
    for token_in in ("header", "body"):
        config = altcraft_config(
            tmp_path,
            altcraft,
            source=people_csv(tmp_path),
            mapping=MAPPING,
            sync={"default_region": "RU"},
            provider_settings={"token_in": token_in},
        )
        report = await sync(config, altcraft)
        assert report.outcome is Outcome.SUCCESS, report.render_text()
        calls = list(altcraft.emulator.requests)
        assert {r.method for r in calls} >= {"profiles/get_all", "tasks/status"}
        assert all(r.auth == token_in and TOKEN not in r.query for r in calls)
        altcraft.emulator.requests.clear()


async def test_matching_by_a_custom_field_updates_the_same_profiles(
    tmp_path: Path, altcraft: Altcraft
) -> None:
    """key = "field": profiles are found by CRM_ID even when their email changed."""
    for n in range(3):
        altcraft.emulator.seed(
            DB_ID, {"CRM_ID": f"C{n}", "email": f"old{n}@example.com", "_fname": f"Old {n}"}
        )
    source = write_csv(
        tmp_path / "crm.csv",
        ["crm", "email", "name"],
        [
            ["C0", "new0@example.com", "New 0"],
            ["C1", "old1@example.com", "Old 1"],
            ["C9", "", "Nine"],
        ],
    )
    config = altcraft_config(
        tmp_path,
        altcraft,
        source=source,
        mapping={"CRM_ID": "crm", "email": "email", "first_name": "name"},
        sync={"key": "field", "key_field": "CRM_ID"},
    )
    report = await sync(config, altcraft)
    assert report.outcome is Outcome.SUCCESS, report.render_text()
    assert (report.inserted, report.updated) == (1, 1)
    sent = [r for r in altcraft.emulator.requests if r.method == "profiles/import_batch"]
    assert sent
    assert all(r.body["matching"] == "custom" and r.body["field_name"] == "CRM_ID" for r in sent)
    assert len(altcraft.emulator.profiles()) == 4  # C0 updated in place, C9 added
    c0 = altcraft.emulator.profile(CRM_ID="C0")
    assert c0 is not None
    assert (c0.email, c0.fields["_fname"]) == ("new0@example.com", "New 0")
    assert altcraft.emulator.profile(email="old0@example.com") is None
    assert (await sync(config, altcraft)).plan.changes == 0


async def test_a_batch_over_the_body_limit_is_split_into_several_requests(
    tmp_path: Path,
) -> None:
    """One plan batch of 60 profiles goes as several bodies, each within a 4 KB limit."""
    limit = 4000
    async with serve_altcraft(AltcraftOptions(max_body_bytes=limit)) as altcraft:
        rows = [[f"user{i}@example.com", f"Name {i} " + "x" * 150] for i in range(60)]
        config = altcraft_config(
            tmp_path,
            altcraft,
            source=write_csv(tmp_path / "c.csv", ["email", "name"], rows),
            provider_settings={"max_body_bytes": limit, "batch_size": 100},
        )
        report = await sync(config, altcraft)
        assert report.outcome is Outcome.SUCCESS, report.render_text()
        assert report.inserted == 60
        assert report.batches == 1
        sent = [r for r in altcraft.emulator.requests if r.method == "profiles/import_batch"]
        assert len(sent) >= 3
        assert all(0 < r.size <= limit for r in sent)
        assert sum(len(r.body["data"]) for r in sent) == 60
        assert len(altcraft.emulator.profiles()) == 60
        assert (await sync(config, altcraft)).plan.changes == 0


async def test_the_real_10_mb_default_splits_a_large_batch(tmp_path: Path) -> None:
    """9,000 profiles of ~1.3 KB (about 12 MB) in one plan batch: two bodies under 10 MB."""
    async with serve_altcraft() as altcraft:
        rows = [[f"user{i}@example.com", f"{i} " + "y" * 1280] for i in range(9000)]
        config = altcraft_config(
            tmp_path,
            altcraft,
            source=write_csv(tmp_path / "big.csv", ["email", "name"], rows),
            provider_settings={"batch_size": 10_000},
        )
        report = await sync(config, altcraft)
        assert report.outcome is Outcome.SUCCESS, report.render_text()
        assert (report.inserted, report.batches) == (9000, 1)
        sent = [r for r in altcraft.emulator.requests if r.method == "profiles/import_batch"]
        assert len(sent) == 2
        assert all(r.size <= 10 * 1024 * 1024 for r in sent)
        assert sum(r.size for r in sent) > 10 * 1024 * 1024


async def test_the_servers_body_limit_answer_rejects_the_batch(tmp_path: Path) -> None:
    """A server with a lower limit than configured answers the documented 400; no retry."""
    async with serve_altcraft(AltcraftOptions(max_body_bytes=1000)) as altcraft:
        rows = [[f"user{i}@example.com", "N" * 100] for i in range(20)]
        config = altcraft_config(
            tmp_path, altcraft, source=write_csv(tmp_path / "c.csv", ["email", "name"], rows)
        )
        report = await sync(config, altcraft)
        assert report.rejected == 20
        assert altcraft.emulator.calls["profiles/import_batch"] == 1
        codes = {p.code for p in report.problems.kept}
        assert codes == {"body_too_large"}


async def test_unsubscribed_and_suspended_profiles_are_never_updated(
    tmp_path: Path, altcraft: Altcraft
) -> None:
    """Consent on the synced resource locks a profile; others get a subscription."""
    for email, status in (
        ("gone@example.com", "unsubscribed"),
        ("paused@example.com", "suspended"),
    ):
        altcraft.emulator.seed(
            DB_ID,
            {"email": email, "_fname": "Old"},
            [Subscription("email", RESOURCE_ID, email, status)],
        )
    altcraft.emulator.seed(
        DB_ID,
        {"email": "other@example.com", "_fname": "Old"},
        [Subscription("email", RESOURCE_ID + 1, "other@example.com", "unsubscribed")],
    )
    source = write_csv(
        tmp_path / "c.csv",
        ["email", "name"],
        [
            [e, "New"]
            for e in (
                "gone@example.com",
                "paused@example.com",
                "other@example.com",
                "fresh@example.com",
            )
        ],
    )
    config = altcraft_config(
        tmp_path,
        altcraft,
        source=source,
        provider_settings={"resource_id": RESOURCE_ID, "subscribe": ["email"]},
    )
    report = await sync(config, altcraft)
    assert report.outcome is Outcome.SUCCESS, report.render_text()
    assert (report.inserted, report.updated, report.plan.kept_by_consent) == (1, 1, 2)
    for email, status in (
        ("gone@example.com", "unsubscribed"),
        ("paused@example.com", "suspended"),
    ):
        profile = altcraft.emulator.profile(email=email)
        assert profile is not None
        assert profile.fields["_fname"] == "Old"
        assert [s.status for s in profile.subscriptions] == [status]
    other = altcraft.emulator.profile(email="other@example.com")
    assert other is not None
    assert other.fields["_fname"] == "New"
    sub = other.subscription("email", RESOURCE_ID)
    assert sub is not None
    assert sub.status == "subscribed"
    unrelated = other.subscription("email", RESOURCE_ID + 1)
    assert unrelated is not None
    assert unrelated.status == "unsubscribed"
    fresh = altcraft.emulator.profile(email="fresh@example.com")
    assert fresh is not None
    assert [(s.resource_id, s.status) for s in fresh.subscriptions] == [(RESOURCE_ID, "subscribed")]
    again = await sync(config, altcraft)
    assert again.plan.changes == 0


async def test_mirror_deletes_one_profile_per_call_under_the_guard(
    tmp_path: Path, altcraft: Altcraft
) -> None:
    for i in range(30):
        altcraft.emulator.seed(DB_ID, {"email": f"u{i}@example.com", "_fname": f"U{i}"})
    rows = [[f"u{i}@example.com", f"U{i}"] for i in range(28)]  # u28, u29 are gone locally
    config = altcraft_config(
        tmp_path,
        altcraft,
        source=write_csv(tmp_path / "c.csv", ["email", "name"], rows),
        sync={"mode": "mirror", "removal": "delete"},
    )
    report = await sync(config, altcraft)
    assert report.outcome is Outcome.SUCCESS, report.render_text()
    assert report.removed == 2
    assert altcraft.emulator.calls["profiles/delete"] == 2
    assert altcraft.emulator.profile(email="u29@example.com") is None
    assert len(altcraft.emulator.profiles()) == 28
    guarded = altcraft_config(
        tmp_path,
        altcraft,
        source=write_csv(tmp_path / "c.csv", ["email", "name"], rows[:10]),
        sync={"mode": "mirror", "removal": "delete"},
    )
    from sync_engine import RunRefusedError

    with pytest.raises(RunRefusedError, match="deletion guard"):
        await sync(guarded, altcraft)
    assert len(altcraft.emulator.profiles()) == 28


async def test_tariff_limit_stops_the_run_as_such(tmp_path: Path) -> None:
    async with serve_altcraft(AltcraftOptions(profile_limit=3)) as altcraft:
        config = altcraft_config(
            tmp_path,
            altcraft,
            source=people_csv(tmp_path),
            mapping=MAPPING,
            sync={"default_region": "RU"},
        )
        with pytest.raises(FatalProviderError, match="tariff limit") as caught:
            await sync(config, altcraft)
        assert caught.value.code == "tariff_limit"
        assert TOKEN not in str(caught.value)


async def test_segment_is_the_read_back_source(tmp_path: Path, altcraft: Altcraft) -> None:
    """With segment_id, the export reads the segment: profiles outside it look absent."""
    altcraft.emulator.seed(DB_ID, {"email": "in@example.com", "_fname": "In", "vip": "1"})
    altcraft.emulator.seed(DB_ID, {"email": "out@example.com", "_fname": "Out"})
    segment = altcraft.emulator.add_segment(DB_ID, lambda p: p.fields.get("vip") == "1")
    config = altcraft_config(
        tmp_path,
        altcraft,
        source=write_csv(tmp_path / "c.csv", ["email", "name"], [["in@example.com", "In"]]),
        provider_settings={"segment_id": segment},
    )
    report = await sync(config, altcraft, dry_run=True)
    assert (report.plan.remote_total, report.plan.unchanged) == (1, 1)
    exports = [r for r in altcraft.emulator.requests if r.method == "profiles/get_all"]
    assert exports[-1].body["source_type"] == "segment"
    assert orjson.dumps(exports[-1].body["source_id"]) == str(segment).encode()
