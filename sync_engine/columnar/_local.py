"""Local records block by block: mapped, normalised strictly, checked, keyed.

The columnar twin of ``ContactBuilder.local``: the same values, the first failing field
(by mapping order) named by its local column with the normaliser's own message, the
key computed with failing fields blanked (so a rejected row still protects its key from
removal), and the synced list added to the list column of the key's channel.
"""

from __future__ import annotations

import polars as pl

from sync_engine.contact import ContactBuilder

from ._blocks import CsvLayout, NotColumnar
from ._normalise import SET_KINDS, Column, ColumnNormaliser
from ._shape import Shape

__all__ = ["LocalColumns"]


class LocalColumns:
    """Turns blocks of a local file into ``line, key, field, reason, v0...`` frames.

    ``field``/``reason`` are null for a valid row; a row without a key gets the key
    column and the builder's "no ... (the sync key)" reason.
    """

    def __init__(
        self,
        layout: CsvLayout,
        *,
        builder: ContactBuilder,
        shape: Shape,
        normaliser: ColumnNormaliser,
    ) -> None:
        self.shape = shape
        self._builder = builder
        self._normaliser = normaliser
        self._positions: list[int | None] = []
        for name in shape.fields:
            column = builder.mapping.get(name)
            position = layout.index(column) if column is not None else None
            if column is not None and position is None:
                # The row path raises SourceError naming the column; let it.
                raise NotColumnar(f"mapped column {column!r} is not in the header")
            self._positions.append(position)

    def _columns(self, raw: pl.DataFrame, *, sets: bool) -> list[Column]:
        """The raw cells of the set fields (``sets``) or of the scalar ones."""
        shape = self.shape
        list_id = self._builder.implicit_list_id
        columns: list[Column] = []
        for index, (name, kind) in enumerate(zip(shape.fields, shape.kinds, strict=True)):
            if (kind in SET_KINDS) != sets:
                continue
            position = self._positions[index]
            cells = (
                raw.get_column(f"c{position}").fill_null("")
                if position is not None
                else pl.repeat(None, raw.height, dtype=pl.String, eager=True)
            )
            extra = list_id if name in _LIST_FIELDS and kind in SET_KINDS else None
            columns.append(Column(shape.value(index), cells, kind, extra))
        return columns

    def sets(self, raw: pl.DataFrame) -> pl.DataFrame:
        """The tag and id lists of a block's records (``raw``, as in ``Block.frame``),
        normalised (with their ``:error`` and ``:added`` columns): the same whether or
        not ``frame`` trusts the scalars, so worked out once a block."""
        return self._normaliser.strict(self._columns(raw, sets=True))

    def frame(
        self, raw: pl.DataFrame, sets: pl.DataFrame, lines: pl.Series, *, trusted: bool = False
    ) -> pl.DataFrame:
        """Records (``raw``, some or all of a block's, at ``lines``), with ``sets`` from
        ``sets(raw)``; ``trusted``: their scalar cells are known to be canonical (see
        ``ColumnNormaliser.strict``)."""
        shape, builder = self.shape, self._builder
        scalars = self._columns(raw, sets=False)
        parts = [self._normaliser.strict(scalars, trusted=trusted)] if scalars else []
        if sets.width:
            parts.append(sets)
        values = pl.concat(parts, how="horizontal")
        # The mapped fields that can fail, in mapping order (trusted scalars cannot).
        failing = [
            i
            for i, position in enumerate(self._positions)
            if position is not None and f"{shape.value(i)}:error" in values.columns
        ]
        errors = [pl.col(f"{shape.value(i)}:error") for i in failing]
        fields = [
            pl.when(pl.col(f"{shape.value(i)}:error").is_not_null()).then(
                pl.lit(builder.mapping[shape.fields[i]])
            )
            for i in failing
        ]
        frame = values.with_columns(
            line=lines,
            reason=pl.coalesce(errors) if errors else pl.lit(None, dtype=pl.String),
            field=pl.coalesce(fields) if fields else pl.lit(None, dtype=pl.String),
            key=shape.key(),
        )
        missing = pl.col("reason").is_null() & pl.col("key").is_null()
        frame = frame.with_columns(
            field=pl.when(missing).then(pl.lit(builder.key_column)).otherwise(pl.col("field")),
            reason=pl.when(missing)
            .then(pl.lit(f"no {builder.key_label} (the sync key)"))
            .otherwise(pl.col("reason")),
            **self._implicit_list(frame.columns),
        )
        return frame.drop(c for c in frame.columns if ":" in c)

    def _implicit_list(self, columns: list[str]) -> dict[str, pl.Expr]:
        """``ContactBuilder._add_implicit_list``: the synced list joins the list column of
        the first present channel (email, then phone) that the synced fields include."""
        shape = self.shape
        email, phone = shape.position("email"), shape.position("phone")
        email_lists, phone_lists = (
            shape.position("email_list_ids"),
            shape.position("phone_list_ids"),
        )
        has_email = pl.col(shape.value(email)) != "" if email is not None else pl.lit(False)
        has_phone = pl.col(shape.value(phone)) != "" if phone is not None else pl.lit(False)
        to_email = has_email & pl.lit(email_lists is not None)
        to_phone = ~to_email & has_phone & pl.lit(phone_lists is not None)
        updates = {}
        for target, when in ((email_lists, to_email), (phone_lists, to_phone)):
            name = shape.value(target) if target is not None else ""
            if f"{name}:added" not in columns:
                continue
            # Only a value that parsed gets the list ("" stays "" on a rejected row).
            parsed = pl.col(f"{name}:error").is_null()
            updates[name] = (
                pl.when(when & parsed).then(pl.col(f"{name}:added")).otherwise(pl.col(name))
            )
        return updates


_LIST_FIELDS = frozenset({"email_list_ids", "phone_list_ids"})
