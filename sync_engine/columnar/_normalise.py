"""Whole columns normalised with exactly the results of ``Normaliser.value``.

Each kind has a vectorised fast path for values it can prove canonical: ASCII text,
e-mail addresses that match the row path's canonical pattern, E.164 numbers per
``_e164``, ASCII tag and id lists. Every other *distinct* value goes through
``Normaliser.value`` once, so results and error messages are the row path's own; the
cost of the slow path is paid per distinct value, not per row (cities, tag lists and
statuses repeat a lot).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import polars as pl

from sync_engine._e164 import FORMATTED, e164_rules
from sync_engine.normalise import (
    _CANONICAL_EMAIL,
    _SPECIAL_USE_TLDS,
    FieldValue,
    InvalidValueError,
    Normaliser,
    normalise_text,
)
from sync_engine.schema import FieldKind

from ._compact import compact
from ._sets import SetRegistry

__all__ = ["PYTHON_SPACES", "SET_KINDS", "STABLE", "Column", "ColumnNormaliser", "not_blank"]

SET_KINDS = frozenset({FieldKind.TAGS, FieldKind.IDS})

# str.strip() without arguments strips what str.isspace() calls space; these are the
# ASCII ones (every other value leaves the fast path at the ASCII test).
_ASCII_SPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f "
_EMAIL = f"^(?:{_CANONICAL_EMAIL.pattern})$"
_SPECIAL_TLD = rf"\.(?:{'|'.join(sorted(_SPECIAL_USE_TLDS))})$"
# Characters that are their own NFC form and compose with none of each other nor with a
# space (a test checks every pair): text of them is canonical once trimmed. Printable
# ASCII, Latin-1 and Latin Extended-A/B letters, Cyrillic; most names and cities.
STABLE = "\\x{21}-\\x{7e}\\x{a1}-\\x{ac}\\x{ae}-\\x{24f}\\x{400}-\\x{482}\\x{488}-\\x{4ff}"
_STABLE_TEXT = f"^(?:[{STABLE}](?:[{STABLE} ]*[{STABLE}])?)?$"
_STABLE_OR_SPACE = f"^[{STABLE} ]*$"

SlowResult = tuple[str | list[str] | None, str | None]


# Every character str.isspace() accepts (a test recomputes the list from Python itself).
PYTHON_SPACES = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
    "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_NOT_SPACE = "[^" + "".join(f"\\x{{{ord(char):x}}}" for char in PYTHON_SPACES) + "]"


def not_blank(raw: pl.Expr) -> pl.Expr:
    """``bool(str(value or "").strip())`` for a string column (nulls are blank)."""
    return raw.str.contains(_NOT_SPACE).fill_null(False)


def _items(raw: pl.Expr) -> pl.Expr:
    """``[,;]``-separated items, trimmed, without empty ones (ASCII cells only)."""
    trimmed = pl.element().str.strip_chars(_ASCII_SPACE)
    return (
        raw.str.replace_all(";", ",", literal=True)
        .str.split(",")
        .list.eval(trimmed.filter(trimmed != ""))
    )


def _is_ascii(raw: pl.Expr) -> pl.Expr:
    return (raw.str.len_bytes() == raw.str.len_chars()).fill_null(True)


def _is_email(text: pl.Expr) -> pl.Expr:
    """``normalise_email``'s own test for an address that is canonical as it stands."""
    return (
        text.str.contains(_EMAIL)
        & (text.str.len_bytes() <= 254)
        & (text.str.find("@", literal=True) <= 64)
        & ~text.str.contains(_SPECIAL_TLD)
    ).fill_null(False)


def _is_e164(text: pl.Expr) -> pl.Expr:
    rules = e164_rules()
    return (
        text.str.contains(rules.lengths_source)
        & ~text.str.slice(1).str.contains(rules.prefix_source)
    ).fill_null(False)


def _as_is(kind: FieldKind, raw: pl.Expr) -> pl.Expr:
    """Cells that are their own canonical form: most of them, so tested first and kept
    without a copy (the regexes admit only trimmed, lower-case ASCII)."""
    if kind is FieldKind.TEXT:
        return raw.str.contains(_STABLE_TEXT).fill_null(False)
    test = _is_email(raw) if kind is FieldKind.EMAIL else _is_e164(raw)
    return (raw == "") | test


def _trimmed(kind: FieldKind, raw: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """For the other cells: (candidate value, ok) after ``str.strip()`` (and ``lower()``
    for e-mail) of ASCII text; phones also in the formatted-for-people form."""
    stripped = raw.str.strip_chars(_ASCII_SPACE)
    ascii_ = _is_ascii(raw)
    if kind is FieldKind.TEXT:
        return stripped, ascii_ | stripped.str.contains(_STABLE_OR_SPACE).fill_null(False)
    if kind is FieldKind.EMAIL:
        lowered = stripped.str.to_lowercase()
        return lowered, ascii_ & ((lowered == "") | _is_email(lowered))
    bare = stripped.str.replace_all("[ ()-]", "")
    formatted = stripped.str.contains(f"^{FORMATTED}$").fill_null(False)
    candidate = pl.when(formatted).then(bare).otherwise(stripped)
    return candidate, ascii_ & ((stripped == "") | _is_e164(candidate))


def _set_stages(kind: FieldKind) -> list[dict[str, pl.Expr]]:
    """Like ``_scalar_stages`` for tag and id lists, over a column ``raw``."""
    raw = pl.col("raw")
    first = {"ascii": _is_ascii(raw), "items": _items(raw)}
    items = pl.col("items")
    empty = pl.lit([], dtype=pl.List(pl.String))
    if kind is FieldKind.TAGS:
        return [
            first,
            {"value": items.list.unique().list.sort().fill_null(empty), "ok": pl.col("ascii")},
        ]
    digits = items.list.eval(pl.element().str.contains("^[0-9]{1,18}$")).list.all()
    ids = items.list.eval(pl.element().str.replace(r"^0+([0-9])", "${1}"))
    return [
        first,
        {
            "value": ids.list.unique().list.sort().fill_null(empty),
            "ok": pl.col("ascii") & digits.fill_null(True),
        },
    ]


def _as_column(value: FieldValue) -> str | list[str]:
    return sorted(value) if isinstance(value, frozenset) else value


@dataclass(frozen=True, slots=True)
class Column:
    """One raw column to normalise into ``name``; for a set kind with ``extra``, also
    ``name:added``, the values with that item added (the synced list id)."""

    name: str
    raw: pl.Series  # "" for an empty cell, null for a column the file lacks
    kind: FieldKind
    extra: str | None = None


Slow = Callable[[FieldKind, str], SlowResult]
_SetKey = tuple[str, FieldKind, str | None, Slow]
_KNOWN_CELLS = 20_000  # distinct list cells kept across blocks, per column


class ColumnNormaliser:
    """Normalises raw string columns by field kind, exactly as ``Normaliser.value``.

    Sets come out as ids of ``registry`` (shared by both sides of a plan).
    """

    def __init__(self, normaliser: Normaliser, registry: SetRegistry) -> None:
        self._normaliser = normaliser
        self.registry = registry
        # By column and way of normalising: the results for a list column the file lacks,
        # and the distinct list cells met so far with theirs (while they are few).
        self._missing: dict[_SetKey, list[pl.Series]] = {}
        self._known: dict[_SetKey, pl.DataFrame] = {}

    def strict(self, columns: Sequence[Column], *, trusted: bool = False) -> pl.DataFrame:
        """The local side: ``name`` and ``name:error`` (null where the value is fine).

        An invalid value becomes "" (as ``ContactBuilder.local`` keeps it). ``trusted``
        says the scalar cells are already known to be their own canonical form (the plan
        matched them to the provider's canonical values): they are kept as they are,
        without a test, and without ``:error`` columns (they have none).
        """
        return self._run(columns, self._strict_value, trusted=trusted)[0]

    def lenient(self, columns: Sequence[Column], *, canonical: str | None = None) -> pl.DataFrame:
        """The remote side: an invalid value keeps its trimmed text (as
        ``ContactBuilder.remote`` does); an invalid set is null, which compares equal to
        nothing and counts as an empty set where sets are compared additively.

        With ``canonical``, also a Boolean column of that name: true where every scalar
        cell of the row was its own canonical form as it stood.
        """
        values, as_is = self._run(columns, self._lenient_value)
        values = values.select([column.name for column in columns])
        return values if canonical is None else values.with_columns(as_is.alias(canonical))

    def _strict_value(self, kind: FieldKind, text: str) -> SlowResult:
        try:
            return _as_column(self._normaliser.value(kind, text)), None
        except InvalidValueError as error:
            return "" if kind not in SET_KINDS else [], str(error)

    def _lenient_value(self, kind: FieldKind, text: str) -> SlowResult:
        try:
            return _as_column(self._normaliser.value(kind, text)), None
        except InvalidValueError:
            if kind in SET_KINDS:
                return None, None
            kept = normalise_text(text)
            return (kept.lower() if kind is FieldKind.EMAIL else kept), None

    def _run(
        self, columns: Sequence[Column], slow: Slow, *, trusted: bool = False
    ) -> tuple[pl.DataFrame, pl.Series]:
        """The normalised columns, and per row whether all its scalar cells were canonical."""
        scalars = [c for c in columns if c.kind not in SET_KINDS]
        height = columns[0].raw.len() if columns else 0
        result: list[pl.Series] = []
        as_is = pl.repeat(True, height, dtype=pl.Boolean, eager=True)
        if scalars:
            # One pass over every scalar column at once: polars spreads them over cores.
            frame = pl.DataFrame(
                [
                    (c.raw if c.raw.null_count() == 0 else c.raw.fill_null("")).alias(c.name)
                    for c in scalars
                ]
            )
            if trusted:
                result.extend(frame.get_columns())
            else:
                fine = frame.select(_as_is(c.kind, pl.col(c.name)).alias(c.name) for c in scalars)
                as_is = fine.select(pl.all_horizontal(pl.all())).to_series()
                for column in scalars:
                    name = column.name
                    raw, ok = frame.get_column(name), fine.get_column(name)
                    result.extend(_resolve_scalar(raw, ok, column.kind, slow))
        for column in columns:
            if column.kind in SET_KINDS:
                result.extend(self._resolve_set(column, slow))
        order = {c.name: i for i, c in enumerate(columns)}
        values = pl.DataFrame(sorted(result, key=lambda s: order[s.name.split(":")[0]]))
        return values, as_is

    def _resolve_set(self, column: Column, slow: Slow) -> list[pl.Series]:
        """Tag and id lists repeat a lot, within a file and across its blocks: each
        distinct cell is normalised once a plan (a column the file lacks too), and every
        row then finds its result by one join."""
        height = column.raw.len()
        key = (column.name, column.kind, column.extra, slow)
        if height and column.raw.null_count() == height:
            if key not in self._missing:
                one = Column(column.name, column.raw.head(1), column.kind, column.extra)
                self._missing[key] = _results(_joined(one.raw, self._table(one, one.raw, slow)))
            return [cells.new_from_index(0, height) for cells in self._missing[key]]
        known = self._known.get(key)
        if known is None:
            table = self._table(column, column.raw.unique(), slow)
        else:
            joined = _joined(column.raw, known)
            unseen = joined.get_column("seen").is_null()
            if not unseen.any():
                return _results(joined)
            fresh = self._table(column, column.raw.filter(unseen).unique(), slow)
            table = pl.concat([known.drop("seen"), fresh])
        table = table.with_columns(seen=pl.lit(True))
        if table.height <= _KNOWN_CELLS:
            self._known[key] = compact(table)
        return _results(_joined(column.raw, table))

    def _table(self, column: Column, distinct: pl.Series, slow: Slow) -> pl.DataFrame:
        """``raw`` (each of ``distinct``) and its results: ids, error, ids with ``extra``."""
        name = column.name
        table = distinct.alias("raw").to_frame()
        for stage in _set_stages(column.kind):
            table = table.with_columns(**stage)
        pending = table.filter(~pl.col("ok")).get_column("raw")
        results = [slow(column.kind, text) for text in pending.to_list()]
        lookup = pl.DataFrame(
            {"raw": pending, "slow": [v for v, _ in results], "error": [e for _, e in results]},
            schema={"raw": pl.String, "slow": pl.List(pl.String), "error": pl.String},
        )
        table = table.join(lookup, on="raw", how="left").select(
            "raw",
            pl.when("ok").then("value").otherwise("slow").alias("value"),
            pl.when("ok").then(None).otherwise("error").alias(f"{name}:error"),
        )
        registry = self.registry
        numbered = [registry.ids(table.get_column("value")).alias(name)]
        if column.extra is not None:
            added = pl.col("value").list.concat(pl.lit([column.extra])).list.unique().list.sort()
            numbered.append(registry.ids(table.select(added).to_series()).alias(f"{name}:added"))
        return table.drop("value").with_columns(numbered)


def _joined(raw: pl.Series, table: pl.DataFrame) -> pl.DataFrame:
    """Each cell of ``raw`` with its results from ``table`` (by distinct ``raw`` cell)."""
    return (
        raw.alias("raw")
        .to_frame()
        .join(table, on="raw", how="left", maintain_order="left", nulls_equal=True)
    )


def _results(joined: pl.DataFrame) -> list[pl.Series]:
    return [joined.get_column(c) for c in joined.columns if c not in ("raw", "seen")]


def _resolve_scalar(
    raw: pl.Series, fine: pl.Series, kind: FieldKind, slow: Slow
) -> list[pl.Series]:
    """Cells kept as they are, trimmed candidates where those pass, the normaliser for the
    distinct rest; merged back in place."""
    name = raw.name
    errors = pl.repeat(None, raw.len(), dtype=pl.String, eager=True).alias(f"{name}:error")
    if fine.all():
        return [raw, errors]
    candidate, ok = _trimmed(kind, pl.col("raw"))
    pending = (
        raw.alias("raw")
        .to_frame()
        .with_row_index("row")
        .filter(~fine)
        .with_columns(value=candidate, ok=ok)
    )
    value = raw.scatter(
        pending.filter("ok").get_column("row"), pending.filter("ok").get_column("value")
    )
    rest = pending.filter(~pl.col("ok")).select("row", "raw")
    if rest.is_empty():
        return [value, errors]
    distinct = rest.get_column("raw").unique()
    results = [slow(kind, text) for text in distinct.to_list()]
    lookup = pl.DataFrame(
        {"raw": distinct, "slow": [v for v, _ in results], "error": [e for _, e in results]},
        schema={"raw": pl.String, "slow": pl.String, "error": pl.String},
    )
    resolved = rest.join(lookup, on="raw", how="left")
    rows = resolved.get_column("row")
    return [
        value.scatter(rows, resolved.get_column("slow")),
        errors.scatter(rows, resolved.get_column("error")),
    ]
