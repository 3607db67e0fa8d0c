"""``monitor`` and the soak watcher every command that watches a phase builds (``make_soak``).

The watcher rolls back on a breach (notifying), judges a wave's canary against its
baseline, and writes each round for node_exporter's textfile collector when configured.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..events import Kind
from ..executor import Executor, StepReport
from ..ledger import InventoryState
from ..models import NotifyKind, Phase
from .context import Context
from .notifications import notify
from .recording import recorded_phase
from .running import check_fleet, command_text, running

if TYPE_CHECKING:
    from ..soak import Soak  # imported when a soak is watched: metrics pull in urllib


def make_soak(ctx: Context, ex: Executor, phase: Phase, previous: Phase) -> Soak:
    """The soak watcher for ``phase``, with the CLI's interval override applied; during a
    wave, it judges the canary against the baseline (rollout.waves)."""
    from ..soak import Soak
    from ..waves import current_wave, split_for

    wave = current_wave(ctx)

    def on_rollback(reason: str, report: StepReport) -> None:
        if wave is not None and wave.phase == phase.number and wave.verdict is None:
            why = f"absolute thresholds breached: {reason}"  # the wave's record says how it ended
            ctx.ledger.finish_wave(wave.id, "fail", {"verdict": "fail", "score": None,
                                   "metrics": [], "wave": wave.index, "phase": wave.phase,
                                   "reason": why})  # fmt: skip
        notify(
            ctx,
            ex,
            NotifyKind.ROLLBACK_AUTO,
            phase.number,
            previous.number,
            f"automatic rollback of {phase.title} to {previous.title}",
            reason=reason,
            failed=[r.host for r in report.failed],
        )

    policy = ctx.playbook.health_for(phase.number)
    if ctx.options.interval is not None:
        policy = dataclasses.replace(policy, interval=ctx.options.interval)
    split = split_for(ctx, wave) if wave is not None and wave.phase == phase.number else None
    if split is not None:
        previous = split.previous

    def on_fleet_wide(reason: str) -> None:
        from ..canary import WaveJudgement, WaveVerdict
        from ..waves import judge, settle

        assert split is not None
        metrics = judge(ctx, split.wave).metrics
        settle(ctx, ex, split.wave, WaveJudgement(
            WaveVerdict.FLEET_WIDE, None, metrics,
            f"canary and baseline breach the absolute thresholds alike: {reason}"))  # fmt: skip

    return Soak(
        ex,
        ctx.playbook,
        phase,
        previous,
        policy=policy,
        source=ctx.playbook.source,
        clock=ctx.clock,
        wait=ctx.cancel.wait,
        on_rollback=on_rollback,
        on_round=lambda: check_fleet(ctx, ex, what=f"soak of {phase.title}"),
        split=split,
        on_fleet_wide=on_fleet_wide if split is not None else None,
        on_sample=_textfile_writer(ctx, phase),
    )


def _textfile_writer(ctx: Context, phase: Phase) -> Callable[[Mapping[str, Any]], None] | None:
    """Each soak round written for node_exporter's textfile collector (``health.textfile``)."""
    path = ctx.playbook.textfile
    if path is None:
        return None

    def write(data: Mapping[str, Any]) -> None:
        from ..wavereport import prometheus_text, write_textfile

        write_textfile(path, prometheus_text(ctx.inventory.name, phase.number, data))

    return write


def monitor(ctx: Context) -> InventoryState:
    """Start or resume the recorded phase's soak; roll back on breach."""
    if ctx.limited:
        raise UsageError("monitor watches the whole inventory; drop --limit")
    state = ctx.ledger.state(ctx.inventory.name)
    if state.phase is None:
        raise UsageError(
            "no phase is recorded for this inventory; deploy one first",
            hint="invoke deploy --phase 1",
        )
    phase = recorded_phase(ctx, state.phase)
    previous = ctx.playbook.phase(max(0, phase.number - 1))
    with running(ctx, command_text("monitor", ctx.options)) as (run, _lock, ex):
        if ctx.options.soak is not None and ctx.options.soak != state.soak_required:
            state = ctx.ledger.set_soak_required(ctx.inventory.name, ctx.options.soak, run.id)
        from ..soakrecord import soak_done

        if soak_done(ctx.ledger, state):
            ex.emit(
                Kind.SOAK,
                f"soak of {phase.title} is already complete",
                ok=True,
                phase=phase.number,
                complete=True,
            )
            return state
        failed, _readings = ex.claim()
        check_fleet(ctx, ex, what=f"monitor of {phase.title}")
        if failed:
            ex.emit(
                Kind.WARNING,
                f"{len(failed)} host(s) unreachable; their samples count as inconclusive",
            )
        from ..waves import close_final, current_wave, judge, settle

        wave = current_wave(ctx)
        state = make_soak(ctx, ex, phase, previous).run()
        if wave is not None and not wave.final and wave.verdict is None:
            settle(ctx, ex, wave, judge(ctx, wave))  # the next wave is for deploy or advance
        close_final(ctx, ex)
        return state
