"""Fault injection: make chosen calls fail the way the real provider (or its network) does.

A rule fires *instead of* (or around) executing a call. Rules are either counted ("the
next 2 importContacts calls answer retry_later") or probabilistic with a seeded
``random.Random``, so a flaky run is reproducible. A rule of kind ``any`` picks one of
the survivable kinds at random each time it fires: the soak test's "10% of everything".

Each kind belongs to the sites where it makes sense (an API call, an export poll, the
export download); a rule is skipped, not spent, at a site its kind does not fit.
Text specs (``sync-engine emulate --faults``) read ``KIND[@METHOD][=PROBABILITY|*COUNT]``,
comma-separated, e.g. ``any=0.1`` or ``hang@importContacts*2,link_expired@download``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, cast, get_args

from aiohttp import web

__all__ = [
    "ANY",
    "DOWNLOAD",
    "FAULT_KINDS",
    "SURVIVABLE_KINDS",
    "FaultInjector",
    "FaultKind",
    "FaultRule",
    "parse_fault_spec",
]

FaultKind = Literal[
    # answers of the provider's API (HTTP 200 with an error code)
    "retry_later",
    "rate_limited",  # Retry-After only when the emulator's options set one
    "rate_limited_retry_after",  # always with a Retry-After header
    "invalid_arg",
    "access_denied",
    "not_enough_money",
    # a proxy or the network in front of it
    "http_500",
    "http_502",
    "http_503",
    "http_504",
    "connection_reset",  # the connection closes before any answer
    "hang",  # no answer until the client's timeout fires
    "slow",  # a correct answer, late
    "malformed_json",  # a 200 whose body is not JSON; the call was not executed
    "truncated_json",  # the call was executed, its answer cut in half
    "lost_answer",  # the call was executed, then the connection closed
    "duplicated",  # the call was executed twice (a proxy resent it), answered once
    # the export life cycle
    "export_failed",  # getTaskResult reports an undocumented failure status
    "export_stalled",  # the task never completes
    "export_short",  # the file holds only the first half of the rows, cleanly cut
    "link_expired",  # the download link answers 404
    "download_cut",  # the download stops mid-file, short of its Content-Length
]
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))
ANY = "any"
DOWNLOAD = "download"  # the method name the export download is matched as

_FATAL: frozenset[str] = frozenset({"invalid_arg", "access_denied", "not_enough_money"})
# What a correct client must ride out: everything but the answers that stop a run or
# reject a batch for good.
SURVIVABLE_KINDS: tuple[FaultKind, ...] = tuple(
    sorted(cast(FaultKind, k) for k in FAULT_KINDS - _FATAL)
)
_NETWORK: frozenset[str] = frozenset(
    {"http_500", "http_502", "http_503", "http_504", "connection_reset", "hang", "slow"}
)
_DOWNLOAD_KINDS = _NETWORK | {"link_expired", "download_cut"}
_EXPORT_ONLY = {
    "export_failed": "async/getTaskResult",
    "export_stalled": "async/exportContacts",
    "export_short": "async/exportContacts",
}


def fits(kind: str, method: str) -> bool:
    """Whether ``kind`` can happen at a call of ``method`` (or at the download)."""
    if method == DOWNLOAD:
        return kind in _DOWNLOAD_KINDS
    if kind in ("link_expired", "download_cut"):
        return False
    where = _EXPORT_ONLY.get(kind)
    return where is None or where == method


_generic_fits = fits  # FaultInjector's default, under a name its parameter does not shadow


@dataclass(slots=True)
class FaultRule:
    """One rule: which method (None = any), what fails (``any``: a random kind), how often."""

    kind: FaultKind | Literal["any"]
    method: str | None
    remaining: int | None
    probability: float | None
    skip: int


class FaultInjector:
    """Ordered fault rules; the first rule that fires for a call wins.

    ``injected`` counts the faults served, by kind, so a test can print and check them.
    ``fits`` says where a kind can happen; an emulator whose export methods have other
    names than UniSender's passes its own (the default is the module's ``fits``).
    """

    def __init__(self, *, seed: int = 0, fits: Callable[[str, str], bool] | None = None) -> None:
        self._random = random.Random(seed)  # noqa: S311 - reproducible test faults, not crypto
        self._fits = _generic_fits if fits is None else fits
        self._rules: list[FaultRule] = []
        self.injected: Counter[str] = Counter()

    def add(
        self,
        *,
        kind: FaultKind | Literal["any"],
        method: str | None = None,
        count: int | None = None,
        probability: float | None = None,
        after: int = 0,
    ) -> FaultRule:
        """Add a rule.

        ``count`` is how many times it fires (default 1; unlimited when only a
        ``probability`` is given); ``after`` lets that many matching calls through first.
        """
        if kind != ANY and kind not in FAULT_KINDS:
            raise ValueError(
                f"unknown fault kind {kind!r}; expected 'any' or one of {sorted(FAULT_KINDS)}"
            )
        if count is not None and count < 1:
            raise ValueError("fault count must be at least 1")
        if probability is not None and not 0.0 < probability <= 1.0:
            raise ValueError("fault probability must be in (0, 1]")
        if after < 0:
            raise ValueError("fault 'after' must not be negative")
        if count is None and probability is None:
            count = 1
        rule = FaultRule(kind, method, count, probability, after)
        self._rules.append(rule)
        return rule

    def add_spec(self, spec: Mapping[str, object]) -> FaultRule:
        """Add a rule from a JSON object (the admin endpoint's body)."""
        unknown = set(spec) - {"kind", "method", "count", "probability", "after"}
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        kind, method = spec.get("kind"), spec.get("method")
        count, probability = spec.get("count"), spec.get("probability", None)
        after = spec.get("after", 0)
        if not isinstance(kind, str) or (method is not None and not isinstance(method, str)):
            raise ValueError("fault 'kind' must be a string and 'method' a string or null")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
            raise ValueError("fault 'count' must be an integer")
        if probability is not None and (
            not isinstance(probability, int | float) or isinstance(probability, bool)
        ):
            raise ValueError("fault 'probability' must be a number")
        if not isinstance(after, int) or isinstance(after, bool):
            raise ValueError("fault 'after' must be an integer")
        return self.add(
            kind=cast(FaultKind, kind),
            method=method,
            count=count,
            probability=None if probability is None else float(probability),
            after=after,
        )

    def arm(self, spec: str) -> list[FaultRule]:
        """Add the rules of a text spec (``parse_fault_spec``); all or none on a bad one."""
        parsed = parse_fault_spec(spec)
        trial = FaultInjector(fits=self._fits)
        for rule in parsed:
            trial.add_spec(rule)
        return [self.add_spec(rule) for rule in parsed]

    def clear(self) -> None:
        """Remove every rule."""
        self._rules.clear()

    @property
    def rules(self) -> list[FaultRule]:
        """The rules still armed, in order."""
        return list(self._rules)

    def take(self, method: str) -> FaultKind | None:
        """The fault this call must answer with, if any; spends one firing of that rule."""
        for rule in self._rules:
            if rule.method is not None and rule.method != method:
                continue
            fit = self._fits
            choices = [k for k in SURVIVABLE_KINDS if fit(k, method)] if rule.kind == ANY else []
            if rule.kind != ANY and not fit(rule.kind, method):
                continue
            if rule.skip > 0:
                rule.skip -= 1
                continue
            if rule.probability is not None and self._random.random() >= rule.probability:
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining == 0:
                    self._rules.remove(rule)
            kind = self._random.choice(choices) if rule.kind == ANY else rule.kind
            self.injected[kind] += 1
            return cast(FaultKind, kind)
        return None


def parse_fault_spec(text: str) -> list[dict[str, object]]:
    """``KIND[@METHOD][=PROBABILITY|*COUNT]``, comma-separated, as ``add_spec`` objects."""
    specs: list[dict[str, object]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        spec: dict[str, object] = {}
        head, amount = part, ""
        for mark in ("=", "*"):
            if mark in part:
                head, amount = part.split(mark, 1)
                try:
                    if mark == "=":
                        spec["probability"] = float(amount)
                    else:
                        spec["count"] = int(amount)
                except ValueError:
                    raise ValueError(f"fault {part!r}: {amount!r} is not a number") from None
                break
        kind, _, method = head.partition("@")
        spec["kind"] = kind.strip()
        if method.strip():
            spec["method"] = method.strip()
        specs.append(spec)
    if not specs:
        raise ValueError("empty fault spec; expected e.g. 'any=0.1' or 'http_503@importContacts*2'")
    return specs


# What a proxy in front of any provider's API answers for these kinds: an HTML page.
_PROXY_PAGES: dict[str, tuple[int, str]] = {
    "http_500": (500, "500 Internal Server Error"),
    "http_502": (502, "502 Bad Gateway"),
    "http_503": (503, "503 Service Temporarily Unavailable"),
    "http_504": (504, "504 Gateway Time-out"),
}


def proxy_error_page(kind: str) -> web.Response | None:
    """The HTML page a proxy answers for an ``http_5xx`` kind; None for the API's own."""
    if kind not in _PROXY_PAGES:
        return None
    status, title = _PROXY_PAGES[kind]
    page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
    return web.Response(status=status, text=page, content_type="text/html")
