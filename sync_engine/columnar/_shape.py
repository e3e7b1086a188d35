"""What a plan compares, as polars expressions over value columns ``v0``, ``v1``...

Both sides name the normalised value of ``fields[i]`` ``v{i}``; the key, the digest of
the exactly-compared fields and the additive sets are computed from those columns with
the same expressions on both sides, so the comparison itself cannot drift apart.
"""

from __future__ import annotations

import polars as pl

from sync_engine.contact import ContactBuilder
from sync_engine.schema import FieldKind

__all__ = ["Shape"]


class Shape:
    """The synced fields of one run, split by how they compare."""

    def __init__(self, builder: ContactBuilder, additive: frozenset[str]) -> None:
        self.fields = builder.fields
        self.kinds: tuple[FieldKind, ...] = tuple(builder.schema.kind(f) for f in self.fields)
        self.exact = tuple(i for i, f in enumerate(self.fields) if f not in additive)
        self.additive = tuple(i for i, f in enumerate(self.fields) if f in additive)
        self.key_kind = builder.key_kind
        self.key_field = builder.key_field

    @staticmethod
    def value(index: int) -> str:
        return f"v{index}"

    def position(self, name: str) -> int | None:
        return self.fields.index(name) if name in self.fields else None

    def _present(self, name: str) -> pl.Expr:
        """The field's value where it is a non-empty string, else null."""
        index = self.position(name)
        if index is None:
            return pl.lit(None, dtype=pl.String)
        column = pl.col(self.value(index))
        return pl.when(column != "").then(column)

    def key(self) -> pl.Expr:
        """``ContactBuilder._key``: email, phone, the first of the two present, or a field."""
        if self.key_field is not None:
            return self._present(self.key_field)
        if self.key_kind == "email":
            return self._present("email")
        if self.key_kind == "phone":
            return self._present("phone")
        return pl.coalesce(self._present("email"), self._present("phone"))

    def digest(self) -> pl.Expr:
        """One 64-bit hash of the exactly-compared fields (like ``Differ._digest``)."""
        if not self.exact:
            return pl.lit(0, dtype=pl.UInt64)
        return pl.struct([self.value(i) for i in self.exact]).hash()

    @staticmethod
    def additive_name(index: int) -> str:
        return f"a{index}"
