"""A readiness check's result values, and how a result is built and worded.

:class:`CheckResult` is what one check found, :class:`CheckReport` every result in checklist
order with its tallies (:class:`CategoryTally`). :func:`passing` and :func:`failing` build
a result (a failure's findings capped at :data:`MAX_DETAILS`); :func:`printable` and
:func:`plural` word the reasons every kind of check gives. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..models import Check, CheckCategory

#: Findings listed per check; the rest are counted ("... and 12 more").
MAX_DETAILS = 20


@dataclass(frozen=True)
class CheckResult:
    """What one check found: passed or not, why, and the findings behind it."""

    category: CheckCategory
    name: str
    ok: bool
    reason: str
    details: tuple[str, ...] = ()
    duration: float = 0.0


@dataclass(frozen=True)
class CategoryTally:
    category: CheckCategory
    passed: int
    total: int


@dataclass(frozen=True)
class CheckReport:
    """Every result, in checklist order. An empty checklist is not ``ok``."""

    results: tuple[CheckResult, ...]

    @property
    def categories(self) -> tuple[CategoryTally, ...]:
        """Passed/total per category that has checks, in the checklist's category order."""
        out = []
        for category in CheckCategory:
            mine = [r for r in self.results if r.category is category]
            if mine:
                out.append(CategoryTally(category, sum(r.ok for r in mine), len(mine)))
        return tuple(out)

    @property
    def passed(self) -> int:
        return sum(r.ok for r in self.results)

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def overall(self) -> tuple[int, int]:
        return self.passed, self.total

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    @property
    def ok(self) -> bool:
        return bool(self.results) and self.passed == self.total



def passing(check: Check, reason: str, details: Iterable[str] = ()) -> CheckResult:
    return CheckResult(check.category, check.name, True, reason, tuple(details))


def failing(check: Check, reason: str, details: Iterable[str] = ()) -> CheckResult:
    return CheckResult(check.category, check.name, False, reason, _capped(list(details)))


def _capped(items: list[str]) -> tuple[str, ...]:
    if len(items) <= MAX_DETAILS:
        return tuple(items)
    return (*items[:MAX_DETAILS], f"... and {len(items) - MAX_DETAILS} more")


def printable(text: str, limit: int) -> str:
    """``text`` safe for a terminal or an XML report: control characters become '?'."""
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}es" if word.endswith("h") else f"{n} {word}s"
