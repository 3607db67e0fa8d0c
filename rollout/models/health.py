"""Health: the thresholds a soak judges, where metrics come from, and how a wave's canary is
compared with its baseline (``compare:``, ``judgement:``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

METRIC_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class Direction(Enum):
    """Which side of the limit is a breach."""

    MAX = "max"  # breach when value > limit
    MIN = "min"  # breach when value < limit


@dataclass(frozen=True)
class Threshold:
    metric: str
    direction: Direction
    limit: float
    unit: str = ""

    def breached_by(self, value: float) -> bool:
        if self.direction is Direction.MAX:
            return value > self.limit
        return value < self.limit

    def describe(self) -> str:
        op = ">" if self.direction is Direction.MAX else "<"
        return f"{self.metric} {op} {self.limit:g}{self.unit}"


class SourceKind(Enum):
    CONSOLE = "console"  # Foundation.Deployment.Monitor.get_deployment_health/0 over rpc
    COMMAND = "command"  # a command on each host printing a JSON object of metrics
    PROMETHEUS = "prometheus"  # an HTTP Prometheus query API


@dataclass(frozen=True)
class MetricsSource:
    kind: SourceKind = SourceKind.CONSOLE
    command: str | None = None  # SourceKind.COMMAND: argv-joined command run on each host
    url_env: str | None = None  # PROMETHEUS: env variable holding the base URL (may carry a token)
    url_file: str | None = None  # PROMETHEUS: file holding the base URL
    queries: tuple[tuple[str, str], ...] = ()  # metric -> PromQL, for PROMETHEUS
    timeout: float = 10.0


@dataclass(frozen=True)
class Comparison:
    """How one metric of a wave's canary hosts is compared with its baseline hosts (the
    playbook's ``compare:``; judged by :mod:`rollout.canary`)."""

    metric: str
    direction: Direction  # MAX: higher is worse (error rate); MIN: lower is worse (throughput)
    allowed: float = 0.0  # the largest harmless shift, in the metric's unit or in percent
    percent: bool = False  # ``allowed`` is a percentage of the baseline median
    confidence: float = 0.95  # of the one-sided Mann-Whitney U test
    min_samples: int = 5  # per side; fewer is inconclusive
    weight: float = 1.0
    critical: bool = False  # a fail fails the wave whatever the score

    def allowed_shift(self, baseline_median: float) -> float:
        if self.percent:
            return abs(baseline_median) * self.allowed / 100.0
        return self.allowed

    def describe(self) -> str:
        unit = "%" if self.percent else ""
        worse = "higher" if self.direction is Direction.MAX else "lower"
        return (
            f"{self.metric}: canary {worse} than baseline by more than {self.allowed:g}{unit} "
            f"at {self.confidence:.0%} confidence"
        )


@dataclass(frozen=True)
class Scoring:
    """Kayenta's score thresholds, in percent of the judged metrics' weight (``judgement:``)."""

    pass_score: float = 95.0
    marginal_score: float = 75.0


@dataclass(frozen=True)
class HealthPolicy:
    thresholds: tuple[Threshold, ...]
    interval: float = 30.0
    failure_limit: int = 2
    inconclusive_limit: int = 4
    #: relative judgements of a wave's canary against its baseline, per metric
    comparisons: tuple[Comparison, ...] = ()

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric this policy reads: thresholds', then compared-only ones."""
        names = [t.metric for t in self.thresholds]
        return (*names, *(c.metric for c in self.comparisons if c.metric not in names))
