"""Per-field rules of the ``[mapping]`` table: which column, and what to do to its value.

The simple form ``Name = "first_name"`` is a rule with nothing to do. The table form adds
transforms, applied in one documented order so that a config reads the same to everyone:

1. ``default``: replaces a NULL, blank or empty value;
2. NULL policy (``null``): a NULL left without a default is cleared (sent empty) or kept
   (the field is left out for that row, so the provider's value stays as it is);
3. type mapping (see ``sources._types``); ``date_format`` also makes an ISO 8601 text a date;
4. ``split``: a delimited text becomes a list (tags or list ids);
5. ``transforms``: ``trim``, ``lower``, ``upper``, on the text or on each list item.

Validation lives here and raises ``ValueError`` with a plain reason; the config loader
adds the file, section and key.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "FieldRule",
    "NullPolicy",
    "Transform",
    "apply_transforms",
    "check_date_format",
    "parse_transforms",
]

NullPolicy = Literal["clear", "keep"]


class Transform(enum.Enum):
    """A text transform; order within a rule is the order given."""

    TRIM = "trim"
    LOWER = "lower"
    UPPER = "upper"


@dataclass(frozen=True, kw_only=True)
class FieldRule:
    """How one provider field is filled from one local column.

    ``null`` and ``date_format`` of ``None`` defer to the source's settings.
    """

    column: str
    transforms: tuple[Transform, ...] = ()
    default: str | None = None
    split: str | None = None
    date_format: str | None = None
    null: NullPolicy | None = None

    @property
    def plain(self) -> bool:
        """True for the simple ``field = "column"`` form: the value passes untouched."""
        return (
            not self.transforms
            and self.default is None
            and self.split is None
            and self.date_format is None
            and self.null is None
        )

    def describe(self) -> str:
        """``column (trim, lower, default 'x')`` for ``check-config``."""
        options = [t.value for t in self.transforms]
        if self.default is not None:
            options.append(f"default {self.default!r}")
        if self.split is not None:
            options.append(f"split on {self.split!r}")
        if self.date_format is not None:
            options.append(f"date as {self.date_format!r}")
        if self.null is not None:
            options.append(f"null {self.null}")
        return self.column + (f" ({', '.join(options)})" if options else "")


def parse_transforms(names: Sequence[object]) -> tuple[Transform, ...]:
    """Transform names from the config, checked: known names, no lower with upper."""
    known = {t.value: t for t in Transform}
    result: list[Transform] = []
    for name in names:
        if not isinstance(name, str) or name not in known:
            raise ValueError(f"unknown transform {name!r} (known: {', '.join(known)})")
        result.append(known[name])
    if Transform.LOWER in result and Transform.UPPER in result:
        raise ValueError("lower and upper contradict each other; pick one")
    return tuple(result)


# strftime directives whose output is the same on every platform and locale.
_DIRECTIVES = frozenset("dmYyHMSjFT%")
_DIRECTIVE = re.compile(r"%(.?)")


def check_date_format(text: str) -> str:
    """A strftime pattern of portable directives only; raises ValueError naming the bad one.

    Platform- and locale-dependent directives (``%c``, ``%b``, ``%Z``...) are refused:
    a value that renders differently on another machine would never converge.
    """
    if not text:
        raise ValueError("date format is empty")
    directives = _DIRECTIVE.findall(text)
    if not directives:
        raise ValueError(f"date format {text!r} has no % directive (e.g. %d.%m.%Y)")
    for directive in directives:
        if directive not in _DIRECTIVES:
            shown = f"%{directive}" if directive else "a lone % at the end"
            raise ValueError(
                f"date format {text!r}: {shown} is not supported"
                " (use %d %m %Y %y %H %M %S %j %F %T, and %% for a percent sign)"
            )
    return text


def apply_transforms(value: str | list[str], transforms: Sequence[Transform]) -> str | list[str]:
    """Apply text transforms to a text or to each item of a list."""
    if isinstance(value, list):
        return [_apply(item, transforms) for item in value]
    return _apply(value, transforms)


def _apply(text: str, transforms: Sequence[Transform]) -> str:
    for transform in transforms:
        if transform is Transform.TRIM:
            text = text.strip()
        elif transform is Transform.LOWER:
            text = text.lower()
        else:
            text = text.upper()
    return text
