"""Waves: a phase reaches the fleet a share at a time, each share soaked and judged (issue 16).

A phase with ``waves:`` is applied to a growing share of the fleet: wave 1's hosts, then enough
more to reach wave 2's cumulative size, and so on; the hosts left after the last listed wave form
the *final* wave, soaked for the phase's own ``soak``. ``serial`` still batches the apply inside
a wave. During a wave, the hosts changed in this phase so far are the **canary** and the hosts
still at the previous phase are the **baseline**: same time, same fleet.

Each wave is applied and verified, then soaked. While it soaks, absolute thresholds judge the
canary only (a baseline host breaching alone says nothing about the phase); a breach the baseline
shares is **fleet-wide**: nothing is rolled back and a person decides. A breach of the canary
alone rolls the fleet back as any soak does. When the soak is served, the canary's samples are
judged against the baseline's from the same window (:mod:`rollout.canary`):

- ``pass``: the next wave may start (``deploy`` goes on; ``advance`` applies it on its next call);
- ``fail``: only the canary hosts go back to the previous phase, verified, and rollouts pause;
- ``marginal``, ``inconclusive``, ``fleet-wide``: nothing changes; the next wave waits for
  ``invoke approve --phase N`` recorded after the verdict (inconclusive is never a pass).

The final wave has no baseline and is judged on the absolute thresholds alone.

What the ledger holds (``waves`` table, schema 3): one row per applied wave with its hosts, the
canary so far, its soak, and once judged its verdict and the judgement's evidence. Applying a
wave records the phase and the wave in one transaction, so the record always says which hosts
have the phase; the wave is *current* while the inventory's phase was recorded by its run.

The plan of the waves (which hosts, which canary, which soak) is pure and lives in
:mod:`rollout.waveplan`; what renders the recorded waves is :mod:`rollout.wavereport`. This
module walks them: the record, judging and settling a wave, applying the next.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Any

from .canary import Outcome, WaveJudgement, WaveVerdict, judge_wave
from .commands.context import Context
from .commands.notifications import notify
from .commands.recording import supersede
from .errors import HostsUnreachable, Interrupted, Refused, RollbackIncomplete, RolledBack, WaveHeld
from .events import Kind
from .executor import Executor, StepReport
from .ledger import InventoryState, RunRecord, WaveRecord
from .models import NotifyKind, Phase
from .plan import Action, Plan
from .soakrecord import Split
from .waveplan import WavePlan, plan_waves, sub_plan
from .yamlsrc import format_duration

#: Verdicts after which the next wave waits for a person's approval.
HELD = (WaveVerdict.MARGINAL.value, WaveVerdict.INCONCLUSIVE.value, WaveVerdict.FLEET_WIDE.value)


# -- the record ------------------------------------------------------------------------------


def current_wave(ctx: Context, state: InventoryState | None = None) -> WaveRecord | None:
    """The wave the inventory is in: the latest, while its run's phase is the recorded one."""
    state = state or ctx.ledger.state(ctx.inventory.name)
    wave = ctx.ledger.latest_wave(ctx.inventory.name)
    if wave is None or state.phase != wave.phase or state.phase_run_id != wave.run_id:
        return None
    return wave


def split_for(ctx: Context, wave: WaveRecord | None) -> Split | None:
    """The canary/baseline split while ``wave`` soaks (None for a final wave: no baseline)."""
    if wave is None or wave.final:
        return None
    canary = frozenset(wave.canary)
    baseline = frozenset(h.name for h in ctx.inventory.hosts if h.name not in canary)
    return Split(wave, canary, baseline, ctx.playbook.phase(wave.from_phase))


def approved_after(ctx: Context, wave: WaveRecord) -> bool:
    """Someone approved the wave's phase after its verdict was recorded."""
    done = wave.finished or wave.started
    return any(a.ts >= done for a in ctx.ledger.approvals(ctx.inventory.name, wave.phase))


# -- judging -----------------------------------------------------------------------------------


Samples = dict[str, list[float]]


def samples(ctx: Context, wave: WaveRecord) -> tuple[Samples, Samples]:
    """The canary's and the baseline's recorded samples of ``wave``, per metric (from the
    ledger's sample events: the judgement is made from what the record holds)."""
    canary: dict[str, list[float]] = defaultdict(list)
    baseline: dict[str, list[float]] = defaultdict(list)
    members = set(wave.canary)
    events = ctx.ledger.newest_events(ctx.inventory.name, Kind.SAMPLE.value, since=wave.started)
    for event in events:  # newest first: each side's samples are a set, their order is moot
        inner = event.data.get("data")
        if not isinstance(inner, dict) or inner.get("wave_id") != wave.id:
            continue
        values = inner.get("values")
        for host, metrics in (values.items() if isinstance(values, dict) else ()):
            if not isinstance(metrics, dict):
                continue
            side = canary if host in members else baseline
            for metric, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    side[str(metric)].append(float(value))
    return canary, baseline


def judge(ctx: Context, wave: WaveRecord) -> WaveJudgement:
    """Judge a non-final wave's canary against its baseline from the recorded samples."""
    policy = ctx.playbook.health_for(wave.phase)
    if not policy.comparisons:
        return WaveJudgement(WaveVerdict.PASS, None, (), "no metric is compared: absolute "
                             "thresholds only, and they held for the whole soak")  # fmt: skip
    canary, baseline = samples(ctx, wave)
    thresholds = {t.metric: t for t in policy.thresholds}
    return judge_wave(policy.comparisons, canary, baseline, thresholds,
                      ctx.playbook.scoring_for(wave.phase))  # fmt: skip


def evidence(ctx: Context, wave: WaveRecord, judgement: WaveJudgement) -> dict[str, Any]:
    """What the ledger and the ``judgement`` event keep of a judgement."""
    canary = set(wave.canary)
    return {
        **judgement.as_data(),
        "phase": wave.phase,
        "wave": wave.index,
        "wave_id": wave.id,
        "total": wave.total,
        "canary": list(wave.canary),
        "baseline": [h.name for h in ctx.inventory.hosts if h.name not in canary],
    }


def settle(ctx: Context, ex: Executor, wave: WaveRecord, judgement: WaveJudgement) -> WaveRecord:
    """Record the wave's verdict and act on it: return on pass; roll the canary back on fail
    (raises RolledBack); raise WaveHeld when a person must decide."""
    data = evidence(ctx, wave, judgement)
    verdict = judgement.verdict
    record = ctx.ledger.finish_wave(wave.id, verdict.value, data)
    ex.emit(Kind.JUDGEMENT, f"{wave.title}: {verdict.value} ({judgement.reason})",
            ok=verdict is WaveVerdict.PASS, **data)  # fmt: skip
    for m in judgement.metrics:
        ex.emit(Kind.INFO, f"{wave.title}, {m.metric}: {m.outcome.value}: {m.reason}",
                ok=m.outcome is Outcome.PASS, wave=wave.index, metric=m.metric)  # fmt: skip
    if verdict is WaveVerdict.PASS:
        return record
    if verdict is WaveVerdict.FAIL:
        roll_back_canary(ctx, ex, record, judgement.reason)
    raise held(record)


def held(wave: WaveRecord) -> WaveHeld:
    """The error that says a wave waits for a person, and what that person may do."""
    verdict = wave.verdict or "inconclusive"
    reason = str(wave.judgement.get("reason") or verdict)
    why = {
        WaveVerdict.MARGINAL.value: f"is marginal ({reason})",
        WaveVerdict.INCONCLUSIVE.value: f"could not be judged ({reason}); inconclusive is "
        "never a pass",
        WaveVerdict.FLEET_WIDE.value: f"saw a fleet-wide breach ({reason}): the baseline is as "
        "bad as the canary, so the phase is not blamed and nothing was rolled back",
    }.get(verdict, reason)
    return WaveHeld(
        f"{wave.title} {why}; the next wave waits for a person",
        hint=f"to go on: `invoke approve --phase {wave.phase}`, then `invoke advance` (or "
        f"`invoke deploy --phase {wave.phase}`); to undo: `invoke rollback --to "
        f"{wave.from_phase} --reason ...`; `invoke report` shows the judgement",
    )


def roll_back_canary(ctx: Context, ex: Executor, wave: WaveRecord, reason: str) -> None:
    """A failed wave: only its canary hosts go back to the previous phase, verified; paused."""
    target = ctx.playbook.phase(wave.from_phase)
    inv = ctx.inventory.name
    why = f"{wave.title} failed its judgement: {reason}"
    ex.emit(Kind.ROLLBACK, f"AUTOMATIC ROLLBACK of the canary ({', '.join(wave.canary)}) to "
            f"{target.title}: {why}", ok=False, target=target.number, reason=why,
            hosts=list(wave.canary), wave=wave.index)  # fmt: skip
    if ex.side is not None:
        ex.side.pause = ("rollout (automatic rollback)", why)
    # recorded and paused before the first host changes, as every automatic rollback is
    ctx.ledger.set_phase(inv, target.number, ex.run.id, soak_required=target.soak)
    ctx.ledger.set_paused(inv, True, "rollout (automatic rollback)", why)
    try:
        report = ex.converge_with_retry(list(wave.canary), target, Action.ROLLBACK)
    except KeyboardInterrupt:
        raise Interrupted(
            f"rollback of {wave.title}'s canary interrupted; the ledger records phase "
            f"{target.number} and rollouts are paused",
            hint=f"finish it with `invoke rollback --to {target.number} --reason ...`",
        ) from None
    failed = [r.host for r in report.failed]
    notify(ctx, ex, NotifyKind.ROLLBACK_AUTO, wave.phase, target.number,
           f"automatic rollback of {wave.title}'s canary to {target.title}", reason=why,
           failed=failed)  # fmt: skip
    if failed:
        raise RollbackIncomplete(
            f"the rollback of {wave.title}'s canary to {target.title} did not verify on "
            f"{', '.join(failed)} ({why})",
            hint=f"bring those hosts back, then `invoke rollback --to {target.number}`; "
            "rollouts of this inventory are paused",
        )
    raise RolledBack(
        f"{why}. Only the canary ({len(report.results)} host(s): {', '.join(wave.canary)}) "
        f"was rolled back to {target.title} and verified; the baseline was never changed",
        hint=f"rollouts of this inventory are paused: investigate, then `invoke resume` and "
        f"`invoke deploy --phase {wave.phase}`; `invoke report --run {ex.run.id}` shows the "
        "judgement",
    )


def close_final(ctx: Context, ex: Executor | None = None) -> None:
    """Record the final wave's verdict (absolute thresholds only) once its soak is served."""
    wave = current_wave(ctx)
    if wave is None or not wave.final or wave.verdict is not None:
        return
    data: dict[str, Any] = {
        "verdict": WaveVerdict.PASS.value, "score": None, "metrics": [], "phase": wave.phase,
        "wave": wave.index, "wave_id": wave.id, "total": wave.total,
        "reason": "final wave: no baseline left; the absolute thresholds held for its soak",
    }  # fmt: skip
    ctx.ledger.finish_wave(wave.id, WaveVerdict.PASS.value, data)
    if ex is not None:
        ex.emit(Kind.WAVE, f"{wave.title} (final): its soak is served", ok=True, **data)


# -- applying --------------------------------------------------------------------------------


def continuing(ctx: Context, target: Phase) -> WaveRecord | None:
    """The current, non-final wave of ``target`` that a deploy of it goes on from."""
    wave = current_wave(ctx)
    if wave is None or wave.phase != target.number or wave.final:
        return None
    return wave


def refuse_past_waves(ctx: Context, target: Phase) -> None:
    """A phase other than the one whose waves are under way may not start: its baseline
    hosts would be left two phases behind."""
    wave = current_wave(ctx)
    if wave is None or wave.final or wave.phase == target.number:
        return
    total = len(ctx.inventory.hosts)
    raise Refused(
        f"{target.title} cannot start: {wave.title} is under way ({len(wave.canary)} of "
        f"{total} host(s) have phase {wave.phase}, the rest are at phase {wave.from_phase}); "
        "nothing was changed",
        hint=f"finish phase {wave.phase}'s waves (`invoke advance`, or `invoke deploy --phase "
        f"{wave.phase}`), or go back with `invoke rollback --to {wave.from_phase} --reason ...`",
    )


def describe_waves(ctx: Context, ex: Executor, target: Phase) -> None:
    """Say how ``target`` will reach the fleet (``invoke plan``): each wave's hosts and soak."""
    soak = ctx.options.soak if ctx.options.soak is not None else target.soak
    plans = plan_waves([h.name for h in ctx.hosts], target, soak)
    text = " | ".join(f"{p.index}: {', '.join(p.hosts)} ({format_duration(p.soak)})"
                      for p in plans)  # fmt: skip
    waves = [{"wave": p.index, "hosts": list(p.hosts), "soak": p.soak} for p in plans]
    ex.emit(Kind.INFO, f"{target.title} goes out in {len(plans)} wave(s): {text}",
            phase=target.number, waves=waves)  # fmt: skip


def deploy_waves(
    ctx: Context, ex: Executor, run: RunRecord, plan: Plan, target: Phase, soak: float
) -> StepReport:
    """Walk ``target``'s waves from where the ledger stands: with ``--no-wait`` one wave is
    applied; otherwise every remaining wave is applied, soaked and judged in turn."""
    from .commands.monitoring import make_soak

    names = [h.name for h in ctx.hosts]
    plans = plan_waves(names, target, soak)
    wave = continuing(ctx, target)
    if wave is not None:
        undo = ctx.playbook.phase(wave.from_phase)
        _ready_for_next(ctx, ex, wave, ctx.options.wait)
        todo = [p for p in plans if p.index > wave.index]
        done = set(wave.canary)
    else:
        assert plan.undo is not None
        undo = plan.undo
        todo, done = list(plans), set()
    results: list[StepReport] = []
    for wplan in todo:
        wplan = replace(wplan, hosts=tuple(h for h in wplan.hosts if h not in done))
        record, report = apply_wave(ctx, ex, run, plan, target, undo, wplan)
        results.append(report)
        done.update(record.canary)
        if not ctx.options.wait:
            left = format_duration(record.soak)
            ex.emit(Kind.INFO, f"not waiting for the soak of {record.title} ({left}): "
                    "`invoke advance` walks the waves")  # fmt: skip
            break
        make_soak(ctx, ex, target, undo).run()
        if record.final:
            close_final(ctx, ex)
            break
        settle(ctx, ex, record, judge(ctx, record))
    merged = {r.host: r for report in results for r in report.results}
    return StepReport(target, tuple(merged.values()))


def _ready_for_next(ctx: Context, ex: Executor, wave: WaveRecord, wait: bool) -> None:
    """Refuse to apply the wave after ``wave`` unless it passed or a person approved it;
    with ``wait``, a wave still soaking is soaked and judged first."""
    from .commands.monitoring import make_soak

    if wave.verdict is None:
        if not wait:
            raise Refused(
                f"{wave.title} is still soaking; nothing was changed",
                hint="`invoke advance` takes its next sample (or `invoke monitor` watches it)",
            )
        phase, previous = ctx.playbook.phase(wave.phase), ctx.playbook.phase(wave.from_phase)
        make_soak(ctx, ex, phase, previous).run()
        wave = settle(ctx, ex, wave, judge(ctx, wave))
    if wave.verdict in HELD and not approved_after(ctx, wave):
        raise held(wave)


def apply_wave(
    ctx: Context,
    ex: Executor,
    run: RunRecord,
    plan: Plan,
    target: Phase,
    undo: Phase,
    wplan: WavePlan,
) -> tuple[WaveRecord, StepReport]:
    """Apply one wave, batch by batch, verified; record the phase and the wave together."""
    ex.emit(Kind.WAVE, f"wave {wplan.index}/{wplan.total} of {target.title}: "
            f"{', '.join(wplan.hosts)} (soak {format_duration(wplan.soak)})",
            phase=target.number, wave=wplan.index, total=wplan.total, hosts=list(wplan.hosts),
            canary=list(wplan.canary), soak=wplan.soak)  # fmt: skip
    sub = sub_plan(plan, wplan, undo, ctx.playbook.policy.serial)
    report = ex.execute_deploy(sub)
    failed = {r.host for r in report.failed}
    canary = [h for h in wplan.canary if h not in failed]
    supersede(ctx, ex, run)
    record = ctx.ledger.start_wave(
        ctx.inventory.name, run.id, phase=target.number, from_phase=undo.number,
        index=wplan.index, total=wplan.total, hosts=[h for h in wplan.hosts if h not in failed],
        canary=canary, soak=wplan.soak,
    )  # fmt: skip
    ex.emit(Kind.INFO, f"recorded phase {target.number} for {ctx.inventory.name} "
            f"({record.title}: {len(canary)} canary host(s))", phase=target.number,
            wave=record.index)  # fmt: skip
    if failed:
        raise HostsUnreachable(
            f"{record.title} applied within the fail budget, but {len(failed)} host(s) failed "
            "and were put back: " + ", ".join(sorted(failed)),
            hint="fix those hosts, then re-run the same deploy",
        )
    return record, report
