"""End-to-end eSputnik syncs through the library against the emulator over loopback HTTP.

Every test ends by validating all the requests the engine sent, and all the answers the
emulator gave, against the vendor's OpenAPI file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
import anyio
import orjson
import pytest
from conftest import API_KEY, wait_until, write_csv
from esputnik_support import (
    GROUP,
    Served,
    esputnik_config,
    posted_bodies,
    serve_esputnik,
    sync,
    validate_exchanges,
)

from sync_engine import Outcome, SyncEngine
from sync_engine.emulator import EmulatedESputnikContact
from sync_engine.providers.esputnik import IMPORT_ATTEMPTS

PEOPLE = [
    ("Anna.Ivanova@Example.com", "+7 916 123 45 01", "Анна", "Иванова", "VIP"),
    ("boris@example.com", "+7 916 123 45 02", "Борис", "", ""),
    ("kate@example.org", "+44 20 7946 0958", "Kate", "Smith", "gold"),
]
MAPPING = {
    "email": "email",
    "phone": "phone",
    "firstName": "first",
    "lastName": "last",
    "field_77": "tier",
}
HEADER = ["email", "phone", "first", "last", "tier"]


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async with serve_esputnik() as running:
        yield running


def people_csv(tmp_path: Path, rows: Sequence[Sequence[str]] = PEOPLE) -> Path:
    return write_csv(tmp_path / "people.csv", HEADER, rows)


async def test_first_sync_inserts_everything_and_second_plans_nothing(
    tmp_path: Path, served: Served
) -> None:
    """Convergence: normalised emails and phones, custom field by id, the synced group."""
    config = esputnik_config(tmp_path, served, source=people_csv(tmp_path), mapping=MAPPING)
    first = await sync(config, served)
    assert first.outcome is Outcome.SUCCESS, first.render_text()
    assert (first.inserted, first.updated, first.removed) == (3, 0, 0)
    anna = served.emulator.contact(email="anna.ivanova@example.com")
    assert anna is not None
    assert anna.values["sms"] == "79161234501"
    assert anna.values["firstName"] == "Анна"
    assert anna.fields == {77: "VIP"}
    assert anna.groups == {GROUP}
    boris = served.emulator.contact(email="boris@example.com")
    assert boris is not None
    assert "lastName" not in boris.values
    assert boris.fields == {}
    (body,) = posted_bodies(served.emulator)
    assert body["dedupeOn"] == "email"
    assert body["groupNames"] == [GROUP]
    assert "email" not in body["contactFields"]  # the dedupe field is never updated
    assert body["customFieldsIDs"] == [77]
    assert body["restoreDeleted"] is False

    second = await sync(config, served)
    assert second.outcome is Outcome.SUCCESS, second.render_text()
    assert second.plan.to_insert + second.plan.to_update + second.plan.to_remove == 0
    assert second.plan.unchanged == 3
    assert len(posted_bodies(served.emulator)) == 1
    assert validate_exchanges(served.emulator.exchanges) >= 6


async def test_updates_apply_and_mirror_takes_the_missing_contact_out_of_the_group(
    tmp_path: Path, served: Served
) -> None:
    """An emptied field becomes null; an unsynced field is left alone; removal leaves the group."""
    served.emulator.seed(
        [
            EmulatedESputnikContact(
                1,
                values={"email": "anna.ivanova@example.com", "firstName": "Old", "timeZone": "UTC"},
                fields={77: "bronze", 99: "untouched"},
                groups={GROUP, "Newsletter"},
            ),
            EmulatedESputnikContact(2, values={"email": "gone@example.com"}, groups={GROUP}),
            EmulatedESputnikContact(3, values={"email": "outsider@example.com"}),
        ]
    )
    rows = [("anna.ivanova@example.com", "", "Анна", "", ""), *PEOPLE[1:]]
    config = esputnik_config(
        tmp_path,
        served,
        source=people_csv(tmp_path, rows),
        mapping=MAPPING,
        sync={"mode": "mirror", "max_delete_share": 0.5},
        provider_settings={"page_size": 1, "read_concurrency": 2},
    )
    report = await sync(config, served)
    assert report.outcome is Outcome.SUCCESS, report.render_text()
    assert (report.inserted, report.updated, report.removed) == (2, 1, 1)
    anna = served.emulator.contact(email="anna.ivanova@example.com")
    assert anna is not None
    assert anna.values["firstName"] == "Анна"
    assert anna.values["timeZone"] == "UTC"  # not synced: never sent, never nulled
    assert anna.fields == {99: "untouched"}  # field 77 sent empty: null
    assert anna.groups == {GROUP, "Newsletter"}
    gone = served.emulator.contact(email="gone@example.com")
    assert gone is not None
    assert gone.groups == set()
    outsider = served.emulator.contact(email="outsider@example.com")
    assert outsider is not None  # never in the group: never the sync's to remove
    pages = [e for e in served.emulator.exchanges if e.operation == "getGroupContacts"]
    assert sorted(dict(e.query)["startindex"] for e in pages) == ["1", "2"]  # one per member

    again = await sync(config, served)
    assert again.plan.to_insert + again.plan.to_update + again.plan.to_remove == 0
    validate_exchanges(served.emulator.exchanges)


async def test_mirror_delete_removes_the_contact_one_call_each(
    tmp_path: Path, served: Served
) -> None:
    """removal = "delete": looked up by email, then DELETE /api/v1/contact/{id}."""
    served.emulator.seed(
        [
            EmulatedESputnikContact(5, values={"email": f"gone{i}@example.com"}, groups={GROUP})
            for i in range(1)
        ]
        + [
            EmulatedESputnikContact(10 + i, values={"email": f"old{i}@example.com"}, groups={GROUP})
            for i in range(3)
        ]
    )
    config = esputnik_config(
        tmp_path,
        served,
        source=people_csv(tmp_path),
        mapping=MAPPING,
        sync={"mode": "mirror", "removal": "delete", "max_delete_share": 1.0},
    )
    report = await sync(config, served)
    assert report.outcome is Outcome.SUCCESS, report.render_text()
    assert report.removed == 4
    emails = {c.email for c in served.emulator.contacts()}
    assert emails == {"anna.ivanova@example.com", "boris@example.com", "kate@example.org"}
    deletes = [e for e in served.emulator.exchanges if e.operation == "deleteContact_1"]
    assert len(deletes) == 4
    assert all(dict(e.query) == {"erase": "false"} for e in deletes)
    validate_exchanges(served.emulator.exchanges)


async def test_7001_changes_go_out_in_three_calls_and_the_run_waits_for_each_session(
    tmp_path: Path, served: Served
) -> None:
    rows = [(f"user{i}@example.com", "", "Name", "", "") for i in range(7001)]
    config = esputnik_config(tmp_path, served, source=people_csv(tmp_path, rows), mapping=MAPPING)
    report = await sync(config, served)
    assert report.outcome is Outcome.SUCCESS, report.render_text()
    assert report.inserted == 7001
    bodies = posted_bodies(served.emulator)
    assert sorted(len(b["contacts"]) for b in bodies) == [1001, 3000, 3000]
    sessions = served.emulator.account.sessions.values()
    assert len(sessions) == 3
    # Reported done only after every session finished, each polled until FINISHED.
    assert all(s.status == "FINISHED" for s in sessions)
    polls = [e for e in served.emulator.exchanges if e.operation == "getImportSessionStatus"]
    assert {e.path.rsplit("/", 1)[1] for e in polls} == {s.id for s in sessions}
    assert len(served.emulator.contacts()) == 7001
    validate_exchanges(served.emulator.exchanges)


@pytest.mark.parametrize("bad", [1, 2])
async def test_bad_rows_come_back_as_rejects_with_reasons(
    tmp_path: Path, served: Served, bad: int
) -> None:
    """failedContacts (an object for one, an array for several) become per-row rejects."""
    rows = [
        *PEOPLE,
        ("r2d2@example.com", "", "R2D2", "", ""),
        ("c3po@example.com", "", "C3PO", "", ""),
    ]
    config = esputnik_config(
        tmp_path, served, source=people_csv(tmp_path, rows[: 3 + bad]), mapping=MAPPING
    )
    report = await sync(config, served)
    assert (report.inserted, report.rejected) == (3, bad), report.render_text()
    reasons = {p.key: p.reason for p in report.problems.kept}
    assert reasons["r2d2@example.com"] == "firstName: numbers are not allowed"
    assert served.emulator.contact(email="r2d2@example.com") is None
    answer = next(e for e in served.emulator.exchanges if e.operation == "contactsBulkUpdate")
    failed = orjson.loads(answer.response_body)["failedContacts"]
    assert isinstance(failed, dict if bad == 1 else list)
    validate_exchanges(served.emulator.exchanges)


async def test_a_failed_import_session_leaves_its_rows_transient(
    tmp_path: Path, served: Served
) -> None:
    """Import sessions ending in ERROR apply nothing; once every resend's session has
    failed too (IMPORT_ATTEMPTS in all) the rows are failed, not rejected."""
    served.emulator.failing_sessions = IMPORT_ATTEMPTS
    config = esputnik_config(tmp_path, served, source=people_csv(tmp_path), mapping=MAPPING)
    report = await sync(config, served)
    assert (report.inserted, report.failed, report.rejected) == (0, 3, 0), report.render_text()
    assert all("import session" in p.reason for p in report.problems.kept)
    assert served.emulator.calls["contactsBulkUpdate"] == IMPORT_ATTEMPTS
    again = await sync(config, served)
    assert again.inserted == 3
    validate_exchanges(served.emulator.exchanges)


async def test_a_429_storm_is_survived(tmp_path: Path, served: Served) -> None:
    """429s on every kind of call, over and over, are retried with backoff until through."""
    for operation in ("searchContacts", "getGroupContacts", "contactsBulkUpdate", "searchGroups"):
        served.emulator.faults.add(method=operation, kind="rate_limited", count=3)
    served.emulator.faults.add(method="getImportSessionStatus", kind="http_503", count=2)
    served.emulator.seed(
        [EmulatedESputnikContact(1, values={"email": "boris@example.com"}, groups={GROUP})]
    )
    config = esputnik_config(
        tmp_path,
        served,
        source=people_csv(tmp_path),
        mapping=MAPPING,
        provider_settings={"max_attempts": 6},
    )
    report = await sync(config, served)
    assert report.outcome is Outcome.SUCCESS, report.render_text()
    assert (report.inserted, report.updated) == (2, 1)
    statuses = [e.status for e in served.emulator.exchanges]
    assert statuses.count(429) == 12
    assert statuses.count(503) == 2
    validate_exchanges(served.emulator.exchanges)


async def test_the_emulator_enforces_200_per_second(served: Served) -> None:
    """Over the limit within one second of emulator time: 429, and Basic auth is checked first."""
    async with aiohttp.ClientSession() as session:
        auth = aiohttp.BasicAuth("anyone", API_KEY)
        statuses = []
        for _ in range(201):
            async with session.get(f"{served.base_url}/api/v1/groups", auth=auth) as response:
                statuses.append(response.status)
        async with session.get(
            f"{served.base_url}/api/v1/groups", auth=aiohttp.BasicAuth("anyone", "wrong")
        ) as response:
            assert response.status == 401
    assert statuses.count(200) == 200
    assert statuses[-1] == 429


async def test_a_run_stopped_mid_import_settles_the_session_on_the_next_run(
    tmp_path: Path, served: Served
) -> None:
    """The journal holds the session id: the next run polls it instead of resending."""
    served.emulator.hold_sessions = True
    config = esputnik_config(
        tmp_path,
        served,
        source=people_csv(tmp_path, [*PEOPLE, ("r2d2@example.com", "", "R2D2", "", "")]),
        mapping=MAPPING,
        journal={"drain_timeout": 0},
        provider_settings={"import_timeout": 1e9},
    )
    async with anyio.create_task_group() as group:

        async def run() -> None:
            async with SyncEngine(config, clock=served.clock) as engine:
                await engine.run()

        group.start_soon(run)
        # Polling starts only after the session id is journaled: stop the run then.
        await wait_until(lambda: served.emulator.calls["getImportSessionStatus"] >= 1)
        group.cancel_scope.cancel()
    (session,) = served.emulator.account.sessions.values()
    assert session.status == "STARTED"
    assert served.emulator.contacts() == []

    served.emulator.release_sessions()
    report = await sync(config, served)
    assert report.attempt == 2, report.render_text()
    assert report.inserted == 3
    # The failure came in the answer to the POST; it was journaled with the session id.
    assert report.rejected == 1
    assert [p.key for p in report.problems.kept] == ["r2d2@example.com"]
    assert len(posted_bodies(served.emulator)) == 1  # settled, not resent
    assert len(served.emulator.contacts()) == 3
    validate_exchanges(served.emulator.exchanges)


async def test_external_id_key_updates_by_id_and_deletes_by_id(
    tmp_path: Path, served: Served
) -> None:
    """key = externalCustomerId: an email change is an update; removal deletes by that id."""
    served.emulator.seed(
        [
            EmulatedESputnikContact(
                1, values={"externalCustomerId": "C-1", "email": "old@example.com"}, groups={GROUP}
            ),
            EmulatedESputnikContact(
                2, values={"externalCustomerId": "C-2", "email": "gone@example.com"}, groups={GROUP}
            ),
        ]
    )
    source = write_csv(tmp_path / "crm.csv", ["id", "email"], [["C-1", "new@example.com"]])
    config = esputnik_config(
        tmp_path,
        served,
        source=source,
        mapping={"externalCustomerId": "id", "email": "email"},
        sync={
            "key": "field",
            "key_field": "externalCustomerId",
            "mode": "mirror",
            "removal": "delete",
            "max_delete_share": 1.0,
        },
        provider_settings={"erase": True},
    )
    report = await sync(config, served)
    assert (report.updated, report.removed) == (1, 1), report.render_text()
    (only,) = served.emulator.contacts()
    assert (only.id, only.email) == (1, "new@example.com")
    (body,) = posted_bodies(served.emulator)
    assert (body["dedupeOn"], body["contactFields"]) == ("externalCustomerId", ["email"])
    (delete,) = [e for e in served.emulator.exchanges if e.operation == "deleteContact"]
    assert dict(delete.query) == {"externalCustomerId": "C-2", "erase": "true"}
    again = await sync(config, served)
    assert again.plan.to_insert + again.plan.to_update + again.plan.to_remove == 0
    validate_exchanges(served.emulator.exchanges)


async def test_an_unsubscribed_contact_stays_unsubscribed_through_updates(
    tmp_path: Path, served: Served
) -> None:
    """Consent is eSputnik's: the sync updates the profile but never touches the
    unsubscribed list (it never calls the endpoints that take an address off it)."""
    served.emulator.seed(
        [
            EmulatedESputnikContact(
                1, values={"email": "kate@example.org", "firstName": "Old"}, groups={GROUP}
            )
        ]
    )
    async with (
        aiohttp.ClientSession(auth=aiohttp.BasicAuth("user", API_KEY)) as session,
        session.post(
            f"{served.base_url}/api/v1/emails/unsubscribed/add",
            json={"emails": ["Kate@Example.org"]},
        ) as answer,
    ):
        assert answer.status == 200
    config = esputnik_config(tmp_path, served, source=people_csv(tmp_path), mapping=MAPPING)
    for _ in range(2):  # an update, then a run that finds nothing to change
        report = await sync(config, served, full=True)
        assert report.outcome is Outcome.SUCCESS, report.render_text()
    kate = served.emulator.contact(email="kate@example.org")
    assert kate is not None
    assert kate.values["firstName"] == "Kate"
    assert served.emulator.account.unsubscribed == {"kate@example.org"}
    operations = {e.operation for e in served.emulator.exchanges}
    assert "deleteFromUnsubscribed" not in operations
    assert "subscribeContact" not in operations
    validate_exchanges(served.emulator.exchanges)
