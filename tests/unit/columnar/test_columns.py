"""Whole-column normalisation gives, value by value, exactly what ``Normaliser.value`` gives."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_engine.columnar._normalise import PYTHON_SPACES, STABLE, Column, ColumnNormaliser
from sync_engine.columnar._sets import SetRegistry
from sync_engine.normalise import FieldValue, InvalidValueError, Normaliser, normalise_text
from sync_engine.schema import FieldKind

SAMPLES = {
    FieldKind.EMAIL: [
        "anna@example.com",
        " Anna@Example.COM ",
        "ivan@пример.рф",
        "a..b@example.com",
        "x@host.test",
        "x@local",
        "a" * 65 + "@example.com",
        "\u212aelvin@example.com",
        "",
    ],
    FieldKind.PHONE: [
        "+79261232323",
        "+7 (926) 123-23-23",
        "79261232323",
        "8 (926) 123-23-23",
        "+11000000001",
        "+5491112345678",
        "12",
        "",
        "\u00a0+79261232323",
    ],
    FieldKind.TEXT: [" Anna ", "Zoe\u0308", "\u2028x\u3000", "\x1fy", "plain", ""],
    FieldKind.TAGS: ["vip, news", " news ; vip", "a,,b", "Äpfel;b", "", " , "],
    FieldKind.IDS: ["1,2", "01; 1", "x", "²", "٣", "1," * 3, "9" * 30, ""],
}
ASCII_ISH = st.text(alphabet=st.characters(max_codepoint=0x7F, blacklist_characters="\r\n"))
ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"))


def expected(normaliser: Normaliser, kind: FieldKind, raw: str, *, strict: bool) -> object:
    """What the row path makes of one value (strict: value or error; lenient: value)."""
    try:
        value: FieldValue = normaliser.value(kind, raw)
    except InvalidValueError as error:
        if strict:
            return ("error", str(error))
        if kind in (FieldKind.TAGS, FieldKind.IDS):
            return None
        text = normalise_text(raw)
        return text.lower() if kind is FieldKind.EMAIL else text
    return sorted(value) if isinstance(value, frozenset) else value


def columnar(
    values: list[str], kind: FieldKind, *, strict: bool, region: str | None
) -> list[object]:
    registry = SetRegistry()
    normaliser = ColumnNormaliser(Normaliser(default_region=region), registry)
    column = [Column("v", pl.Series("v", values, dtype=pl.String), kind)]
    frame = normaliser.strict(column) if strict else normaliser.lenient(column)
    cells = frame.get_column("v")
    if kind in (FieldKind.TAGS, FieldKind.IDS):
        cells = registry.items(cells)
    result: list[object] = cells.to_list()
    if strict:
        errors = frame.get_column("v:error").to_list()
        result = [("error", e) if e is not None else v for v, e in zip(result, errors, strict=True)]
    return result


@pytest.mark.parametrize("kind", list(SAMPLES))
@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("region", [None, "RU"])
def test_known_hard_values(kind: FieldKind, strict: bool, region: str | None) -> None:
    values = SAMPLES[kind] * 2  # repeats exercise the once-per-distinct-value path
    normaliser = Normaliser(default_region=region)
    want = [expected(normaliser, kind, v, strict=strict) for v in values]
    assert columnar(values, kind, strict=strict, region=region) == want


@given(
    st.sampled_from(list(SAMPLES)),
    st.lists(ASCII_ISH | ANY_TEXT, max_size=30),
    st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_random_values(kind: FieldKind, values: list[str], strict: bool) -> None:
    normaliser = Normaliser()
    want = [expected(normaliser, kind, v, strict=strict) for v in values]
    assert columnar(values, kind, strict=strict, region=None) == want


def test_sets_become_the_same_id_however_written() -> None:
    registry = SetRegistry()
    normaliser = ColumnNormaliser(Normaliser(), registry)
    raw = pl.Series("t", ["vip,news", "news ; vip", " vip,news,vip", "other"])
    ids = normaliser.strict([Column("t", raw, FieldKind.TAGS)]).get_column("t").to_list()
    assert ids[0] == ids[1] == ids[2] != ids[3]


def test_trusted_cells_are_kept_as_they_stand() -> None:
    """The planner trusts rows only when they equal canonical provider rows; what it
    trusts is not tested again (so a trusted odd cell shows it was left alone)."""
    normaliser = ColumnNormaliser(Normaliser(), SetRegistry())
    emails = pl.Series("e", [" Anna@Example.COM ", "not-an-email"])
    tags = pl.Series("g", [" b ; a", "a,b"])  # lists are normalised all the same
    columns = [Column("e", emails, FieldKind.EMAIL), Column("g", tags, FieldKind.TAGS)]
    trusted = normaliser.strict(columns, trusted=True)
    assert trusted.get_column("e").to_list() == emails.to_list()
    assert "e:error" not in trusted.columns  # a trusted cell cannot fail
    assert trusted.get_column("g").n_unique() == 1
    tested = normaliser.strict(columns)
    assert tested.get_column("e").to_list() == ["anna@example.com", ""]
    assert tested.get_column("e:error").null_count() == 1


def test_lenient_says_which_rows_were_canonical_as_they_stood() -> None:
    normaliser = ColumnNormaliser(Normaliser(), SetRegistry())
    emails = pl.Series("e", ["anna@example.com", "Anna@example.com", "anna@example.com"])
    tags = pl.Series("g", ["a,b", "a,b", " b ; a"])  # sets never make a row unclean
    texts = pl.Series("t", ["Anna", "Anna", "Anna "])
    frame = normaliser.lenient(
        [
            Column("e", emails, FieldKind.EMAIL),
            Column("g", tags, FieldKind.TAGS),
            Column("t", texts, FieldKind.TEXT),
        ],
        canonical="clean",
    )
    assert frame.get_column("clean").to_list() == [True, False, False]
    assert frame.columns == ["e", "g", "t", "clean"]


@pytest.mark.parametrize("kept", [20_000, 2])
def test_list_cells_met_in_earlier_blocks_give_the_same_results(
    kept: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks share what they have normalised (while few distinct cells, ``kept``)."""
    monkeypatch.setattr("sync_engine.columnar._normalise._KNOWN_CELLS", kept)
    blocks = [["vip,news", "x", "", "b;a"], ["news ; vip", "vip,news", "1,", "x"], ["x", ""]]
    shared = ColumnNormaliser(Normaliser(), SetRegistry())
    for kind in (FieldKind.TAGS, FieldKind.IDS):
        for strict in (True, False):
            for block in blocks:
                column = [Column("t", pl.Series("t", block), kind, "7")]
                fresh = ColumnNormaliser(Normaliser(), SetRegistry())
                run = shared.strict if strict else shared.lenient
                again = fresh.strict if strict else fresh.lenient
                got, want = run(column), again(column)
                assert got.columns == want.columns
                for name in got.columns:
                    if name.startswith("t") and got.schema[name] == pl.UInt32:
                        # Ids differ between registries: compare the lists behind them.
                        assert (
                            shared.registry.items(got.get_column(name)).to_list()
                            == fresh.registry.items(want.get_column(name)).to_list()
                        )
                    else:
                        assert got.get_column(name).to_list() == want.get_column(name).to_list()


def test_python_space_list_is_complete() -> None:
    """The hard-coded list is exactly what str.isspace() accepts, all of Unicode."""
    assert "".join(c for c in map(chr, range(0x110000)) if c.isspace()) == PYTHON_SPACES


def test_stable_characters_need_no_normalisation_alone_or_in_pairs() -> None:
    """Text of STABLE characters (and inner spaces) is its own NFC form: every character
    is its own NFC, none combines, and no pair composes."""
    import re
    import unicodedata

    ranges = re.findall(r"\\x\{([0-9a-f]+)\}-\\x\{([0-9a-f]+)\}", STABLE)
    chars = [chr(c) for low, high in ranges for c in range(int(low, 16), int(high, 16) + 1)]
    assert len(chars) > 700
    for char in chars:
        assert not char.isspace()
        assert unicodedata.combining(char) == 0
        assert unicodedata.normalize("NFC", char) == char
    for first in [*chars, " "]:
        for second in [*chars, " "]:
            pair = first + second
            assert unicodedata.normalize("NFC", pair) == pair
