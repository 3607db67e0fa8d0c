"""A phase's waves as planned (pure): which hosts each wave changes, its canary, its soak.

A phase with ``waves:`` reaches a growing, cumulative share of the fleet (in inventory order);
the hosts left after the last listed wave form the *final* wave, soaked for the phase's own
``soak``. :func:`sub_plan` narrows a phase's :class:`~rollout.plan.Plan` to one wave's hosts.
Walking the waves (applying, soaking, judging, recording) is :mod:`rollout.waves`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .models import Phase, Wave, WaveSize
from .plan import Plan, make_batches


@dataclass(frozen=True)
class WavePlan:
    """One wave as planned: the hosts it changes and the canary once it is applied."""

    index: int  # 1-based
    total: int
    hosts: tuple[str, ...]
    canary: tuple[str, ...]
    soak: float

    @property
    def final(self) -> bool:
        return self.index >= self.total


def resolve_size(total: int, size: WaveSize) -> int:
    """A wave's cumulative host count in a fleet of ``total``: a count as it is, a percentage
    rounded up (25% of 6 hosts is 2: at least that share has the phase). Pure."""
    return math.ceil(total * int(size[:-1]) / 100) if isinstance(size, str) else int(size)


def wave_counts(total: int, waves: Sequence[Wave]) -> list[int]:
    """Cumulative host counts of the listed waves for a fleet of ``total``.

    A percentage rounds up (25% of 6 hosts is 2: at least that share has the phase); a wave
    that would not add a host is dropped, and so is one that would reach every host (the
    final wave, with the phase's soak, takes the rest). Pure."""
    counts: list[int] = []
    for wave in waves:
        count = resolve_size(total, wave.hosts)
        if count >= total:
            break
        if counts and count <= counts[-1]:
            continue
        counts.append(count)
    return counts


def plan_waves(hosts: Sequence[str], phase: Phase, final_soak: float) -> tuple[WavePlan, ...]:
    """The waves of ``phase`` over ``hosts`` (in inventory order); one final wave when the
    phase lists none or the fleet is too small for a baseline."""
    listed = [w for w in phase.waves]
    counts = wave_counts(len(hosts), listed) if len(hosts) > 1 else []
    soaks: dict[int, float] = {}
    for wave in listed:  # the soak of each kept wave, by its resolved count
        soaks.setdefault(resolve_size(len(hosts), wave.hosts), wave.soak)
    bounds = [*counts, len(hosts)]
    total = len(bounds)
    out, start = [], 0
    for index, end in enumerate(bounds, start=1):
        soak = final_soak if index == total else soaks[end]
        out.append(WavePlan(index, total, tuple(hosts[start:end]), tuple(hosts[:end]), soak))
        start = end
    return tuple(out)


def sub_plan(plan: Plan, wave: WavePlan, undo: Phase, serial: Sequence[int | str]) -> Plan:
    """``plan`` narrowed to ``wave``'s hosts, batched by ``serial``, undone to ``undo``."""
    hosts = tuple(h for h in plan.hosts if h.host in wave.hosts)
    changed = [h.host for h in hosts if not h.noop]
    return replace(plan, hosts=hosts, batches=make_batches(changed, serial), undo=undo)
