"""What a step did on each host, and the pure judgements of it.

:class:`HostResult` is one host's verified end state, :class:`StepReport` a converge step's
results; :func:`_verify` judges a read-back against the wanted state, :func:`_failure_text`
and :func:`_describe_match` word a result and a reading for events. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import HostOutcome
from ..models import FlagState, Observed, Phase, format_value


@dataclass(frozen=True)
class HostResult:
    """The verified end state of one host after a step."""

    host: str
    ok: bool
    flags: Mapping[str, Observed] = field(default_factory=dict)
    mismatched: tuple[str, ...] = ()
    error: str | None = None
    unreachable: bool = False
    #: the node refused in a way retrying cannot fix (a flag it does not know)
    permanent: bool = False

    def summary(self) -> HostOutcome:
        """This result as the data a host-spanning error carries."""
        why = self.error or ("read back differs: " + ", ".join(self.mismatched))
        return HostOutcome(self.host, self.ok, None if self.ok else why, self.unreachable)


@dataclass(frozen=True)
class StepReport:
    """What a converge step did on every host it touched."""

    target: Phase
    results: tuple[HostResult, ...]

    @property
    def failed(self) -> tuple[HostResult, ...]:
        return tuple(r for r in self.results if not r.ok)


def _verify(
    name: str, state: FlagState, flags: Mapping[str, Observed], errors: Mapping[str, str]
) -> HostResult:
    mismatched = tuple(c.flag for c in state.changes_from(flags))
    error = None
    if errors:
        error = "; ".join(f"{flag} replied {reply}" for flag, reply in errors.items())
    permanent = any("unknown_flag" in reply for reply in errors.values())
    return HostResult(name, not mismatched and not errors, flags, mismatched, error,
                      permanent=permanent)  # fmt: skip


def _failure_text(result: HostResult, target: Phase) -> str:
    parts = []
    if result.mismatched:
        shown = ", ".join(
            f"{f}={format_value(result.flags.get(f))} (want {format_value(target.state.get(f))})"
            for f in result.mismatched
        )
        parts.append(f"read back differs: {shown}")
    if result.error:
        parts.append(result.error)
    return f"{result.host}: " + ("; ".join(parts) or "failed")


def _describe_match(match: int | None) -> str:
    return "drifted: matches no phase" if match is None else f"matches phase {match}"
