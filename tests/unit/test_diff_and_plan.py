"""The pure diff and the spooled plan: verdicts, additive sets, batches, deletion guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync_engine import RunRefusedError
from sync_engine.contact import Contact, RemoteContact
from sync_engine.diff import Differ, Verdict
from sync_engine.plan import (
    BatchKind,
    Change,
    ChangeKind,
    DeletionGuard,
    Plan,
    PlanSpool,
    PlanSummary,
)
from sync_engine.records import RowOrigin

FIELDS = ("email", "Name", "tags")


def local(key: str, name: str = "A", tags: frozenset[str] = frozenset(), line: int = 2) -> Contact:
    return Contact(key, {"email": key, "Name": name, "tags": tags}, RowOrigin("f.csv", line))


def remote(
    key: str, name: str = "A", tags: frozenset[str] = frozenset(), locked: str | None = None
) -> RemoteContact:
    return RemoteContact(key, {"email": key, "Name": name, "tags": tags}, locked)


def differ(
    *remotes: RemoteContact, additive: frozenset[str] = frozenset({"tags"}), full: bool = False
) -> Differ:
    d = Differ(fields=FIELDS, additive=additive, full=full)
    for r in remotes:
        d.add_remote(r)
    return d


def test_verdicts() -> None:
    d = differ(
        remote("a@x.com"),
        remote("b@x.com", name="Old"),
        remote("c@x.com", locked="email_status=unsubscribed"),
    )
    assert d.judge(local("a@x.com", line=2)).verdict is Verdict.UNCHANGED
    assert d.judge(local("b@x.com", line=3)).verdict is Verdict.UPDATE
    kept = d.judge(local("c@x.com", name="New", line=4))
    assert kept.verdict is Verdict.KEPT
    assert kept.locked == "email_status=unsubscribed"
    assert d.judge(local("new@x.com", line=5)).verdict is Verdict.INSERT
    duplicate = d.judge(local("a@x.com", line=9))
    assert duplicate.verdict is Verdict.DUPLICATE
    assert duplicate.first_line == 2


def test_additive_sets_only_send_what_the_provider_lacks() -> None:
    """Without overwrite, remote extra tags are fine; a missing local tag needs an update."""
    d = differ(
        remote("a@x.com", tags=frozenset({"vip", "old"})),
        remote("b@x.com", tags=frozenset({"vip"})),
    )
    assert d.judge(local("a@x.com", tags=frozenset({"vip"}))).verdict is Verdict.UNCHANGED
    assert (
        d.judge(local("b@x.com", tags=frozenset({"vip", "new"}), line=3)).verdict is Verdict.UPDATE
    )


def test_exact_sets_compare_as_sets() -> None:
    d = differ(remote("a@x.com", tags=frozenset({"x", "y"})), additive=frozenset())
    assert d.judge(local("a@x.com", tags=frozenset({"y", "x"}))).verdict is Verdict.UNCHANGED
    d = differ(remote("a@x.com", tags=frozenset({"x", "y"})), additive=frozenset())
    assert d.judge(local("a@x.com", tags=frozenset({"x"}))).verdict is Verdict.UPDATE


def test_full_resync_updates_equal_contacts_but_not_locked_ones() -> None:
    d = differ(remote("a@x.com"), remote("b@x.com", locked="email_status=blocked"), full=True)
    assert d.judge(local("a@x.com")).verdict is Verdict.UPDATE
    assert d.judge(local("b@x.com", line=3)).verdict is Verdict.KEPT


def test_unseen_excludes_seen_and_protected_keys() -> None:
    d = differ(
        remote("a@x.com"), remote("b@x.com"), remote("c@x.com", locked="x"), remote("d@x.com")
    )
    d.judge(local("a@x.com"))
    d.protect("d@x.com")
    assert sorted(d.unseen()) == [("b@x.com", None), ("c@x.com", "x")]


def test_spool_round_trip_and_homogeneous_batches(tmp_path: Path) -> None:
    spool = PlanSpool(tmp_path / "plan.jsonl")
    for i in range(7):
        spool.write(
            Change(
                ChangeKind.INSERT,
                f"u{i}@x.com",
                {"email": f"u{i}@x.com", "tags": frozenset({"t"})},
                RowOrigin("f", i),
            )
        )
    for i in range(3):
        spool.write(Change(ChangeKind.REMOVE, f"r{i}@x.com", {"email": f"r{i}@x.com"}))
    summary = PlanSummary(to_insert=7, to_remove=3)
    plan = Plan(summary=summary, spool=spool)
    batches = list(plan.batches(3))
    assert [(b.number, b.kind, len(b)) for b in batches] == [
        (1, BatchKind.UPSERT, 3),
        (2, BatchKind.UPSERT, 3),
        (3, BatchKind.UPSERT, 1),
        (4, BatchKind.REMOVE, 3),
    ]
    assert plan.batch_count(3) == 4
    first = batches[0].changes[0]
    assert first.fields["tags"] == frozenset({"t"})
    assert first.origin == RowOrigin("f", 0)


@pytest.mark.parametrize(
    ("remove", "remote_total", "allow", "refused"),
    [
        (10, 100, None, False),
        (11, 100, None, True),
        (11, 100, 11, False),
        (11, 100, 10, True),
        (0, 0, None, False),
    ],
)
def test_deletion_guard_share(
    remove: int, remote_total: int, allow: int | None, refused: bool
) -> None:
    summary = PlanSummary(local_rows=5, remote_total=remote_total, to_remove=remove)
    guard = DeletionGuard(max_share=0.10)
    if refused:
        with pytest.raises(RunRefusedError, match=f"--allow-deletes {remove}"):
            guard.check(summary, allow_deletes=allow)
    else:
        guard.check(summary, allow_deletes=allow)


def test_deletion_guard_count_and_empty_source() -> None:
    with pytest.raises(RunRefusedError, match="or 2 contacts"):
        DeletionGuard(max_share=1.0, max_count=2).check(
            PlanSummary(local_rows=9, remote_total=10, to_remove=3)
        )
    with pytest.raises(RunRefusedError, match="no valid contacts"):
        DeletionGuard().check(
            PlanSummary(local_rows=0, remote_total=10, to_remove=10), allow_deletes=10
        )


def test_a_bad_list_id_with_an_implicit_list_is_a_row_problem_not_a_crash() -> None:
    """The synced list is added to a mapped list column only when that column parsed."""
    from sync_engine.contact import ContactBuilder
    from sync_engine.normalise import Normaliser
    from sync_engine.providers.unisender import UNISENDER_SCHEMA
    from sync_engine.records import RowProblem, SourceRow

    builder = ContactBuilder(
        mapping={"email": "email", "email_list_ids": "lists"},
        schema=UNISENDER_SCHEMA,
        normaliser=Normaliser(),
        key="email",
        implicit_list_id=1,
    )
    built = builder.local(SourceRow(RowOrigin("f.csv", 2), {"email": "a@x.com", "lists": "x"}))
    assert isinstance(built, RowProblem)
    assert (built.field, built.key) == ("lists", "a@x.com")
    assert "list id 'x' is not a number" in built.reason


def test_a_field_key_identifies_contacts_on_both_sides() -> None:
    """``key = "field"``: the key is the field's normalised text; a blank one names its column."""
    from sync_engine.contact import ContactBuilder, RemoteRecord
    from sync_engine.normalise import Normaliser
    from sync_engine.records import RowProblem, SourceRow
    from sync_engine.schema import FieldKind, FieldSchema

    builder = ContactBuilder(
        mapping={"email": "mail", "external_id": "id"},
        schema=FieldSchema(system={"email": FieldKind.EMAIL}),
        normaliser=Normaliser(),
        key="field",
        key_field="external_id",
    )
    local = builder.local(SourceRow(RowOrigin("f.csv", 2), {"mail": "A@X.com", "id": " c-1 "}))
    assert not isinstance(local, RowProblem)
    assert local.key == "c-1"
    remote = builder.remote(
        RemoteRecord(RowOrigin("export", 1), {"email": "other@x.com", "external_id": "c-1"})
    )
    assert not isinstance(remote, RowProblem)
    assert remote.key == "c-1"
    blank = builder.local(SourceRow(RowOrigin("f.csv", 3), {"mail": "b@x.com", "id": " "}))
    assert isinstance(blank, RowProblem)
    assert (blank.field, blank.reason) == ("id", "no external_id (the sync key)")
    assert builder.identity("c-1") == {"external_id": "c-1"}
