"""The soak: watch a freshly applied phase, repair drift, roll back on a breach.

One :meth:`Soak.poll` takes a round of samples from every host, re-applies the phase on any
host whose flags drifted (a restarted node, a hand-set flag), judges the samples, and either
counts the healthy time in the ledger or, when the failure budget is spent, rolls the fleet
back to the previous phase's full state, verified, and raises :class:`RolledBack`.

Soak time lives in the ledger, so a killed monitor resumes where it stopped. Time counts only
between two observations that were both healthy and drift-free and no further apart than
``max_gap``: time nobody watched is never counted as healthy. Within one run, that time comes
from the monotonic clock (a stepped wall clock neither shortens nor stretches a soak); across
runs (a resumed monitor, scheduled ``advance`` calls) it is the wall time since the previous
run's last sample, the only clock two processes or machines share.

A soak is complete only once its time is counted **and** at least
:data:`~rollout.soakrecord.MIN_HEALTHY_ROUNDS` healthy, drift-free rounds were sampled for the
phase: ``soak: 0`` (or ``--soak 0``) means exactly one healthy round, never "healthy" without
a sample.

What a round records, reading the recorded rounds back (:func:`~rollout.soakrecord.soak_done`)
and a wave's canary/baseline :class:`~rollout.soakrecord.Split` are :mod:`rollout.soakrecord`;
this module is the one loop that samples, repairs, counts and rolls back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .clock import SYSTEM, Clock
from .errors import Interrupted, RollbackIncomplete, RolledBack
from .events import Kind
from .executor import Executor, HostResult, StepReport
from .ledger import InventoryState
from .metrics import Round, take_round
from .models import HealthPolicy, MetricsSource, Phase, Playbook
from .monitor import Budget, Decision, Poll, Verdict, judge
from .plan import Action
from .soakrecord import (
    MIN_HEALTHY_ROUNDS,
    Split,
    healthy_rounds,
    rounds_newest_first,
    sample_event,
)
from .yamlsrc import format_duration

#: Waits up to the given seconds; returns True when the run was cancelled meanwhile.
Wait = Callable[[float], bool]


@dataclass(frozen=True)
class PollStep:
    """One poll's outcome, after drift repair and soak accounting."""

    poll: Poll
    decision: Decision
    drifted: tuple[str, ...]
    state: InventoryState
    counted_now: float


class Soak:
    """Watches ``phase`` on the executor's hosts; ``previous`` is where a breach rolls back to."""

    def __init__(
        self,
        ex: Executor,
        playbook: Playbook,
        phase: Phase,
        previous: Phase,
        *,
        policy: HealthPolicy,
        source: MetricsSource,
        clock: Clock = SYSTEM,
        wait: Wait,
        max_gap: float | None = None,
        on_rollback: Callable[[str, StepReport], None] | None = None,
        on_round: Callable[[], None] | None = None,
        split: Split | None = None,
        on_fleet_wide: Callable[[str], None] | None = None,
        on_sample: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> None:
        self.ex = ex
        self.playbook = playbook
        self.phase = phase
        self.previous = previous
        self.policy = policy
        self.source = source
        self.clock = clock  # monotonic: this run's rounds; wall: another run's last round
        self.wait = wait
        #: This run's previous round: None before the first; else the monotonic time of the
        #: last healthy, drift-free round (or None when that round was not healthy)
        self._last_healthy: float | None = None
        self._sampled = False
        self._healthy = 0  # healthy rounds of this phase (ledger + this run), up to the minimum
        self.max_gap = max_gap if max_gap is not None else max(2 * policy.interval, 10.0)
        self.budget = Budget(policy)
        self.on_rollback = on_rollback
        #: called after each round's reads, before any repair: raises to stop the soak
        #: without touching a host (another controller changed the fleet)
        self.on_round = on_round
        self.base_dir = Path(playbook.path).parent
        #: during a wave with a baseline: which hosts are the canary and which the baseline
        #: (rollout.waves). Absolute thresholds then judge the canary only; a breach the
        #: baseline shares is fleet-wide and, instead of a rollback, calls ``on_fleet_wide``
        #: (which raises: a person decides)
        self.split = split
        self.on_fleet_wide = on_fleet_wide
        #: a side output of each recorded round (the Prometheus textfile); never raises here
        self.on_sample = on_sample

    @property
    def inventory(self) -> str:
        return self.ex.inventory

    def run(self) -> InventoryState:
        """Poll every ``interval`` until the soak completes; raises on rollback or cancel."""
        state = self.ex.ledger.state(self.inventory)
        self._healthy = healthy_rounds(self.ex.ledger, state, at_most=MIN_HEALTHY_ROUNDS)
        self.ex.emit(
            Kind.SOAK,
            f"soaking {self.phase.title}: {format_duration(state.soak_counted)} of "
            f"{format_duration(state.soak_required)} counted, polling every "
            f"{format_duration(self.policy.interval)}",
            phase=self.phase.number,
            counted=state.soak_counted,
            required=state.soak_required,
            interval=self.policy.interval,
            failure_limit=self.policy.failure_limit,
            inconclusive_limit=self.policy.inconclusive_limit,
        )
        while not self.complete(state):
            started = self.clock.monotonic()
            state = self.poll().state
            if self.complete(state):
                break
            pause = max(0.0, self.policy.interval - (self.clock.monotonic() - started))
            if self.wait(pause):
                self.ex.emit(
                    Kind.SOAK,
                    f"soak of {self.phase.title} interrupted with "
                    f"{format_duration(state.soak_counted)} counted; the phase stays applied",
                    ok=False,
                    phase=self.phase.number,
                    counted=state.soak_counted,
                    interrupted=True,
                )
                raise Interrupted(
                    f"soak of {self.phase.title} interrupted; the phase stays applied",
                    hint=f"resume with `invoke monitor`, or roll back with "
                    f"`invoke rollback --to {self.previous.number}`",
                )
        self.ex.emit(
            Kind.SOAK,
            f"soak of {self.phase.title} complete: {format_duration(state.soak_required)} healthy",
            ok=True,
            phase=self.phase.number,
            counted=state.soak_counted,
            required=state.soak_required,
            complete=True,
        )
        return state

    def poll(self) -> PollStep:
        """One round: sample, repair drift, judge, record; roll back when the budget is spent."""
        thresholds = self.policy.thresholds
        self.ex.check_right(heartbeat=True)  # a run that lost its lock stops before sampling
        rnd = take_round(
            self.source, self.ex.backend, self.ex.hosts, thresholds, base_dir=self.base_dir,
            metrics=self.policy.metrics,
        )  # fmt: skip
        self.ex.check_right()  # the round renewed the fleet lease, or found it taken
        if self.on_round is not None:
            self.on_round()
        drifted = self._repair_drift(rnd)
        poll, fleet_wide = self._judge(rnd)
        decision = self.budget.update(poll)
        state = self.ex.ledger.state(self.inventory)
        counted = 0.0
        if not decision.rollback:
            counted, state = self._count(poll.verdict is Verdict.HEALTHY and not drifted, state)
        self._record(rnd, poll, decision, drifted, state, fleet_wide)
        if decision.rollback and fleet_wide and self.on_fleet_wide is not None:
            self.on_fleet_wide(decision.reason)
        if decision.rollback:
            self._rollback(decision)
        return PollStep(poll, decision, drifted, state, counted)

    def _judge(self, rnd: Round) -> tuple[Poll, bool]:
        """The round's verdict, and whether its breach is fleet-wide (shared by the baseline).

        Without a baseline every host is judged. During a wave, only the canary is: a
        baseline host breaching alone says nothing about the phase, and a breach the
        baseline shares on the same metric is the fleet's, not the phase's."""
        thresholds = self.policy.thresholds
        split = self.split
        if split is None or not split.baseline:
            return judge(rnd.samples, thresholds), False
        canary = judge([s for s in rnd.samples if s.host in split.canary], thresholds)
        if canary.verdict is not Verdict.BREACH:
            return canary, False
        baseline = judge([s for s in rnd.samples if s.host in split.baseline], thresholds)
        shared = {b.metric for b in baseline.breaches}
        return canary, all(b.metric in shared for b in canary.breaches)

    def complete(self, state: InventoryState) -> bool:
        """The soak's time is counted and enough healthy rounds were sampled."""
        return state.soak_complete and self._healthy >= MIN_HEALTHY_ROUNDS

    def _count(self, healthy: bool, state: InventoryState) -> tuple[float, InventoryState]:
        """Count the time since the previous round when both it and this one were healthy:
        measured on the monotonic clock within this run, on the wall clock since another
        run's last recorded round (the first round of a resumed soak)."""
        seconds = 0.0
        now = self.clock.monotonic()
        if not self._sampled:
            last = next(rounds_newest_first(self.ex.ledger, state), None) if healthy else None
            if last is not None and last.healthy:
                gap = self.clock.wall() - last.ts
                if 0 <= gap <= self.max_gap:
                    seconds = gap
        elif healthy and self._last_healthy is not None:
            gap = now - self._last_healthy
            if 0 <= gap <= self.max_gap:
                seconds = gap
        self._sampled = True
        self._last_healthy = now if healthy else None
        if healthy:
            self._healthy += 1
        state = self.ex.ledger.count_soak(self.inventory, seconds, phase=self.phase.number)
        return seconds, state

    def expected(self, host: str) -> Phase:
        """The phase ``host`` must hold: the previous one for a wave's baseline host."""
        if self.split is not None and host in self.split.baseline:
            return self.split.previous
        return self.phase

    def _repair_drift(self, rnd: Round) -> tuple[str, ...]:
        drifted = [
            name
            for name, flags in rnd.flags.items()
            if flags is not None and self.expected(name).state.changes_from(flags)
        ]
        if not drifted:
            return ()
        for name in drifted:
            flags = rnd.flags[name] or {}
            expected = self.expected(name)
            changes = expected.state.changes_from(flags)
            self.ex.emit(
                Kind.DRIFT,
                f"drifted from {expected.title}: "
                + ", ".join(str(c) for c in changes)
                + "; re-applying",
                host=name,
                ok=False,
                changes=[str(c) for c in changes],
            )
        results: list[HostResult] = []
        for phase in {self.expected(n).number: self.expected(n) for n in drifted}.values():
            group = [n for n in drifted if self.expected(n).number == phase.number]
            results.extend(self.ex.converge(group, phase, Action.REAPPLY).results)
        for result in results:
            self.ex.emit(
                Kind.DRIFT,
                "re-applied and verified"
                if result.ok
                else f"re-apply did not verify: {result.error or result.mismatched}",
                host=result.host,
                ok=result.ok,
            )
        return tuple(drifted)

    def _record(
        self,
        rnd: Round,
        poll: Poll,
        decision: Decision,
        drifted: tuple[str, ...],
        state: InventoryState,
        fleet_wide: bool = False,
    ) -> None:
        text, data = sample_event(
            rnd, poll, decision, drifted, state, phase=self.phase.number, policy=self.policy,
            split=self.split, fleet_wide=fleet_wide,
        )  # fmt: skip
        self.ex.emit(Kind.SAMPLE, text, ok=poll.verdict is Verdict.HEALTHY, **data)
        if self.on_sample is not None:
            try:
                self.on_sample(data)
            except Exception as exc:  # a side output never stops a soak
                self.ex.emit(Kind.WARNING, f"soak metrics not written: {exc}")

    def _rollback(self, decision: Decision) -> None:
        """Roll back to the previous phase; a second signal at any point ends it as
        Interrupted, with the ledger paused and recording the target once it was recorded."""
        target = self.previous
        try:
            self._roll_back_to(target, decision)
        except KeyboardInterrupt:
            state = self.ex.ledger.state(self.inventory)
            if not state.paused:
                self.ex.ledger.set_paused(
                    self.inventory, True, "rollout (automatic rollback)", decision.reason
                )
            raise Interrupted(
                f"automatic rollback to {target.title} interrupted ({decision.reason}); the "
                f"ledger records phase {state.phase} and rollouts are paused",
                hint=f"finish it with `invoke rollback --to {target.number} --reason "
                "'finish the automatic rollback'`; `invoke status` shows each host",
            ) from None

    def _roll_back_to(self, target: Phase, decision: Decision) -> None:
        self.ex.emit(
            Kind.ROLLBACK,
            f"AUTOMATIC ROLLBACK to {target.title}: {decision.reason}",
            ok=False,
            target=target.number,
            reason=decision.reason,
        )
        if self.ex.side is not None:  # the pause travels with the hosts' records
            self.ex.side.pause = ("rollout (automatic rollback)", decision.reason)
        # Recorded and paused BEFORE the first host changes: whatever stops this run now (a
        # second signal, a kill, a notification), the ledger no longer claims the breached
        # phase, no scheduled advance "repairs" a host back to it, and `status` shows which
        # hosts still differ from the target. Recorded even when some hosts do not verify.
        self.ex.ledger.set_phase(
            self.inventory, target.number, self.ex.run.id, soak_required=target.soak
        )
        self.ex.ledger.set_paused(
            self.inventory, True, "rollout (automatic rollback)", decision.reason
        )
        report = self.ex.converge_with_retry(self.ex.hosts, target, Action.ROLLBACK)
        failed = [r.host for r in report.failed]
        if self.on_rollback is not None:
            self.on_rollback(decision.reason, report)
        if failed:
            raise RollbackIncomplete(
                f"automatic rollback to {target.title} did not verify on "
                f"{', '.join(failed)} ({decision.reason})",
                hint=f"bring those hosts back, then `invoke rollback --to {target.number}`; "
                "rollouts of this inventory are paused",
                results=[r.summary() for r in report.results],
            )
        raise RolledBack(
            f"{self.phase.title} breached its health thresholds: {decision.reason}. "
            f"Every host ({len(report.results)}) was rolled back to {target.title} "
            "and verified",
            hint="rollouts of this inventory are paused: investigate, then `invoke resume` "
            f"and `invoke deploy --phase {self.phase.number}`; "
            f"`invoke report --run {self.ex.run.id}` shows every sample",
        )
