"""Export files of the Altcraft emulator, in the several layouts a client must survive.

Altcraft does not document the columns of ``profiles/get_all`` files, so the layout is
an option: column names as stored (``email``, ``phones``, ``_fname``) or as a person
would title them (``E-mail``, ``Phone``, ``First name``), columns in either order, CSV
with either delimiter, JSON as one array, JSON lines, or profiles nested under ``data``.
Subscriptions travel as a JSON list (as text in a CSV cell).
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson

from ._altcraft_state import Profile

__all__ = ["ExportLayout", "write_profiles"]

_TITLES = {
    "email": "E-mail",
    "phones": "Phone",
    "_fname": "First name",
    "_lname": "Last name",
    "_mname": "Middle name",
    "_id": "Profile ID",
    "subscriptions": "Subscriptions",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportLayout:
    """How the emulator writes an export file (the real layout is undocumented)."""

    names: Literal["stored", "titled"] = "stored"
    order: Literal["natural", "reversed"] = "natural"
    delimiter: Literal[",", ";"] = ","
    json_style: Literal["array", "lines", "nested"] = "array"
    rows_per_file: int = 100_000

    def __post_init__(self) -> None:
        if self.rows_per_file < 1:
            raise ValueError("rows_per_file must be at least 1")


def _columns(profiles: Sequence[Profile], layout: ExportLayout) -> list[str]:
    custom = sorted({name for p in profiles for name in p.fields} - {"email", "phones"})
    columns = ["_id", "email", "phones", *custom, "subscriptions"]
    return columns[::-1] if layout.order == "reversed" else columns


def _record(profile: Profile, column: str) -> object:
    if column == "_id":
        return profile.id
    if column == "subscriptions":
        return [s.to_json() for s in profile.subscriptions]
    return profile.fields.get(column, "")


def write_profiles(
    directory: Path,
    stem: str,
    profiles: Sequence[Profile],
    *,
    file_format: str,
    layout: ExportLayout,
) -> list[Path]:
    """Write the profiles into one or more files; returns their paths, in order."""
    columns = _columns(profiles, layout)
    names = [_TITLES.get(c, c) if layout.names == "titled" else c for c in columns]
    paths = []
    chunks = [
        profiles[i : i + layout.rows_per_file]
        for i in range(0, len(profiles), layout.rows_per_file)
    ]
    for number, chunk in enumerate(chunks or [profiles]):
        suffix = "csv" if file_format == "csv" else "json"
        path = directory / f"{uuid.uuid4().hex[:8]}-{stem}-{number + 1}.{suffix}"
        if file_format == "csv":
            with path.open("w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle, delimiter=layout.delimiter)
                writer.writerow(names)
                for profile in chunk:
                    writer.writerow(
                        [
                            orjson.dumps(v).decode() if isinstance(v, list) else v
                            for v in (_record(profile, c) for c in columns)
                        ]
                    )
        else:
            with path.open("wb") as handle:
                lines = [_json_line(p, columns, names, layout) for p in chunk]
                if layout.json_style == "lines":
                    handle.write(b"".join(line + b"\n" for line in lines))
                else:
                    handle.write(b"[\n" + b",\n".join(lines) + b"\n]\n")
        paths.append(path)
    return paths


def _json_line(
    profile: Profile, columns: Sequence[str], names: Sequence[str], layout: ExportLayout
) -> bytes:
    record = {name: _record(profile, column) for column, name in zip(columns, names, strict=True)}
    if layout.json_style == "nested":
        outer = {"_id", "subscriptions"}
        inner = {n: record[n] for c, n in zip(columns, names, strict=True) if c not in outer}
        nested = {n: record[n] for c, n in zip(columns, names, strict=True) if c in outer}
        return orjson.dumps({**nested, "data": inner})
    return orjson.dumps(record)
