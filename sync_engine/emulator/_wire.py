"""The UniSender wire format on the server side: parameters in, JSON answers out.

Real clients send the same call in several shapes (query string, urlencoded or multipart
body, ``field_names[0]`` or ``field_names[]``, brackets percent-encoded or not); all of
them are read into one ordered list of pairs so the method handlers see one thing.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import orjson
from aiohttp import web

from ._model import ArgumentError

__all__ = [
    "Brand",
    "Params",
    "RecordedRequest",
    "error_response",
    "json_response",
    "read_params",
]

Brand = Literal["unisender", "selzy"]
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_V = TypeVar("_V")
_INDEXED = re.compile(r"(?P<name>[A-Za-z_]+)\[(?P<i>\d*)\](?:\[(?P<j>\d+)\])?")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One API call as the emulator received it, with ``api_key`` removed."""

    method: str
    http_method: str
    items: tuple[tuple[str, str], ...]
    content_type: str
    at: float

    @property
    def params(self) -> dict[str, str]:
        """Parameters by name; a repeated name keeps its last value."""
        return dict(self.items)

    def getall(self, name: str) -> list[str]:
        """Every value of a (repeated) parameter, in arrival order."""
        return [value for key, value in self.items if key == name]


async def read_params(request: web.Request) -> list[tuple[str, str]]:
    """Query pairs, then body pairs (urlencoded or multipart); other bodies are ignored."""
    items = list(request.query.items())
    if request.method == "POST" and request.content_type in _FORM_TYPES:
        form = await request.post()
        for key, value in form.items():
            if not isinstance(value, str):
                raise ArgumentError(f"Parameter {key!r} must be a value, not a file upload")
            items.append((key, value))
    return items


class Params:
    """Read access to one call's parameters, including the PHP-style array syntax."""

    def __init__(self, items: Sequence[tuple[str, str]]) -> None:
        self._items = list(items)
        self._last = dict(self._items)

    def get(self, name: str) -> str | None:
        """The value of a single parameter (the body wins over the query)."""
        return self._last.get(name)

    def text(self, name: str) -> str | None:
        """A trimmed value, None when absent or blank."""
        value = self._last.get(name)
        value = value.strip() if value is not None else None
        return value or None

    def flag(self, name: str) -> bool:
        """A 0/1 argument; absent means 0."""
        value = self.text(name)
        if value is None or value == "0":
            return False
        if value == "1":
            return True
        raise ArgumentError(f"Argument {name} must be 0 or 1")

    def integer(self, name: str) -> int | None:
        """A whole-number argument, None when absent."""
        value = self.text(name)
        if value is None:
            return None
        if not value.isdigit():
            raise ArgumentError(f"Argument {name} must be a whole number")
        return int(value)

    def array(self, name: str) -> list[str]:
        """``name[]`` repeated or ``name[0]``, ``name[1]``...; indexes must run 0..N-1."""
        plain: list[str] = []
        indexed: dict[int, str] = {}
        for key, value in self._items:
            match = _INDEXED.fullmatch(key)
            if match is None or match["name"] != name or match["j"] is not None:
                continue
            if match["i"] == "":
                plain.append(value)
            else:
                indexed[int(match["i"])] = value
        if plain and indexed:
            raise ArgumentError(f"{name}[] and {name}[N] cannot be mixed")
        return plain or _dense(indexed, name)

    def matrix(self, name: str, width: int) -> list[list[str]]:
        """``name[i][j]`` as rows; a missing cell is empty, rows must run 0..N-1."""
        cells: dict[int, dict[int, str]] = {}
        for key, value in self._items:
            match = _INDEXED.fullmatch(key)
            if match is None or match["name"] != name or match["j"] is None or match["i"] == "":
                continue
            column = int(match["j"])
            if column >= width:
                raise ArgumentError(f"{name}[{match['i']}] has more cells than field_names")
            cells.setdefault(int(match["i"]), {})[column] = value
        rows = _dense(cells, name)
        return [[row.get(j, "") for j in range(width)] for row in rows]


def _dense(indexed: dict[int, _V], name: str) -> list[_V]:
    if sorted(indexed) != list(range(len(indexed))):
        raise ArgumentError(f"{name} indexes must run from 0 without gaps")
    return [indexed[i] for i in range(len(indexed))]


def json_response(
    body: object, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON answer serialised with orjson."""
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def error_response(
    code: str, message: str, *, headers: dict[str, str] | None = None
) -> web.Response:
    """The provider's error shape: HTTP 200, an HTML-escaped message and a code."""
    return json_response(
        {"error": html.escape(message, quote=False), "code": code}, headers=headers
    )
