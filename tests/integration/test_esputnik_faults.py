"""eSputnik under fire: every fault kind at every call site is ridden out, a wrong
configured rate is learnt instead of stormed, and a read-back that cannot be completed
stops the run before any change (never a plan from part of the remote side)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import cli, write_csv
from esputnik_support import GROUP, Served, esputnik_config, serve_esputnik, sync

from sync_engine import ExportError, Outcome
from sync_engine.emulator import (
    SURVIVABLE_KINDS,
    EmulatedESputnikContact,
    ESputnikOptions,
    FaultKind,
)
from sync_engine.emulator._faults import fits
from sync_engine.emulator.esputnik import IMPORT_ERROR, ESputnikEmulator

SITES = ("contactsBulkUpdate", "getImportSessionStatus", "getGroupContacts", "searchGroups")
CASES = [(kind, site) for kind in SURVIVABLE_KINDS for site in SITES if fits(kind, site)]
# A hang outlasts the client's 0.5 s timeout but not the server's shutdown grace.
OPTIONS = ESputnikOptions(import_delay=5.0, fault_hang_seconds=1.0, fault_retry_after=7.0)
SETTINGS: dict[str, Any] = {"timeout": 0.5, "batch_size": 25, "page_size": 20}


def name(i: int) -> str:
    """A first name for row ``i`` (eSputnik refuses digits in names)."""
    return "Name " + "".join(chr(65 + int(digit)) for digit in str(i))


TRUTH = {f"f{i}@example.com": name(i) for i in range(120)}


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async with serve_esputnik(OPTIONS) as running:
        yield running


def seed(served: Served) -> list[str]:
    """A quarter of the truth right, a quarter stale, and 5 members to remove; returns those."""
    contacts = []
    for i, (email, name) in enumerate(TRUTH.items()):
        if i % 4 < 2:
            first = name if i % 4 == 0 else "stale"
            values = {"email": email, "firstName": first}
            contacts.append(EmulatedESputnikContact(1000 + i, values=values, groups={GROUP}))
    extra = [f"gone{i}@example.com" for i in range(5)]
    for i, email in enumerate(extra):
        contacts.append(EmulatedESputnikContact(2000 + i, values={"email": email}, groups={GROUP}))
    served.emulator.seed(contacts)
    return extra


def members(emulator: ESputnikEmulator) -> dict[str, str]:
    """The synced group as the provider holds it: email -> firstName."""
    return {
        c.values["email"]: c.values.get("firstName", "")
        for c in emulator.contacts()
        if GROUP in c.groups and c.email is not None
    }


def mirror_config(tmp_path: Path, served: Served, **settings: Any) -> Any:
    source = write_csv(tmp_path / "c.csv", ["email", "name"], TRUTH.items())
    return esputnik_config(
        tmp_path,
        served,
        source=source,
        sync={"mode": "mirror"},
        provider_settings={**SETTINGS, **settings},
    )


@pytest.mark.parametrize(("kind", "site"), CASES)
async def test_each_fault_at_each_site_is_survived(
    tmp_path: Path, served: Served, kind: FaultKind, site: str
) -> None:
    """Two firings of any survivable fault, wherever it fits, still end in the local truth."""
    seed(served)
    served.emulator.faults.add(kind=kind, method=site, count=2)
    report = await sync(mirror_config(tmp_path, served), served)
    assert served.emulator.faults.injected[kind] >= 1
    assert report.outcome is Outcome.SUCCESS, report.render_text()
    assert (report.inserted, report.updated, report.removed) == (60, 30, 5)
    assert members(served.emulator) == TRUTH


async def test_an_import_session_in_error_is_sent_again_within_the_run(
    tmp_path: Path, served: Served
) -> None:
    """An upsert by key is safe to resend: one failed session costs a resend, not a run."""
    seed(served)
    served.emulator.arm_faults(f"{IMPORT_ERROR}*1")
    report = await sync(mirror_config(tmp_path, served), served)
    assert report.outcome is Outcome.SUCCESS, report.render_text()
    assert served.emulator.faults.injected[IMPORT_ERROR] == 1
    assert report.retries["import session"] == 1
    assert members(served.emulator) == TRUTH


@pytest.mark.parametrize(
    "kind", ["http_503", "connection_reset", "malformed_json", "truncated_json", "lost_answer"]
)
@pytest.mark.parametrize("site", ["getGroupContacts", "searchContacts"])
async def test_a_page_lost_every_time_stops_the_run_before_any_change(
    tmp_path: Path, served: Served, kind: FaultKind, site: str
) -> None:
    """The first page reads, a later one fails on every retry: the run stops with nothing
    sent, so no member is removed on a partial picture (without a group the read-back is
    the contact search, and removal deletes)."""
    extra = seed(served)
    before = members(served.emulator)
    # The key check's one-row search comes first, then the first page; later pages fail.
    after = 2 if site == "searchContacts" else 1
    served.emulator.faults.add(kind=kind, method=site, probability=1.0, after=after)
    settings: dict[str, Any] = {"max_attempts": 3}
    sync_table: dict[str, Any] = {"mode": "mirror"}
    if site == "searchContacts":
        settings["group"] = None
        sync_table["removal"] = "delete"
    source = write_csv(tmp_path / "c.csv", ["email", "name"], TRUTH.items())
    config = esputnik_config(
        tmp_path,
        served,
        source=source,
        sync=sync_table,
        provider_settings={**SETTINGS, **settings},
    )
    with pytest.raises(ExportError, match="no contact is removed on a partial picture"):
        await sync(config, served)
    assert served.emulator.calls[site] >= after + 3
    assert served.emulator.calls["contactsBulkUpdate"] == 0
    assert served.emulator.calls["deleteContact_1"] == 0
    assert members(served.emulator) == before
    assert set(extra) <= set(before)


@pytest.mark.parametrize("group", [GROUP, None])
async def test_a_wrong_configured_limit_is_learnt_without_a_storm_of_429s(
    tmp_path: Path, group: str | None
) -> None:
    """The account allows 20 calls/s and 5 searches/s, the config says 200 and 50: the run
    slows to what is accepted and converges; 429s stay a small share of the calls, and
    the report shows the slowdowns and the rate achieved (with a group the read-back is
    its member list; without, the contact search, and removal deletes one by one)."""
    options = ESputnikOptions(import_delay=5.0, rate_limit=20, search_rate_limit=5)
    async with serve_esputnik(options) as served:
        extra = seed(served)
        truth = {**TRUTH, **{f"n{i}@example.com": name(i) for i in range(400)}}
        source = write_csv(tmp_path / "c.csv", ["email", "name"], truth.items())
        sync_table = {"mode": "mirror", "removal": "exclude" if group else "delete"}
        config = esputnik_config(
            tmp_path,
            served,
            source=source,
            sync=sync_table,
            mapping={"email": "email", "firstName": "name"} if group else {"email": "email"},
            provider_settings={
                **SETTINGS,
                "group": group,
                "timeout": 30,
                "page_size": 10,
                "batch_size": 10,
                "concurrency": 32,
                "read_concurrency": 16,
            },
        )
        report = await sync(config, served)
        assert report.outcome is Outcome.SUCCESS, report.render_text()
        refused = served.emulator.rate_limited
        made = sum(served.emulator.calls.values())
        by_call = Counter(e.operation for e in served.emulator.exchanges if e.status == 429)
        print(f"calls {made}, refused {refused} {dict(by_call)}, rates {report.rates}")
        assert refused <= made // 5
        rates = report.rates
        assert rates["configured"] == 200
        assert rates["search_configured"] == 50
        assert rates["slowdowns"] + rates["search_slowdowns"] >= 1
        assert rates["search_lowest"] < 50 or rates["lowest"] < 200
        assert rates["effective"] < rates["configured"]
        assert "calls/s effective" in report.render_text()
        if group is not None:
            assert members(served.emulator) == truth
        else:
            emails = {c.email for c in served.emulator.contacts()}
            assert emails == set(truth)
            assert not set(extra) & emails
        again = await sync(config, served)
        assert again.plan.changes == 0


def test_fault_specs_take_the_shared_kinds_and_import_error() -> None:
    """One spec arms both; a bad one arms nothing."""
    emulator = ESputnikEmulator(api_key="k" * 8)
    emulator.arm_faults("hang@contactsBulkUpdate*2, import_error*3, import_error=0.25")
    assert [(r.kind, r.method, r.remaining) for r in emulator.faults.rules] == [
        ("hang", "contactsBulkUpdate", 2)
    ]
    assert (emulator.failing_sessions, emulator.session_error_rate) == (3, 0.25)
    for bad in ("import_error=2", "import_error@contactsBulkUpdate*1", "nonsense=0.1"):
        with pytest.raises(ValueError, match=r"fault|unknown"):
            emulator.arm_faults(f"http_503*1,{bad}")
    assert len(emulator.faults.rules) == 1
    options = ESputnikOptions(faults="any=0.5,import_error*1")
    assert ESputnikEmulator(api_key="k" * 8, options=options).failing_sessions == 1


async def test_emulate_esputnik_refuses_a_bad_fault_spec() -> None:
    code, _, err = await cli("emulate", "esputnik", "--faults", "meltdown@everything")
    assert code != 0
    assert "--faults 'meltdown@everything'" in err
