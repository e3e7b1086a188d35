"""The provider's side as a compact index: key, digest, additive sets, consent lock.

Like ``Differ.add_remote``: one entry per key (the first row wins), values normalised
leniently, and the provider's consent decided by the snapshot's own ``lock`` function,
called once per distinct combination of the columns it reads instead of once per row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from ._blocks import CsvLayout, NotColumnar
from ._keys import KeyStore, key_check
from ._normalise import Column, ColumnNormaliser, not_blank
from ._shape import Shape

__all__ = ["LockRule", "RemoteIndex", "check_same_keys", "index_remote"]

Lock = Callable[[Mapping[str, object]], str | None]


@dataclass(frozen=True, kw_only=True)
class LockRule:
    """A snapshot's lock function and what it reads: ``columns`` by value, ``presence``
    only for whether they are blank. Declared beside the function (and tested there)."""

    lock: Lock
    columns: tuple[str, ...]
    presence: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class RemoteIndex:
    """One row per remote key, sorted by ``kh``; ``line`` (the export line) names a row
    and orders rows as the export does.

    ``frame`` has ``kh`` (the key's 64-bit hash: joins on it are several times faster
    than on strings), ``kc`` (32 bits of a second, independent hash that confirms every
    match), ``digest``, ``a{i}`` (additive set ids), ``clean`` (every scalar cell of the
    row was its own canonical form: a local row equal to it needs no normalising),
    ``lock`` (index into ``reasons``; 0 is "not locked") and ``line``; the key strings
    themselves wait on disk in ``keys``, by line. ``keyless`` holds the lines of rows
    without a key; ``repeats`` the ``kh, kc, line`` of rows whose key came earlier.
    """

    frame: pl.DataFrame
    reasons: tuple[str | None, ...]
    keyless: pl.Series
    repeats: pl.DataFrame  # kh, kc, line
    keys: KeyStore

    @property
    def duplicated(self) -> bool:
        return not self.repeats.is_empty()


def check_same_keys(rows: pl.DataFrame, firsts: pl.DataFrame) -> None:
    """Rows matched by key hash (``kh``) to a ``first_kc`` must also share the check hash.

    Two different keys with one 64-bit hash are astronomically rare; should it happen,
    the row path (which compares the strings) takes over.
    """
    joined = rows.join(firsts, on="kh", how="inner")
    if not joined.is_empty() and (joined.get_column("kc") != joined.get_column("first_kc")).any():
        raise NotColumnar("two different keys share a 64-bit hash")


def _raw(frame: pl.DataFrame, layout: CsvLayout, name: str) -> pl.Series:
    """A column as the row reader sees it: "" for an empty cell, None for a missing column."""
    position = layout.index(name.lower())
    if position is None:
        return pl.repeat(None, frame.height, dtype=pl.String, eager=True).alias(name)
    return frame.get_column(f"c{position}").fill_null("").alias(name)


class _Locks:
    """Lock reasons, numbered as they are first met (0 is "not locked")."""

    def __init__(self, rule: LockRule) -> None:
        self.rule = rule
        self.reasons: list[str | None] = [None]
        self._codes: dict[str | None, int] = {None: 0}
        # The commonest input combination of the first block and its code.
        self._common: tuple[dict[str, object], int] | None = None

    def _code(self, values: Mapping[str, object]) -> int:
        reason = self.rule.lock(values)
        if reason not in self._codes:
            self._codes[reason] = len(self.reasons)
            self.reasons.append(reason)
        return self._codes[reason]

    def codes(self, frame: pl.DataFrame, layout: CsvLayout) -> pl.Series:
        rule = self.rule
        inputs = [_raw(frame, layout, name) for name in rule.columns]
        inputs += [
            pl.select(not_blank(pl.lit(_raw(frame, layout, name)))).to_series().alias(name)
            for name in rule.presence
        ]
        if not inputs:
            return pl.repeat(self._code({}), frame.height, dtype=pl.UInt16, eager=True)
        table = pl.DataFrame(inputs)
        if self._common is None:
            return self._decide(table, remember=True)
        # Nearly every row has the commonest combination (active, active, ...): rows equal
        # to it take its code by comparison; only the others are grouped and decided.
        common, code = self._common
        usual = table.select(
            pl.all_horizontal(
                pl.col(name).eq_missing(pl.lit(value, dtype=table.schema[name]))
                for name, value in common.items()
            )
        ).to_series()
        result = pl.repeat(code, table.height, dtype=pl.UInt16, eager=True)
        others = (~usual).arg_true()
        if others.is_empty():
            return result
        return result.scatter(others, self._decide(table[others], remember=False))

    def _decide(self, table: pl.DataFrame, *, remember: bool) -> pl.Series:
        """Codes for every row of ``table``: the lock function once per distinct row."""
        rule = self.rule
        distinct = table.unique()
        codes = []
        for row in distinct.iter_rows(named=True):
            values: dict[str, object] = {name: row[name] for name in rule.columns}
            values.update({name: "x" if row[name] else "" for name in rule.presence})
            codes.append(self._code(values))
        keyed = distinct.with_columns(lock=pl.Series(codes, dtype=pl.UInt16))
        joined = table.join(
            keyed, on=table.columns, how="left", maintain_order="left", nulls_equal=True
        )
        if remember:
            counts = joined.group_by([*table.columns, "lock"]).len()
            top = counts.sort("len", descending=True).row(0, named=True)
            self._common = ({name: top[name] for name in table.columns}, int(top["lock"]))
        return joined.get_column("lock")


def index_remote(
    layout: CsvLayout,
    *,
    shape: Shape,
    normaliser: ColumnNormaliser,
    lock: LockRule,
    checkpoint: Callable[[], None],
    keys: KeyStore,
) -> RemoteIndex:
    """Read and normalise the export block by block into a RemoteIndex (keys to ``keys``)."""
    locks = _Locks(lock)
    empty = normaliser.registry.empty()
    parts: list[pl.DataFrame] = []
    keyless: list[pl.Series] = []
    for block in layout.blocks():
        checkpoint()
        frame = block.frame
        values = normaliser.lenient(
            [
                Column(shape.value(i), _raw(frame, layout, name), kind)
                for i, (name, kind) in enumerate(zip(shape.fields, shape.kinds, strict=True))
            ],
            canonical="clean",
        )
        indexed = values.select(
            key=shape.key(),
            digest=shape.digest(),
            # An invalid remote set (null) counts as empty where sets add up.
            **{
                shape.additive_name(i): pl.col(shape.value(i)).fill_null(empty)
                for i in shape.additive
            },
            clean=pl.col("clean"),
        ).with_columns(
            lock=locks.codes(frame, layout),
            line=pl.int_range(block.first_line, block.first_line + frame.height, dtype=pl.UInt32),
        )
        keyless.append(indexed.filter(pl.col("key").is_null()).get_column("line"))
        keyed = indexed.filter(pl.col("key").is_not_null())
        keys.add(keyed)
        parts.append(
            keyed.with_columns(kh=pl.col("key").hash(), kc=key_check(pl.col("key"))).drop("key")
        )
    return _finish(parts, keyless, locks.reasons, shape, keys)


def _finish(
    parts: list[pl.DataFrame],
    keyless: Sequence[pl.Series],
    reasons: Sequence[str | None],
    shape: Shape,
    keys: KeyStore,
) -> RemoteIndex:
    schema = {
        "digest": pl.UInt64,
        "kh": pl.UInt64,
        "kc": pl.UInt32,
        **{shape.additive_name(i): pl.UInt32 for i in shape.additive},
        "clean": pl.Boolean,
        "lock": pl.UInt16,
        "line": pl.UInt32,
    }
    frame = pl.concat(parts, rechunk=False) if parts else pl.DataFrame(schema=schema)
    parts.clear()  # the concatenation holds the blocks' chunks; nothing else should
    # Kept sorted by key hash, so each local block finds its rows by binary search.
    # Sorted one column at a time, each unsorted column let go as soon as it is
    # gathered: the sort never holds two copies of the whole index. (One chunk per
    # block: random access into a hundred chunks costs a search per element, so each
    # column is made contiguous before it is gathered.)
    # A stable sort: a key met again sorts right after its first row (no hash table
    # over the whole index), and the first of each run is the one met first.
    hashes = frame.get_column("kh").rechunk()
    order = hashes.to_frame().select(pl.arg_sort_by("kh", maintain_order=True)).to_series()
    ordered_hashes = hashes.gather(order)
    first = ordered_hashes.ne_missing(ordered_hashes.shift(1))
    del hashes, ordered_hashes
    repeated = not first.all()
    columns: dict[str, pl.Series] = {name: frame.get_column(name) for name in frame.columns}
    del frame
    ordered = [columns.pop(name).rechunk().gather(order) for name in list(columns)]
    frame = pl.DataFrame(ordered)
    repeats = pl.DataFrame(schema={"kh": pl.UInt64, "kc": pl.UInt32, "line": pl.UInt32})
    if repeated:
        marked = frame.with_columns(first=first)
        repeats = marked.filter(~pl.col("first")).select("kh", "kc", "line")
        frame = marked.filter("first").drop("first")
        check_same_keys(
            repeats,
            frame.filter(pl.col("kh").is_in(repeats.get_column("kh").implode())).select(
                "kh", first_kc="kc"
            ),
        )
    lines = pl.concat(keyless) if keyless else pl.Series("line", [], dtype=pl.UInt32)
    return RemoteIndex(
        frame=frame.set_sorted("kh"),
        reasons=tuple(reasons),
        keyless=lines,
        repeats=repeats,
        keys=keys,
    )
