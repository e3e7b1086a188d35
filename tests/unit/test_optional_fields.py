"""Fields left out of a contact (a kept NULL): never a change in the diff, never sent empty."""

from __future__ import annotations

from pathlib import Path

from sync_engine.contact import Contact, RemoteContact
from sync_engine.diff import Differ, Verdict
from sync_engine.plan import BatchKind, Change, ChangeKind, Plan, PlanSpool, PlanSummary
from sync_engine.records import RowOrigin

FIELDS = ("email", "Name", "City", "tags")


def differ(*remotes: RemoteContact) -> Differ:
    d = Differ(
        fields=FIELDS, additive=frozenset({"tags"}), optional=frozenset({"Name", "City", "tags"})
    )
    for r in remotes:
        d.add_remote(r)
    return d


def remote(key: str, name: str, city: str) -> RemoteContact:
    return RemoteContact(key, {"email": key, "Name": name, "City": city, "tags": frozenset()})


def test_a_missing_optional_field_is_no_change_but_a_present_one_is_compared() -> None:
    d = differ(remote("a@x.com", "Ann", "Oslo"), remote("b@x.com", "Bob", "Rome"))
    assert d.optional_fields == ("Name", "City")  # additive sets compare on their own
    unchanged = Contact("a@x.com", {"email": "a@x.com", "City": "Oslo"}, RowOrigin("db", 1))
    assert d.judge(unchanged).verdict is Verdict.UNCHANGED
    nothing = Contact("b@x.com", {"email": "b@x.com"}, RowOrigin("db", 2))
    assert d.judge(nothing).verdict is Verdict.UNCHANGED
    d = differ(remote("a@x.com", "Ann", "Oslo"))
    changed = Contact("a@x.com", {"email": "a@x.com", "City": "Bergen"}, RowOrigin("db", 1))
    assert d.judge(changed).verdict is Verdict.UPDATE
    d = differ(remote("a@x.com", "Ann", "Oslo"))
    cleared = Contact("a@x.com", {"email": "a@x.com", "Name": "", "City": "Oslo"}, None)
    assert d.judge(cleared).verdict is Verdict.UPDATE


def test_without_optional_fields_a_missing_field_still_compares_as_empty() -> None:
    """The default is unchanged: only fields declared optional may be left out."""
    d = Differ(fields=FIELDS, additive=frozenset({"tags"}))
    d.add_remote(remote("a@x.com", "Ann", "Oslo"))
    contact = Contact("a@x.com", {"email": "a@x.com", "City": "Oslo"}, None)
    assert d.judge(contact).verdict is Verdict.UPDATE


def test_upsert_batches_never_mix_contacts_that_carry_different_fields(tmp_path: Path) -> None:
    """One column list per batch: a contact lacking City must not ride with one that has it."""
    spool = PlanSpool(tmp_path / "plan.jsonl")
    shapes = [("email", "Name", "City"), ("email", "Name")]
    for i in range(7):
        fields = dict.fromkeys(shapes[i % 2], "v") | {"email": f"u{i}@x.com"}
        spool.write(Change(ChangeKind.UPDATE, f"u{i}@x.com", fields))
    for i in range(3):
        spool.write(Change(ChangeKind.REMOVE, f"r{i}@x.com", {"email": f"r{i}@x.com"}))
    plan = Plan(summary=PlanSummary(to_update=7, to_remove=3), spool=spool)
    batches = list(plan.batches(2))
    assert [(b.number, b.kind, [c.key for c in b.changes]) for b in batches] == [
        (1, BatchKind.UPSERT, ["u0@x.com", "u2@x.com"]),
        (2, BatchKind.UPSERT, ["u1@x.com", "u3@x.com"]),
        (3, BatchKind.UPSERT, ["u4@x.com", "u6@x.com"]),
        (4, BatchKind.UPSERT, ["u5@x.com"]),
        (5, BatchKind.REMOVE, ["r0@x.com", "r1@x.com"]),
        (6, BatchKind.REMOVE, ["r2@x.com"]),
    ]
    for batch in batches:
        assert len({tuple(c.fields) for c in batch.changes}) == 1
