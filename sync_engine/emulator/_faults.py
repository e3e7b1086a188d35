"""Fault injection: make chosen calls fail the way the real provider (or its proxy) does.

A rule fires *instead of* executing a call. Rules are either counted ("the next 2
importContacts calls answer retry_later") or probabilistic with a seeded
``random.Random``, so a flaky run is reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast, get_args

__all__ = ["FAULT_KINDS", "FaultInjector", "FaultKind", "FaultRule"]

FaultKind = Literal[
    "http_503",
    "http_500",
    "retry_later",
    "rate_limited",
    "invalid_arg",
    "access_denied",
    "not_enough_money",
]
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))


@dataclass(slots=True)
class FaultRule:
    """One rule: which method (None = any), what fails, how often."""

    kind: FaultKind
    method: str | None
    remaining: int | None
    probability: float | None
    skip: int


class FaultInjector:
    """Ordered fault rules; the first rule that fires for a call wins."""

    def __init__(self, *, seed: int = 0) -> None:
        self._random = random.Random(seed)  # noqa: S311 - reproducible test faults, not crypto
        self._rules: list[FaultRule] = []

    def add(
        self,
        *,
        kind: FaultKind,
        method: str | None = None,
        count: int | None = None,
        probability: float | None = None,
        after: int = 0,
    ) -> FaultRule:
        """Add a rule.

        ``count`` is how many times it fires (default 1; unlimited when only a
        ``probability`` is given); ``after`` lets that many matching calls through first.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
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
        if probability is not None and not isinstance(probability, int | float):
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
            if rule.skip > 0:
                rule.skip -= 1
                continue
            if rule.probability is not None and self._random.random() >= rule.probability:
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining == 0:
                    self._rules.remove(rule)
            return rule.kind
        return None
