"""A string that never shows itself: API keys, tokens, passwords."""

from __future__ import annotations

__all__ = ["Secret"]


class Secret:
    """Holds a secret value; ``repr``/``str``/format all print a mask.

    The value leaves only through :meth:`reveal`, which makes every place that puts a
    secret on the wire easy to find with grep.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value, for the one place that sends it to the provider."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, format_spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        # Pickling keeps the value (for worker processes) but never prints it.
        return (Secret, (self._value,))
