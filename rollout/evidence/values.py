"""A run's evidence as typed values: timeline marks, metric series, per-host results,
judgements, soak windows and the :class:`Evidence` that holds them all (pure, frozen).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property

from ..ledger import Intent, RunRecord
from ..models import Direction, Threshold


class Lane(Enum):
    """The rows of the timeline, top to bottom."""

    RUN = "run"
    PEOPLE = "people"
    PHASE = "phase"
    WAVE = "waves"
    BATCH = "batches"
    HOSTS = "hosts"
    SOAK = "soak"
    HEALTH = "health"
    DRIFT = "drift repairs"
    RESTART = "restarts"
    ROLLBACK = "rollback"
    NOTIFY = "notifications"
    OTHER = "other"


class PointState(Enum):
    OK = "ok"
    BREACH = "breach"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Mark:
    """One timeline entry: an event of the run (or about its inventory while it ran)."""

    ts: float
    kind: str
    lane: Lane
    message: str
    host: str | None = None
    ok: bool | None = None
    verdict: str | None = None  # samples: healthy / breach / inconclusive
    who: str | None = None  # who did it, where the event says
    phase: int | None = None  # the phase it is about (a rollback's target)

    @property
    def notable(self) -> bool:
        """Shown in the key moments: fleet-level steps, people, and every host-level problem."""
        if self.lane is Lane.HOSTS:
            return self.ok is False
        if self.lane is Lane.HEALTH:
            return self.verdict not in (None, "healthy")
        return True


@dataclass(frozen=True)
class Point:
    """One host's value of one metric at one poll, judged against that poll's threshold."""

    ts: float
    host: str
    value: float | None
    state: PointState
    limit: Threshold | None
    note: str = ""


@dataclass(frozen=True)
class Series:
    """Every host's samples of one health metric over the run."""

    metric: str
    unit: str
    points: tuple[Point, ...]
    hosts: tuple[str, ...]

    def of(self, host: str) -> tuple[Point, ...]:
        """``host``'s points, oldest first."""
        return self._by_host.get(host, ())

    @cached_property
    def _by_host(self) -> dict[str, tuple[Point, ...]]:  # computed once: fleets are large
        grouped: dict[str, list[Point]] = {}
        for p in self.points:
            grouped.setdefault(p.host, []).append(p)
        return {host: tuple(pts) for host, pts in grouped.items()}

    @cached_property
    def first_breach(self) -> Point | None:
        return next((p for p in self.points if p.state is PointState.BREACH), None)

    @cached_property
    def inconclusive(self) -> tuple[Point, ...]:
        return tuple(p for p in self.points if p.state is PointState.INCONCLUSIVE)

    @cached_property
    def worst_host(self) -> str | None:
        """The host that breached first, else the one with the worst value (by the limit's side)."""
        if self.first_breach is not None:
            return self.first_breach.host
        best: tuple[float, str] | None = None
        for p in self.points:
            if p.value is None:
                continue
            side = -1.0 if p.limit is not None and p.limit.direction is Direction.MIN else 1.0
            if best is None or side * p.value > best[0]:
                best = (side * p.value, p.host)
        return None if best is None else best[1]


@dataclass(frozen=True)
class HostResult:
    """What happened to one host in the run, for the per-host table."""

    host: str
    outcome: str  # verified / failed / unreachable / sampled / open change / -
    ok: bool | None
    phase: int | None  # the phase last verified on it
    detail: str
    changes: int
    drift_repairs: int
    restarts: int
    breaches: int
    inconclusive: int
    worst: tuple[tuple[str, float | None, PointState], ...]  # per metric: worst value, state


@dataclass(frozen=True)
class Side:
    """One side of a canary/baseline judgement."""

    hosts: tuple[str, ...]
    count: int | None
    median: float | None
    values: tuple[float, ...] = ()


@dataclass(frozen=True)
class Judgement:
    """A canary-vs-baseline judgement of one metric (issue 16's evidence), as recorded."""

    ts: float
    metric: str
    verdict: str
    canary: Side
    baseline: Side
    wave: str | None = None
    difference: float | None = None
    allowed: str | None = None
    test: str | None = None
    p_value: float | None = None
    score: float | None = None
    note: str | None = None
    wave_verdict: str | None = None  # the wave's verdict from all its metrics, when recorded


@dataclass(frozen=True)
class SoakWindow:
    """From a soak's start to its end: complete, interrupted, rolled back, or still open."""

    start: float
    end: float
    phase: int | None
    outcome: str  # complete / interrupted / rolled back / unfinished


@dataclass(frozen=True)
class Evidence:
    """Everything the page shows about one run."""

    run: RunRecord
    start: float
    end: float
    marks: tuple[Mark, ...]
    series: tuple[Series, ...]
    hosts: tuple[HostResult, ...]
    judgements: tuple[Judgement, ...]
    open_intents: tuple[Intent, ...]
    verdicts: Mapping[str, int] = field(default_factory=dict)  # sample verdict -> count
    soaks: tuple[SoakWindow, ...] = ()

    @property
    def rollback(self) -> Mark | None:
        """The first rollback step of the run (automatic, emergency or requested)."""
        return next((m for m in self.marks if m.kind == "rollback"), None)

    @cached_property
    def breach(self) -> Point | None:
        """The earliest breaching point across metrics."""
        found = [s.first_breach for s in self.series if s.first_breach is not None]
        return min(found, key=lambda p: p.ts) if found else None

    @property
    def lanes(self) -> tuple[Lane, ...]:
        used = {m.lane for m in self.marks}
        return tuple(lane for lane in Lane if lane in used)
