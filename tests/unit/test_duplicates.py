"""Duplicate keys by rule (last, newest): both rows reported, winners chosen, memory per key."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import AsyncIterator, Iterable
from datetime import date
from pathlib import Path

from sync_engine.contact import Contact
from sync_engine.duplicates import Duplicate, DuplicateResolver, Ranked
from sync_engine.records import RowOrigin, RowProblem


def contact(key: str, line: int, name: str = "") -> Contact:
    return Contact(
        key, {"email": key, "Name": name, "tags": frozenset({"t"})}, RowOrigin("s", line)
    )


async def stream(items: Iterable[Ranked | RowProblem]) -> AsyncIterator[Ranked | RowProblem]:
    for item in items:
        yield item


async def resolve(
    resolver: DuplicateResolver, items: Iterable[Ranked | RowProblem]
) -> list[Contact | RowProblem | Duplicate]:
    return [item async for item in resolver.resolve(stream(items))]


async def test_last_keeps_the_last_row_and_reports_each_other_with_both_rows(
    tmp_path: Path,
) -> None:
    resolver = DuplicateResolver("last", spool_dir=tmp_path)
    out = await resolve(
        resolver,
        [
            Ranked(contact("a@x.com", 2, "first"), None),
            Ranked(contact("b@x.com", 3), None),
            Ranked(contact("a@x.com", 4, "second"), None),
            Ranked(contact("a@x.com", 5, "third"), None),
        ],
    )
    winners = [c for c in out if isinstance(c, Contact)]
    assert [(c.key, c.fields["Name"]) for c in winners] == [("b@x.com", ""), ("a@x.com", "third")]
    assert winners[1].fields["tags"] == frozenset({"t"})  # sets survive the spool
    assert winners[1].origin == RowOrigin("s", 5)
    dropped = [d for d in out if isinstance(d, Duplicate)]
    assert [(d.dropped.line, d.kept.line) for d in dropped] == [(2, 5), (4, 5)]
    problem = dropped[0].problem()
    assert (problem.source, problem.line, problem.key, problem.code) == (
        "s",
        2,
        "a@x.com",
        "duplicate",
    )
    assert problem.reason == (
        "duplicate key 'a@x.com' in rows s:5 and s:2: the last row (s:5) is kept,"
        " this one is skipped"
    )
    assert not any(os.scandir(tmp_path))  # the spool is gone


async def test_newest_keeps_the_greatest_value_null_is_oldest_and_ties_go_to_the_later(
    tmp_path: Path,
) -> None:
    resolver = DuplicateResolver("newest", spool_dir=tmp_path, newest_by="updated")
    out = await resolve(
        resolver,
        [
            Ranked(contact("a@x.com", 2, "new"), date(2024, 5, 1)),
            Ranked(contact("a@x.com", 3, "old"), date(2023, 1, 1)),
            Ranked(contact("a@x.com", 4, "null"), None),
            Ranked(contact("b@x.com", 5, "null"), None),
            Ranked(contact("b@x.com", 6, "dated"), date(2020, 1, 1)),
            Ranked(contact("c@x.com", 7, "tie-1"), 5),
            Ranked(contact("c@x.com", 8, "tie-2"), 5),
        ],
    )
    kept = {c.key: c.fields["Name"] for c in out if isinstance(c, Contact)}
    assert kept == {"a@x.com": "new", "b@x.com": "dated", "c@x.com": "tie-2"}
    dropped = [d for d in out if isinstance(d, Duplicate)]
    assert {(d.dropped.line, d.kept.line) for d in dropped} == {(3, 2), (4, 2), (5, 6), (7, 8)}
    assert "the newest by updated row (s:2) is kept" in dropped[0].problem().reason


async def test_values_that_cannot_be_compared_make_a_problem_not_a_crash(tmp_path: Path) -> None:
    resolver = DuplicateResolver("newest", spool_dir=tmp_path, newest_by="updated")
    out = await resolve(
        resolver,
        [
            Ranked(contact("a@x.com", 2), date(2024, 5, 1)),
            Ranked(contact("a@x.com", 3), "yesterday"),
        ],
    )
    problem, winner = out
    assert isinstance(problem, RowProblem)
    assert (problem.origin.line, problem.field, problem.key) == (3, "updated", "a@x.com")
    assert "'yesterday' cannot be compared with datetime.date(2024, 5, 1) of row s:2" in (
        problem.reason
    )
    assert isinstance(winner, Contact)
    assert winner.origin == RowOrigin("s", 2)


async def test_problems_pass_through_at_once(tmp_path: Path) -> None:
    """Bad rows are reported during the first pass, before any contact comes out."""
    resolver = DuplicateResolver("last", spool_dir=tmp_path)
    bad = RowProblem(RowOrigin("s", 3), "email", "invalid email")
    out = await resolve(resolver, [Ranked(contact("a@x.com", 2), None), bad])
    assert out[0] is bad
    assert isinstance(out[1], Contact)


async def test_memory_holds_one_small_entry_per_key_not_the_rows(tmp_path: Path) -> None:
    """20,000 rows of 4 KB for 5,000 keys: memory stays far below the rows' 80 MB."""
    payload = "x" * 4000
    rows = 20_000

    def items() -> Iterable[Ranked]:
        for i in range(rows):
            yield Ranked(contact(f"u{i % 5_000}@x.com", i + 2, payload + str(i)), i)

    resolver = DuplicateResolver("newest", spool_dir=tmp_path, newest_by="n")
    tracemalloc.start()
    try:
        kept = dropped = 0
        async for item in resolver.resolve(stream(items())):
            if isinstance(item, Contact):
                kept += 1
            elif isinstance(item, Duplicate):
                dropped += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (kept, dropped) == (5_000, 15_000)
    assert peak < rows * len(payload) / 10, f"peak {peak} bytes"
