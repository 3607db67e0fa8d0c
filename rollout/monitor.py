"""Pure health verdicts: samples and thresholds in, a verdict and a decision out.

A poll takes one sample per host. A value that cannot be read (host unreachable, console
error, metric missing, NaN or not a number) makes the poll *inconclusive*, never healthy.
The worst host decides. :class:`Budget` turns a run of polls into a decision: a breach must
hold on ``failure_limit`` consecutive polls, and ``inconclusive_limit`` inconclusive polls in
a row count as a breach. No I/O, no clock: the soak loop (``soak.py``) feeds it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from .models import HealthPolicy, Threshold


class Verdict(Enum):
    HEALTHY = "healthy"
    BREACH = "breach"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class HostSample:
    """One host's metrics at one poll; ``error`` set when no sample could be taken."""

    host: str
    values: Mapping[str, float | None] = field(default_factory=dict)
    raw: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Breach:
    host: str
    metric: str
    value: float
    threshold: Threshold

    def __str__(self) -> str:
        return f"{self.host}: {self.metric} = {self.value:g} (breach: {self.threshold.describe()})"


@dataclass(frozen=True)
class Gap:
    """A value that could not be judged."""

    host: str
    metric: str | None  # None: the whole host could not be sampled
    reason: str

    def __str__(self) -> str:
        what = f"{self.metric} " if self.metric else ""
        return f"{self.host}: {what}{self.reason}"


@dataclass(frozen=True)
class MetricSummary:
    """The worst value of one metric across hosts, for display."""

    metric: str
    threshold: Threshold
    worst: float | None
    worst_host: str | None
    breached: bool


@dataclass(frozen=True)
class Poll:
    verdict: Verdict
    breaches: tuple[Breach, ...]
    gaps: tuple[Gap, ...]
    summary: tuple[MetricSummary, ...]


def _usable(value: float | None) -> bool:
    return value is not None and not math.isnan(value) and not math.isinf(value)


def judge(samples: Sequence[HostSample], thresholds: Sequence[Threshold]) -> Poll:
    """Judge one poll: any breach is a breach; otherwise any gap makes it inconclusive."""
    breaches: list[Breach] = []
    gaps: list[Gap] = []
    worst: dict[str, tuple[float, str]] = {}
    for sample in samples:
        if sample.error is not None:
            gaps.append(Gap(sample.host, None, sample.error))
            continue
        for threshold in thresholds:
            value = sample.values.get(threshold.metric)
            if value is None or not _usable(value):
                raw = sample.raw.get(threshold.metric)
                reason = (
                    "missing"
                    if threshold.metric not in sample.values
                    else (f"not a number ({raw})" if raw else "not a number")
                )
                gaps.append(Gap(sample.host, threshold.metric, reason))
                continue
            if threshold.breached_by(value):
                breaches.append(Breach(sample.host, threshold.metric, value, threshold))
            prev = worst.get(threshold.metric)
            if prev is None or _worse(value, prev[0], threshold):
                worst[threshold.metric] = (value, sample.host)
    if not samples:
        gaps.append(Gap("-", None, "no hosts were sampled"))
    summary = []
    for threshold in thresholds:
        value, host = worst.get(threshold.metric, (None, None))
        hit = value is not None and threshold.breached_by(value)
        summary.append(MetricSummary(threshold.metric, threshold, value, host, hit))
    if breaches:
        verdict = Verdict.BREACH
    elif gaps:
        verdict = Verdict.INCONCLUSIVE
    else:
        verdict = Verdict.HEALTHY
    return Poll(verdict, tuple(breaches), tuple(gaps), tuple(summary))


def _worse(a: float, b: float, threshold: Threshold) -> bool:
    from .models import Direction

    return a > b if threshold.direction is Direction.MAX else a < b


class Action(Enum):
    CONTINUE = "continue"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class Decision:
    action: Action
    breaches_in_row: int
    inconclusive_in_row: int
    reason: str = ""

    @property
    def rollback(self) -> bool:
        return self.action is Action.ROLLBACK


@dataclass
class Budget:
    """Counts consecutive bad polls; decides when they add up to a rollback."""

    policy: HealthPolicy
    breaches_in_row: int = 0
    inconclusive_in_row: int = 0

    def update(self, poll: Poll) -> Decision:
        if poll.verdict is Verdict.BREACH:
            self.breaches_in_row += 1
            self.inconclusive_in_row = 0
        elif poll.verdict is Verdict.INCONCLUSIVE:
            self.inconclusive_in_row += 1
            self.breaches_in_row = 0
        else:
            self.breaches_in_row = 0
            self.inconclusive_in_row = 0
        if self.breaches_in_row >= self.policy.failure_limit:
            reason = f"breach on {self.breaches_in_row} consecutive poll(s): " + "; ".join(
                str(b) for b in poll.breaches
            )
            return Decision(Action.ROLLBACK, self.breaches_in_row, self.inconclusive_in_row, reason)
        if self.inconclusive_in_row >= self.policy.inconclusive_limit:
            reason = (
                f"health could not be judged on {self.inconclusive_in_row} consecutive "
                "poll(s), which counts as a breach: " + "; ".join(str(g) for g in poll.gaps)
            )
            return Decision(Action.ROLLBACK, self.breaches_in_row, self.inconclusive_in_row, reason)
        return Decision(Action.CONTINUE, self.breaches_in_row, self.inconclusive_in_row)

    @property
    def failures_left(self) -> int:
        return max(0, self.policy.failure_limit - self.breaches_in_row)

    @property
    def inconclusive_left(self) -> int:
        return max(0, self.policy.inconclusive_limit - self.inconclusive_in_row)


def describe_values(samples: Sequence[HostSample]) -> dict[str, dict[str, object]]:
    """Raw values per host, for the ledger."""
    out: dict[str, dict[str, object]] = {}
    for sample in samples:
        if sample.error is not None:
            out[sample.host] = {"error": sample.error}
        else:
            out[sample.host] = {
                k: (v if v is None or _usable(v) else str(v)) for k, v in sample.values.items()
            }
    return out


def thresholds_by_metric(thresholds: Sequence[Threshold]) -> Mapping[str, str]:
    return {t.metric: t.describe() for t in thresholds}
