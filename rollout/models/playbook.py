"""``Playbook``: the aggregate a playbook file loads into (``rollout.playbook`` builds it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .checklist import ChecksConfig
from .flags import FlagState, Observed
from .health import HealthPolicy, MetricsSource, Scoring
from .notifyconfig import NotifyConfig
from .phases import Phase, Risk
from .policy import EmergencyPolicy, RolloutPolicy


@dataclass(frozen=True)
class Playbook:
    path: str
    name: str
    description: str
    defaults: FlagState  # phase 0: every known flag at its default
    phases: tuple[Phase, ...]  # phases 1..N in order (phase 0 not included)
    health: HealthPolicy
    source: MetricsSource
    policy: RolloutPolicy
    emergency: EmergencyPolicy
    checks: ChecksConfig = field(default_factory=lambda: ChecksConfig())
    notify: NotifyConfig = field(default_factory=lambda: NotifyConfig())
    #: flag name -> the playbook line that declares it (for errors that name the line)
    flag_lines: Mapping[str, int] = field(default_factory=dict)
    scoring: Scoring = field(default_factory=lambda: Scoring())
    #: ``health.textfile``: where each soak round's numbers are written in the Prometheus
    #: text format for a node_exporter textfile collector (None: not written)
    textfile: str | None = None

    @property
    def flags(self) -> tuple[str, ...]:
        """The allowlist: every flag the tool may read or write."""
        return self.defaults.names()

    @property
    def last(self) -> int:
        return self.phases[-1].number if self.phases else 0

    def baseline(self) -> Phase:
        return Phase(0, "Baseline (flag defaults)", Risk.LOW, 0.0, FlagState(()), self.defaults)

    def phase(self, number: int) -> Phase:
        """Phase ``number`` (0 is the baseline); KeyError if the playbook has none."""
        if number == 0:
            return self.baseline()
        for phase in self.phases:
            if phase.number == number:
                return phase
        raise KeyError(number)

    def health_for(self, number: int) -> HealthPolicy:
        phase = self.phase(number)
        return phase.health or self.health

    def scoring_for(self, number: int) -> Scoring:
        return self.phase(number).scoring or self.scoring

    def match(self, flags: Mapping[str, Observed]) -> int | None:
        """The highest phase whose full state equals ``flags`` exactly, else None."""
        for phase in reversed((self.baseline(), *self.phases)):
            if not phase.state.changes_from(flags):
                return phase.number
        return None
