"""Altcraft's wire format: JSON bodies measured as they are built, ``{error, ...}`` answers.

A body never exceeds the configured limit: each profile is encoded once, and a batch is
cut into parts whose exact encoded size fits (``split_body``). The cut depends only on the
batch and the config, so settling a lost answer later finds the same parts again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from sync_engine.errors import (
    BatchRejectedError,
    FatalProviderError,
    ProviderError,
    RetriableProviderError,
)
from sync_engine.normalise import FieldValue
from sync_engine.providers.base import RowOutcome, RowStatus

__all__ = [
    "BODY_TOO_LARGE",
    "Body",
    "encode_profile",
    "parse_answer",
    "row_outcomes",
    "split_body",
]

BODY_TOO_LARGE = "http: request body too large"
# The sync's field name -> Altcraft's profile field, where they differ. Altcraft's system
# fields start with "_", which [mapping] names may not, so they get plain names here.
WIRE_NAMES: Mapping[str, str] = {
    "phone": "phones",
    "first_name": "_fname",
    "last_name": "_lname",
    "middle_name": "_mname",
}


def encode_profile(
    fields: Mapping[str, FieldValue],
    *,
    resource_id: int | None,
    subscribe: Sequence[str],
    wrap: bool,
) -> bytes:
    """One profile as JSON. ``wrap`` puts it in ``{"data": ...}`` as the trigger call wants.

    Subscriptions carry no ``status``: Altcraft leaves an existing subscription's status
    alone when none is sent, so an update never resubscribes anyone.
    """
    data: dict[str, object] = {
        WIRE_NAMES.get(name, name): ", ".join(sorted(value))
        if isinstance(value, frozenset)
        else value
        for name, value in fields.items()
    }
    subscriptions = []
    for channel in subscribe:
        address = fields.get(channel)
        if resource_id is not None and isinstance(address, str) and address:
            subscriptions.append({"channel": channel, channel: address, "resource_id": resource_id})
    if subscriptions:
        data["subscriptions"] = subscriptions
    return orjson.dumps({"data": data} if wrap else data)


@dataclass(frozen=True, slots=True)
class Body:
    """One request's body and the batch rows it carries (indexes into the batch)."""

    payload: bytes
    rows: tuple[int, ...]


def split_body(
    envelope: Mapping[str, object], profiles: Sequence[bytes], *, limit: int
) -> tuple[list[Body], list[int]]:
    """Bodies of at most ``limit`` bytes carrying every profile, in order; and the rows
    that alone would pass the limit (never sent).

    The size is computed exactly: the envelope's bytes around ``"data":[`` and ``]}``, each
    profile's bytes, and the commas between them.
    """
    shell = orjson.dumps({**envelope, "data": []})
    assert shell.endswith(b"[]}")
    head, tail = shell[:-2], shell[-2:]
    fixed = len(head) + len(tail)
    bodies: list[Body] = []
    oversize: list[int] = []
    rows: list[int] = []
    size = fixed

    def flush() -> None:
        nonlocal rows, size
        if rows:
            payload = head + b",".join(profiles[i] for i in rows) + tail
            assert len(payload) == size <= limit
            bodies.append(Body(payload, tuple(rows)))
        rows, size = [], fixed

    for index, profile in enumerate(profiles):
        if fixed + len(profile) > limit:
            oversize.append(index)
            continue
        extra = len(profile) + (1 if rows else 0)
        if size + extra > limit:
            flush()
            extra = len(profile)
        rows.append(index)
        size += extra
    flush()
    return bodies, oversize


def parse_answer(
    status: int, body: bytes, *, method: str, scrub: Callable[[str], str]
) -> dict[str, Any]:
    """The answer object of a call, or the right exception for its error.

    Altcraft puts an error code in the body (``error`` 0 is success) and may also set the
    HTTP status; either one decides. 401/403 (token) and 402 (tariff) are fatal.
    """
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        if status in (401, 403):
            raise FatalProviderError(
                f"{method}: HTTP {status}: the token was refused", code=f"http_{status}"
            )
        if status == 200:
            snippet = scrub(body[:120].decode("utf-8", "replace"))
            raise RetriableProviderError(f"{method}: the answer is not a JSON object: {snippet!r}")
        raise FatalProviderError(
            f"{method}: HTTP {status}; check [provider] base_url", code=f"http_{status}"
        )
    code = _code(answer.get("error"))
    if code == 0 and status == 200:
        return answer
    code = code or status
    text = scrub(str(answer.get("error_text") or "")).strip()
    debug = scrub(str(answer.get("error_debug") or "")).strip()
    raise error_for(code, text, debug, method=method)


def error_for(code: int, text: str, debug: str, *, method: str) -> ProviderError:
    """The exception for an Altcraft error code."""
    detail = "; ".join(part for part in (text, debug) if part) or "no error text"
    message = f"{method}: error {code}: {detail}"
    if code in (401, 403):
        return FatalProviderError(
            f"{message} (the token is missing, wrong or lacks the rights)", code=f"altcraft_{code}"
        )
    if code == 402:
        return FatalProviderError(
            f"{method}: the Altcraft tariff limit is reached (error 402: {detail})",
            code="tariff_limit",
        )
    if code == 429 or code >= 500:
        return RetriableProviderError(message, code=f"altcraft_{code}")
    if code == 400 and debug == BODY_TOO_LARGE:
        return BatchRejectedError(
            f"{message}; the server's body limit is below [provider] max_body_bytes",
            code="body_too_large",
        )
    return BatchRejectedError(message, code=f"altcraft_{code}")


def _code(value: object) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return 0 if value in (None, "") else -1


def row_outcomes(results: object, rows: Sequence[int]) -> tuple[list[RowOutcome], list[str]]:
    """Per-row verdicts from a ``result`` list (one entry per profile sent, in order).

    An entry with a non-zero ``error`` is a rejected row; a missing or short list is
    taken as success for the rows it does not cover, with a warning (the whole call
    succeeded, and Altcraft does not document the list's shape).
    """
    outcomes: list[RowOutcome] = []
    warnings: list[str] = []
    entries = results if isinstance(results, list) else []
    if len(entries) != len(rows):
        warnings.append(
            f"Altcraft answered {len(entries)} profile results for {len(rows)} profiles sent;"
            " the rows without a result are counted as applied"
        )
    for index, entry in zip(rows, entries, strict=False):
        if not isinstance(entry, dict):
            continue
        code = _code(entry.get("error"))
        if code:
            text = str(entry.get("error_text") or "rejected")
            outcomes.append(RowOutcome(index, RowStatus.REJECTED, f"altcraft_{code}", text))
    return outcomes, warnings
