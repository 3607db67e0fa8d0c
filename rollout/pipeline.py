"""``advance``: one step of an unattended rollout, safe to run every few minutes.

Read the ledger and do exactly one of: take one round of health samples for the running soak
(rolling back on breach, exactly as ``monitor`` does); deploy the next phase when the soak is
complete and its gates hold (the new soak starts in the ledger, nobody waits for it); or do
nothing and say why (paused, waiting for approval or a backup, last phase reached). The
failure budget survives between calls: it is rebuilt from the samples in the ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

from .commands.context import Context
from .commands.deploys import deploy
from .commands.monitoring import make_soak
from .commands.recording import recorded_phase
from .commands.running import check_fleet, command_text, fleet_paused, running
from .errors import FleetChanged, RolloutError, WaveHeld
from .events import Kind
from .ledger import InventoryState, WaveRecord
from .models import Phase
from .monitor import Budget
from .soakrecord import soak_done
from .yamlsrc import format_duration


class Outcome(Enum):
    SAMPLED = "sampled"  # one round taken; the soak goes on
    ADVANCED = "advanced"  # the next phase was deployed
    WAITING = "waiting"  # a gate does not hold yet
    PAUSED = "paused"
    DONE = "done"  # the last phase's soak is complete


@dataclass(frozen=True)
class AdvanceResult:
    outcome: Outcome
    message: str
    phase: int | None


#: A gate check: returns None when it holds, else the reason it does not.
GateCheck = Callable[[Context, Phase, InventoryState], str | None]


def approval_gate(ctx: Context, phase: Phase, state: InventoryState) -> str | None:
    if not phase.gates.approval:
        return None
    if ctx.ledger.approvals(ctx.inventory.name, phase.number):
        return None
    return f"{phase.title} needs a recorded approval: `invoke approve --phase {phase.number}`"


def soak_gate(ctx: Context, _phase: Phase, state: InventoryState) -> str | None:
    if state.phase is None or state.phase == 0 or soak_done(ctx.ledger, state):
        return None
    if state.soak_complete:
        return f"the soak of phase {state.phase} has no healthy sampled round yet"
    left = max(0.0, state.soak_required - state.soak_counted)
    return f"the soak of phase {state.phase} has {format_duration(round(left))} left"


#: How far apart two scheduled samples may be for the time between them to count as soak.
ADVANCE_MAX_GAP = 15 * 60.0


def advance(
    ctx: Context, gates: tuple[GateCheck, ...] = (), *, max_gap: float = ADVANCE_MAX_GAP
) -> AdvanceResult:
    """One unattended step; see the module docstring."""
    inv = ctx.inventory.name
    state = ctx.ledger.state(inv)
    last = ctx.playbook.last
    if state.paused:
        return _say(
            ctx,
            Outcome.PAUSED,
            f"rollouts of {inv} are paused by {state.paused_by}: "
            f"{state.paused_reason or 'no reason given'}; `invoke resume` to go on",
            state.phase,
        )
    if state.phase is not None:
        recorded_phase(ctx, state.phase)  # a phase this playbook lacks: a clear usage error
    from .waves import current_wave

    wave = current_wave(ctx, state)
    if wave is not None and not wave.final:
        return _wave_step(ctx, state, wave, max_gap)
    if state.phase is not None and state.phase > 0 and not soak_done(ctx.ledger, state):
        sampled = _sample(ctx, state, max_gap)
        state = ctx.ledger.state(inv)
        if not soak_done(ctx.ledger, state) or state.paused:
            return sampled
        # the round that completed the soak: move on now when the gates hold, rather than
        # wasting a scheduler period
    if wave is not None:
        from .waves import close_final

        close_final(ctx)
    if state.phase is not None and state.phase >= last:
        return _say(
            ctx,
            Outcome.DONE,
            f"phase {state.phase} is the last phase and its soak is complete: nothing to do",
            state.phase,
        )
    nxt = ctx.playbook.phase((state.phase or 0) + 1)
    results = [(_gate_name(gate), gate(ctx, nxt, state))
               for gate in (soak_gate, approval_gate, *gates)]  # fmt: skip
    if ctx.options.junit:
        from pathlib import Path

        from .junit import gates_junit

        Path(ctx.options.junit).write_text(gates_junit(results), encoding="utf-8")
    closed = [why for _, why in results if why is not None]
    if closed:
        return _say(ctx, Outcome.WAITING, f"not advancing to {nxt.title}: " + "; ".join(closed),
                    state.phase)  # fmt: skip
    if (paused := _deploy_step(ctx, nxt.number, state)) is not None:
        return paused
    return AdvanceResult(
        Outcome.ADVANCED,
        f"deployed {nxt.title}; its soak ({format_duration(nxt.soak)}) starts now",
        nxt.number,
    )


def _wave_step(
    ctx: Context, state: InventoryState, wave: WaveRecord, max_gap: float
) -> AdvanceResult:
    """One step inside a phase's waves: sample the wave's soak; judge it once served; apply
    the next wave when the verdict passed or a person approved it (rollout.waves)."""
    from .waves import approved_after, held

    inv = ctx.inventory.name
    if wave.verdict is None:
        if not soak_done(ctx.ledger, state):
            try:
                sampled = _sample(ctx, state, max_gap)
            except WaveHeld as exc:
                return _say(ctx, Outcome.WAITING, exc.message, wave.phase)
            state = ctx.ledger.state(inv)
            if not soak_done(ctx.ledger, state) or state.paused:
                return sampled
        try:
            wave = _judge_run(ctx, wave)
        except WaveHeld as exc:
            return _say(ctx, Outcome.WAITING, exc.message, wave.phase)
    elif wave.verdict != "pass" and not approved_after(ctx, wave):
        waiting = held(wave)
        return _say(ctx, Outcome.WAITING, f"{waiting.message}: {waiting.hint}", wave.phase)
    if (paused := _deploy_step(ctx, wave.phase, state)) is not None:
        return paused
    after = ctx.ledger.latest_wave(inv)
    title = after.title if after is not None else f"the next wave of phase {wave.phase}"
    soak = format_duration(after.soak) if after is not None else "?"
    return AdvanceResult(Outcome.ADVANCED, f"applied {title}; its soak ({soak}) starts now",
                         wave.phase)  # fmt: skip


def _judge_run(ctx: Context, wave: WaveRecord) -> WaveRecord:
    """Judge a wave whose soak is served, in a run of its own (a fail rolls its canary back)."""
    from .waves import judge, settle

    with running(ctx, command_text("advance", ctx.options)) as (_run, _lock, ex):
        ex.claim()
        check_fleet(ctx, ex, what=f"judgement of {wave.title}")
        return settle(ctx, ex, wave, judge(ctx, wave))


def _sample(ctx: Context, state: InventoryState, max_gap: float) -> AdvanceResult:
    assert state.phase is not None
    phase = ctx.playbook.phase(state.phase)
    previous = ctx.playbook.phase(max(0, phase.number - 1))
    try:
        return _sample_run(ctx, state, phase, previous, max_gap)
    except FleetChanged as exc:
        if not exc.paused:
            raise
        return _say(ctx, Outcome.PAUSED, exc.message, state.phase)


def _sample_run(
    ctx: Context, state: InventoryState, phase: Phase, previous: Phase, max_gap: float
) -> AdvanceResult:
    with running(ctx, command_text("advance", ctx.options)) as (_run, _lock, ex):
        ex.claim()
        check_fleet(ctx, ex, what=f"advance of {phase.title}")
        paused = fleet_paused(ex)
        if paused is not None:
            return _say(
                ctx,
                Outcome.PAUSED,
                f"the fleet is paused by {paused.paused_by}: {paused.paused_reason}; "
                "`invoke resume` (from any controller) to go on",
                state.phase,
            )
        soak = make_soak(ctx, ex, phase, previous)
        soak.budget = rebuild_budget(ctx, soak.budget, state)
        # advance runs on a schedule: the gap since the previous healthy sample counts when
        # it is no longer than max_gap (default 15m, `--max-gap`); a longer one counts zero
        soak.max_gap = max(soak.max_gap, max_gap)
        step = soak.poll()
    left = max(0.0, step.state.soak_required - step.state.soak_counted)
    if soak_done(ctx.ledger, step.state):
        message = f"the soak of {phase.title} is complete"
    else:
        message = (
            f"soaking {phase.title}: {step.poll.verdict.value}, {format_duration(round(left))} left"
        )
    return AdvanceResult(Outcome.SAMPLED, message, phase.number)


def _deploy_step(ctx: Context, number: int, state: InventoryState) -> AdvanceResult | None:
    """One step of ``advance``: deploy ``number`` without waiting or asking (its next wave, or
    the next phase). A fleet another controller paused is reported as paused, not an error;
    None when the step was taken."""
    ctx.options = replace(ctx.options, wait=False, yes=True)
    try:
        deploy(ctx, number)
    except FleetChanged as exc:
        if not exc.paused:
            raise
        return _say(ctx, Outcome.PAUSED, exc.message, state.phase)
    return None


def rebuild_budget(ctx: Context, budget: Budget, state: InventoryState) -> Budget:
    """The consecutive breach/inconclusive counts from this soak's samples in the ledger."""
    since = state.phase_changed or 0.0
    breaches = inconclusive = 0
    for event in ctx.ledger.newest_events(ctx.inventory.name, Kind.SAMPLE.value, since=since):
        inner = event.data.get("data")
        data: dict[str, object] = inner if isinstance(inner, dict) else {}
        if data.get("phase") != state.phase:
            continue
        verdict = str(data.get("verdict"))
        if verdict == "breach" and inconclusive == 0:
            breaches += 1
        elif verdict == "inconclusive" and breaches == 0:
            inconclusive += 1
        else:
            break
    return Budget(budget.policy, breaches, inconclusive)


def _gate_name(gate: GateCheck) -> str:
    name = getattr(gate, "__name__", "gate")
    return str(name).removesuffix("_gate").replace("_", " ")


def _say(_ctx: Context, outcome: Outcome, message: str, phase: int | None) -> AdvanceResult:
    return AdvanceResult(outcome, message, phase)


__all__ = ["AdvanceResult", "GateCheck", "Outcome", "RolloutError", "advance"]
