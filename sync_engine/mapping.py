"""Raw source rows -> provider field values, by the ``[mapping]`` rules.

The result is a row keyed by provider field, ready for the contact builder to normalise.
A field whose NULL is kept (``null = "keep"``) is absent from that row: absent means
"leave the provider's value alone", both in the diff and in the upload.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass

from .config import SourceSettings
from .records import RowProblem, SourceRow
from .schema import FieldKind
from .sources._types import UnmappableValueError, ValueFormat, to_field_value
from .transforms import FieldRule, Transform, apply_transforms

__all__ = ["RowMapper"]

_SETS = (FieldKind.TAGS, FieldKind.IDS)


@dataclass(frozen=True, slots=True)
class _Field:
    """One rule, resolved against the source's settings once, not per row."""

    name: str
    column: str
    default: str | None
    keep_null: bool
    takes_list: bool
    parse_dates: bool
    fmt: ValueFormat
    split: str | None
    transforms: tuple[Transform, ...]
    text_as_is: bool  # text needs no work (the common case, kept fast)


class RowMapper:
    """Applies every field's rule to a row; the first bad value makes a RowProblem."""

    def __init__(
        self,
        rules: Mapping[str, FieldRule],
        *,
        kinds: Mapping[str, FieldKind],
        settings: SourceSettings,
    ) -> None:
        zone = zoneinfo.ZoneInfo(settings.timezone)
        self._fields = tuple(
            self._resolve(name, rule, kinds[name], settings, zone) for name, rule in rules.items()
        )
        self.columns: Mapping[str, str] = {f.name: f.column for f in self._fields}

    @staticmethod
    def _resolve(
        name: str,
        rule: FieldRule,
        kind: FieldKind,
        settings: SourceSettings,
        zone: zoneinfo.ZoneInfo,
    ) -> _Field:
        null = rule.null or settings.null
        if rule.date_format is not None:
            # One format for the field: dates and timestamps alike.
            fmt = ValueFormat(rule.date_format, rule.date_format, zone)
        else:
            fmt = ValueFormat(settings.date_format, settings.datetime_format, zone)
        return _Field(
            name=name,
            column=rule.column,
            default=rule.default,
            # List ids never keep: the synced list is added to every contact regardless.
            keep_null=null == "keep" and kind is not FieldKind.IDS,
            takes_list=kind in _SETS,
            parse_dates=rule.date_format is not None,
            fmt=fmt,
            split=rule.split,
            transforms=rule.transforms,
            text_as_is=rule.date_format is None and rule.split is None and not rule.transforms,
        )

    @property
    def optional_fields(self) -> frozenset[str]:
        """Fields a mapped row may lack (their NULL is kept): the diff must allow that."""
        return frozenset(f.name for f in self._fields if f.keep_null)

    def map(self, row: SourceRow) -> tuple[SourceRow, RowProblem | None]:
        """The mapped row, and the first problem found (its field is then left empty).

        The row comes back even with a problem, so that the caller can still learn the
        contact's key and protect it from removal.
        """
        values: dict[str, object] = {}
        problem: RowProblem | None = None
        raw_values = row.values
        for field in self._fields:
            raw = raw_values.get(field.column)
            if field.default is not None and _blank(raw):
                raw = field.default
            if raw is None:
                if not field.keep_null:
                    values[field.name] = None
                continue
            if field.text_as_is and type(raw) is str:
                values[field.name] = raw
                continue
            try:
                values[field.name] = self._value(field, raw)
            except UnmappableValueError as error:
                values[field.name] = None
                if problem is None:
                    problem = RowProblem(row.origin, field.column, f"{field.name}: {error}")
        return SourceRow(row.origin, values), problem

    @staticmethod
    def _value(field: _Field, raw: object) -> str | list[str] | None:
        value = to_field_value(raw, field.fmt, parse_dates=field.parse_dates)
        if isinstance(value, list):
            if not field.takes_list:
                raise UnmappableValueError(
                    f"an array cannot go into the text field {field.name}; map it to tags or"
                    " list ids, or join it in the query (array_to_string)"
                )
        elif value is not None and field.split is not None:
            value = value.split(field.split)
        if field.transforms and value is not None:
            value = apply_transforms(value, field.transforms)
        return value


def _blank(raw: object) -> bool:
    """NULL, blank text, or an array of nothing: what a default replaces."""
    if raw is None:
        return True
    if isinstance(raw, str):
        return not raw.strip()
    if isinstance(raw, list | tuple):
        return all(_blank(item) for item in raw)
    return False
