"""One field validator set for everything that reads input: the playbook (``playbook``), the
inventory (``inventory/``) and the backup manifests (``backup/store``).

Each reader keeps its own messages (they are part of its interface, and tests pin them); what
they share lives here once: which values are of a kind (a boolean is never a number), which
characters no one-line field may hold, how a value is shown in a message, and ``fail``, with
the location first, as every error of the tree takes it.
"""

from __future__ import annotations

import math
import unicodedata
from typing import NoReturn

from .errors import InputError, SourceLocation

#: Unicode categories refused in one-line text: control, format (bidi overrides, zero-width),
#: surrogate, private use, and the line and paragraph separators.
CONTROL_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")


def is_control(char: str) -> bool:
    """A character that must not appear in one line of plain text (see CONTROL_CATEGORIES)."""
    return unicodedata.category(char) in CONTROL_CATEGORIES


def has_kind(value: object, kinds: tuple[type, ...]) -> bool:
    """``isinstance(value, kinds)``, except that a boolean is only a ``bool``, never an int."""
    return isinstance(value, kinds) and (not isinstance(value, bool) or bool in kinds)


def is_whole(value: object, low: int | None = None) -> bool:
    """A whole number (not a boolean), at least ``low`` when given."""
    return has_kind(value, (int,)) and (low is None or value >= low)  # type: ignore[operator]


def is_number(value: object) -> bool:
    """A finite int or float (not a boolean)."""
    return has_kind(value, (int, float)) and math.isfinite(value)  # type: ignore[arg-type]


def show(value: object, limit: int = 60, *, yaml_words: bool = True) -> str:
    """``value`` for an error message: repr'd (control characters escaped), cut to ``limit``;
    with ``yaml_words``, None and the booleans as YAML writes them (null, true, false)."""
    if yaml_words and (value is None or isinstance(value, bool)):
        return {None: "null", True: "true", False: "false"}[value]
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fail(
    error: type[InputError], location: SourceLocation | None, message: str, hint: str | None
) -> NoReturn:
    """Raise ``error`` (an :class:`InputError` kind) at ``location``."""
    raise error(message, location=location, hint=hint)
