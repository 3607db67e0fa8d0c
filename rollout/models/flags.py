"""Flag values and states: what a phase sets and what a read-back observes.

``FlagState`` is a full assignment in a stable order; ``same_value`` keeps ``True`` and ``1``
apart; ``format_value`` renders a value for people.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

#: A flag's value: ``True``/``False``, or an integer percentage 1..100 (rollout exposure).
FlagValue = bool | int


@dataclass(frozen=True)
class Opaque:
    """A value read from a host that is neither a boolean nor an integer (shown as ``inspect``)."""

    text: str

    def __str__(self) -> str:
        return f"unexpected value {self.text}"


#: What a read-back can observe for one flag: a value, an opaque term, or None (absent).
Observed = FlagValue | Opaque | None

FLAG_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def format_value(value: Observed) -> str:
    """Render a flag value for people: ``on``, ``off``, ``10%`` or ``absent``."""
    if value is None:
        return "absent"
    if value is True:
        return "on"
    if value is False:
        return "off"
    if isinstance(value, Opaque):
        return str(value)
    return f"{value}%"


@dataclass(frozen=True)
class FlagChange:
    """One flag that must change on a host."""

    flag: str
    current: Observed
    target: FlagValue

    def __str__(self) -> str:
        return f"{self.flag}: {format_value(self.current)} -> {format_value(self.target)}"


@dataclass(frozen=True)
class FlagState:
    """A full assignment of values to flags, in a stable order."""

    values: tuple[tuple[str, FlagValue], ...]

    @classmethod
    def of(cls, mapping: Mapping[str, FlagValue]) -> FlagState:
        return cls(tuple(sorted(mapping.items())))

    def as_dict(self) -> dict[str, FlagValue]:
        return dict(self.values)

    def get(self, flag: str) -> FlagValue | None:
        for name, value in self.values:
            if name == flag:
                return value
        return None

    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.values)

    def __iter__(self) -> Iterator[tuple[str, FlagValue]]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def merged(self, delta: Mapping[str, FlagValue]) -> FlagState:
        data = self.as_dict()
        data.update(delta)
        return FlagState.of(data)

    def changes_from(self, current: Mapping[str, Observed]) -> tuple[FlagChange, ...]:
        """The changes that take ``current`` to this state (only flags this state names)."""
        out = []
        for flag, target in self.values:
            have = current.get(flag)
            if not same_value(have, target):
                out.append(FlagChange(flag, have, target))
        return tuple(out)


def same_value(a: Observed, b: Observed) -> bool:
    """Equality that keeps ``True`` and ``1`` (and ``False`` and ``0``) apart."""
    if a is None or b is None:
        return a is b
    return type(a) is type(b) and a == b
