"""Phases and their waves: what a playbook rolls out, in order, with its risk and soak."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from .flags import FlagState
from .health import HealthPolicy, Scoring
from .policy import Gates


class Risk(Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


#: A wave's cumulative size: a host count, or a percentage of the fleet like "25%".
WaveSize = int | str


@dataclass(frozen=True)
class Wave:
    """One wave of a phase (the playbook's ``waves:``): the fleet share that has the phase
    once it is applied (cumulative, like Argo Rollouts' setWeight) and how long it soaks."""

    hosts: WaveSize
    soak: float  # seconds


@dataclass(frozen=True)
class Phase:
    number: int  # 0 is the baseline (every flag at its default)
    name: str
    risk: Risk
    soak: float  # seconds
    delta: FlagState  # what the playbook lists for this phase
    state: FlagState  # the full, cumulative state the fleet must reach
    validation: str = ""
    health: HealthPolicy | None = None  # None: the playbook default
    gates: Gates = field(default_factory=Gates)
    #: waves before the last one; the remaining hosts form a final wave soaked for ``soak``
    waves: tuple[Wave, ...] = ()
    scoring: Scoring | None = None  # None: the playbook's ``judgement:``

    @property
    def title(self) -> str:
        return f"Phase {self.number}: {self.name}"
