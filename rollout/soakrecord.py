"""What a soak leaves in the ledger: the sample a round records, and reading rounds back.

:func:`sample_event` builds the ``sample`` event of one round (its sentence and its data: the
verdict, every metric's worst host, each host's state, the budget, the time counted and left,
the wave's canary and baseline); :func:`rounds_newest_first` reads this phase's recorded
rounds back, lazily, for :func:`healthy_rounds` and :func:`soak_done` (a soak is complete
only with its time counted and :data:`MIN_HEALTHY_ROUNDS` healthy rounds sampled).
:class:`Split` is a wave's canary and baseline while it soaks. No clock, no host: the loop
that samples, repairs and rolls back is :mod:`rollout.soak`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .events import Kind
from .ledger import InventoryState, Ledger, WaveRecord
from .metrics import Round
from .models import HealthPolicy, Phase
from .monitor import Decision, Poll, Verdict, describe_values
from .yamlsrc import format_duration

#: Healthy, drift-free sampled rounds a phase needs before its soak is complete.
MIN_HEALTHY_ROUNDS = 1


@dataclass(frozen=True)
class Sampled:
    """A round recorded in the ledger for the current phase: when, and whether it counted."""

    ts: float
    healthy: bool


def rounds_newest_first(ledger: Ledger, state: InventoryState) -> Iterator[Sampled]:
    """This phase's rounds in the ledger since it was recorded, newest first, read lazily:
    the readers need the latest few, so their cost does not grow with the ledger's history
    (``bench.grown``)."""
    since = state.phase_changed or 0.0
    for event in ledger.newest_events(state.inventory, Kind.SAMPLE.value, since=since):
        inner = event.data.get("data")
        data: dict[str, object] = inner if isinstance(inner, dict) else {}
        if data.get("phase") == state.phase:
            healthy = data.get("verdict") == Verdict.HEALTHY.value and not data.get("drifted")
            yield Sampled(event.ts, healthy)


def healthy_rounds(ledger: Ledger, state: InventoryState, *, at_most: int | None = None) -> int:
    """How many healthy, drift-free rounds the ledger holds for the recorded phase (counting
    stops at ``at_most``: a gate only needs to know there are enough)."""
    count = 0
    for sampled in rounds_newest_first(ledger, state):
        if sampled.healthy:
            count += 1
            if at_most is not None and count >= at_most:
                break
    return count


def soak_done(ledger: Ledger, state: InventoryState) -> bool:
    """The recorded phase's soak is complete: its time counted and a healthy round sampled."""
    return state.soak_complete and (
        healthy_rounds(ledger, state, at_most=MIN_HEALTHY_ROUNDS) >= MIN_HEALTHY_ROUNDS
    )


@dataclass(frozen=True)
class Split:
    """Who is canary and who is baseline while a wave soaks (``rollout.waves`` makes it)."""

    wave: WaveRecord
    canary: frozenset[str]
    baseline: frozenset[str]
    previous: Phase  # where the baseline hosts are


def sample_event(
    rnd: Round,
    poll: Poll,
    decision: Decision,
    drifted: tuple[str, ...],
    state: InventoryState,
    *,
    phase: int,
    policy: HealthPolicy,
    split: Split | None = None,
    fleet_wide: bool = False,
) -> tuple[str, dict[str, Any]]:
    """One round's ``sample`` event: its sentence and its data (``fleet_wide``: the baseline
    shares the canary's breach)."""
    left = max(0.0, state.soak_required - state.soak_counted)
    metrics = [
        {
            "metric": m.metric,
            "worst": m.worst,
            "host": m.worst_host,
            "threshold": m.threshold.describe(),
            "breached": m.breached,
        }
        for m in poll.summary
    ]
    hosts = {s.host: ("error: " + s.error if s.error else "ok") for s in rnd.samples}
    for name in drifted:
        hosts[name] = "drifted (re-applied)"
    verdict = poll.verdict.value
    text = {
        Verdict.HEALTHY: f"healthy; {format_duration(round(left))} left",
        Verdict.BREACH: f"BREACH ({decision.breaches_in_row}/{policy.failure_limit}): "
        + "; ".join(str(b) for b in poll.breaches),
        Verdict.INCONCLUSIVE: f"inconclusive ({decision.inconclusive_in_row}/"
        f"{policy.inconclusive_limit}): " + "; ".join(str(g) for g in poll.gaps),
    }[poll.verdict]
    wave: dict[str, Any] = {}
    if split is not None:
        wave = {"wave": split.wave.index, "wave_id": split.wave.id,
                "canary": sorted(split.canary), "baseline": sorted(split.baseline),
                "fleet_wide": fleet_wide}  # fmt: skip
        if fleet_wide:
            text += " (the baseline breaches too: fleet-wide, not the phase)"
    data: dict[str, Any] = dict(
        phase=phase,
        verdict=verdict,
        values=describe_values(rnd.samples),
        thresholds={t.metric: t.describe() for t in policy.thresholds},
        metrics=metrics,
        hosts=hosts,
        drifted=list(drifted),
        breaches_in_row=decision.breaches_in_row,
        inconclusive_in_row=decision.inconclusive_in_row,
        failure_limit=policy.failure_limit,
        inconclusive_limit=policy.inconclusive_limit,
        counted=state.soak_counted,
        required=state.soak_required,
        left=left,
        **wave,
    )
    return text, data
