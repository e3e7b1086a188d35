"""Per-field transforms: names and date formats are checked; transforms apply in order."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync_engine.transforms import (
    FieldRule,
    Transform,
    apply_transforms,
    check_date_format,
    parse_transforms,
)


def test_known_transform_names_parse_in_order() -> None:
    assert parse_transforms(["trim", "upper"]) == (Transform.TRIM, Transform.UPPER)
    assert parse_transforms([]) == ()


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["uper"], "unknown transform 'uper' (known: trim, lower, upper)"),
        ([3], "unknown transform 3"),
        (["lower", "upper"], "lower and upper contradict each other"),
    ],
)
def test_bad_transform_lists_are_refused_with_the_reason(names: list[object], message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_transforms(names)


def test_transforms_apply_to_text_and_to_each_list_item() -> None:
    assert apply_transforms("  MiXed ", (Transform.TRIM, Transform.LOWER)) == "mixed"
    assert apply_transforms([" a ", "B"], (Transform.TRIM, Transform.UPPER)) == ["A", "B"]


@given(st.text(), st.lists(st.sampled_from(list(Transform)), max_size=4))
def test_trim_and_case_transforms_are_idempotent(text: str, chosen: list[Transform]) -> None:
    """Applying a rule twice changes nothing more: values converge run after run."""
    transforms = tuple(t for t in chosen if t is not Transform.UPPER) or (Transform.TRIM,)
    once = apply_transforms(text, transforms)
    assert apply_transforms(once, transforms) == once


@pytest.mark.parametrize("fmt", ["%d.%m.%Y", "%Y-%m-%d %H:%M:%S", "%F %T", "%d%%%m"])
def test_portable_date_formats_are_accepted(fmt: str) -> None:
    assert check_date_format(fmt) == fmt
    date(2024, 1, 5).strftime(fmt)  # and they render


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("", "date format is empty"),
        ("DD.MM.YYYY", "has no % directive"),
        ("%d.%b.%Y", "%b is not supported"),
        ("%d.%m.%", "a lone % at the end is not supported"),
    ],
)
def test_unportable_or_broken_date_formats_are_refused(fmt: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_date_format(fmt)


def test_rule_is_plain_only_without_options_and_describes_itself() -> None:
    assert FieldRule(column="name").plain
    assert FieldRule(column="name").describe() == "name"
    rule = FieldRule(
        column="born",
        transforms=(Transform.TRIM,),
        default="n/a",
        date_format="%d.%m.%Y",
        null="keep",
    )
    assert not rule.plain
    assert rule.describe() == "born (trim, default 'n/a', date as '%d.%m.%Y', null keep)"
    assert not FieldRule(column="tags", split="|").plain
