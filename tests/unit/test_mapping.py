"""RowMapper: rules applied in their documented order; NULL policies; problems name columns."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

from sync_engine.config import SourceSettings
from sync_engine.mapping import RowMapper
from sync_engine.records import RowOrigin, SourceRow
from sync_engine.schema import FieldKind
from sync_engine.transforms import FieldRule, Transform

KINDS = {
    "email": FieldKind.EMAIL,
    "tags": FieldKind.TAGS,
    "email_list_ids": FieldKind.IDS,
    "Name": FieldKind.TEXT,
    "City": FieldKind.TEXT,
    "Born": FieldKind.TEXT,
}


def mapper(rules: Mapping[str, FieldRule], **settings: object) -> RowMapper:
    return RowMapper(
        rules,
        kinds={name: KINDS[name] for name in rules},
        settings=SourceSettings(**settings),  # type: ignore[arg-type]
    )


def row(**values: object) -> SourceRow:
    return SourceRow(RowOrigin("db:people", 7), values)


def test_values_are_keyed_by_provider_field_and_typed_values_become_text() -> None:
    m = mapper(
        {
            "email": FieldRule(column="mail"),
            "Name": FieldRule(column="mail"),  # one column, two fields
            "Born": FieldRule(column="born"),
            "tags": FieldRule(column="labels"),
        }
    )
    mapped, problem = m.map(row(mail="a@x.com", born=date(1990, 3, 1), labels=["a", None]))
    assert problem is None
    assert mapped.values == {
        "email": "a@x.com",
        "Name": "a@x.com",
        "Born": "01.03.1990",
        "tags": ["a"],
    }
    assert mapped.origin == RowOrigin("db:people", 7)


def test_pipeline_order_default_then_split_then_transforms() -> None:
    m = mapper(
        {
            "tags": FieldRule(
                column="labels", split="|", transforms=(Transform.TRIM, Transform.LOWER)
            ),
            "City": FieldRule(column="city", default="  Unknown ", transforms=(Transform.UPPER,)),
        }
    )
    mapped, _ = m.map(row(labels=" VIP | B2B ", city="   "))
    assert mapped.values == {"tags": ["vip", "b2b"], "City": "  UNKNOWN "}
    mapped, _ = m.map(row(labels=None, city=None))
    assert mapped.values == {"tags": None, "City": "  UNKNOWN "}
    mapped, _ = m.map(row(labels=[], city=["x"]))
    assert mapped.values["tags"] == []


def test_a_field_date_format_applies_to_dates_timestamps_and_iso_text() -> None:
    m = mapper({"Born": FieldRule(column="born", date_format="%Y/%m/%d")})
    for raw in (date(1990, 3, 1), datetime(1990, 3, 1, 12, 0), "1990-03-01"):
        mapped, problem = m.map(row(born=raw))
        assert (mapped.values, problem) == ({"Born": "1990/03/01"}, None)
    # The source's formats apply to fields without one.
    plain = mapper(
        {"Born": FieldRule(column="born")}, date_format="%Y-%m-%d", datetime_format="%H:%M"
    )
    assert plain.map(row(born=date(1990, 3, 1)))[0].values == {"Born": "1990-03-01"}
    assert plain.map(row(born=datetime(1990, 3, 1, 7, 5)))[0].values == {"Born": "07:05"}
    assert plain.map(row(born="1990-03-01"))[0].values == {"Born": "1990-03-01"}


def test_null_clear_sends_empty_and_null_keep_leaves_the_field_out() -> None:
    rules = {
        "email": FieldRule(column="email"),
        "Name": FieldRule(column="name"),
        "City": FieldRule(column="city", null="clear"),
        "email_list_ids": FieldRule(column="lists"),
    }
    cleared, _ = mapper(rules).map(row(email="a@x.com", name=None, city=None, lists=None))
    assert cleared.values == {
        "email": "a@x.com",
        "Name": None,
        "City": None,
        "email_list_ids": None,
    }

    keeping = mapper(rules, null="keep")
    assert keeping.optional_fields == frozenset({"email", "Name"})  # list ids never keep
    kept, _ = keeping.map(row(email="a@x.com", name=None, city=None, lists=None))
    assert kept.values == {"email": "a@x.com", "City": None, "email_list_ids": None}
    # A value that is there is mapped as usual; only NULL is left alone.
    full, _ = keeping.map(row(email="a@x.com", name="Ann", city="Oslo", lists=[3]))
    assert full.values["Name"] == "Ann"


def test_a_default_wins_over_the_null_policy() -> None:
    m = mapper({"City": FieldRule(column="city", default="n/a", null="keep")})
    assert m.map(row(city=None))[0].values == {"City": "n/a"}


def test_the_first_bad_value_is_a_problem_naming_row_column_and_field() -> None:
    m = mapper(
        {
            "email": FieldRule(column="email"),
            "Name": FieldRule(column="photo"),
            "City": FieldRule(column="cities"),
        }
    )
    mapped, problem = m.map(row(email="a@x.com", photo=b"\x89PNG", cities=["Oslo"]))
    assert problem is not None
    assert problem.origin == RowOrigin("db:people", 7)
    assert problem.field == "photo"
    assert problem.reason.startswith("Name: binary data cannot go into a provider field")
    # The rest is still mapped, so the caller can tell whose row it was.
    assert mapped.values["email"] == "a@x.com"
    assert mapped.values["Name"] is None

    _, problem = m.map(row(email="a@x.com", photo="ok", cities=["Oslo"]))
    assert problem is not None
    assert problem.field == "cities"
    assert "an array cannot go into the text field City" in problem.reason


def test_a_missing_column_reads_as_null() -> None:
    """JSON Lines objects may lack keys: that is a NULL, handled by the policy."""
    m = mapper({"Name": FieldRule(column="name")}, null="keep")
    assert m.map(row(other=1))[0].values == {}
