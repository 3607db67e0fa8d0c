"""``deploy``, ``plan`` and ``check``: a phase applied batch by batch, its plan, its checklist.

The readiness checklist gates a deploy (unless skipped, which is recorded); a deploy with
waves is walked by :mod:`rollout.waves`; the soak after it is :mod:`.monitoring`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .. import wiring
from ..errors import HostsUnreachable, Refused, RolloutError
from ..events import Kind
from ..executor import Executor, StepReport
from ..ledger import RunRecord
from ..models import NotifyKind, Phase
from ..plan import Action, Plan, resolve_target
from ..yamlsrc import format_duration
from .context import Context
from .monitoring import make_soak
from .notifications import notify
from .recording import record_phase
from .running import check_fleet, command_text, running

if TYPE_CHECKING:
    from ..checks import CheckReport


def deploy(ctx: Context, phase: int, *, force: bool = False) -> StepReport:
    """Converge the selected hosts to ``phase``'s full state, batch by batch, verified."""
    recorded = ctx.ledger.state(ctx.inventory.name).phase
    target = resolve_target(Action.DEPLOY, ctx.playbook, recorded, phase, force=force)
    with running(ctx, command_text("deploy", ctx.options)) as (run, _lock, ex):
        from ..waves import continuing, refuse_past_waves

        refuse_past_waves(ctx, target)
        _readiness_gate(ctx, ex, target)

        # a phase whose waves are under way has passed its gates when its first wave started
        for gate in () if continuing(ctx, target) else wiring.deploy_gates():
            why = gate(ctx, target, ctx.ledger.state(ctx.inventory.name))
            if why is not None:
                raise Refused(f"{target.title} cannot start: {why}")
        readings = ex.preflight()
        check_fleet(ctx, ex, what=f"deploy of {target.title}")
        plan = ex.plan(Action.DEPLOY, target, readings, recorded)
        ex.confirm_risk(target, ctx.options.yes, ctx.confirm)
        notify(
            ctx,
            ex,
            NotifyKind.DEPLOY_START,
            recorded,
            target.number,
            f"deploying {target.title} to {len(ctx.hosts)} host(s)",
        )
        summary = "failed"
        try:
            report = _deploy_body(ctx, ex, run, plan, target)
            summary = f"{target.title} applied and verified on {len(report.results)} host(s)"
            return report
        except RolloutError as exc:
            summary = exc.message
            raise
        finally:
            notify(ctx, ex, NotifyKind.DEPLOY_FINISH, recorded, target.number, summary)


def _readiness_gate(ctx: Context, ex: Executor, target: Phase) -> None:
    """Run the readiness checklist before a deploy (unless skipped, which is recorded)."""
    if not target.gates.checks:
        return
    if ctx.options.skip_checks:
        ex.emit(Kind.WARNING, "readiness checks SKIPPED (--skip-checks)", skipped_checks=True)
        return
    report = run_readiness(ctx, ex)
    if not report.ok:
        passed, total = report.overall
        raise Refused(
            f"readiness checks failed ({passed}/{total} passed); nothing was changed",
            hint="fix the failing checks (`invoke check` lists them), or pass --skip-checks",
        )


def run_readiness(ctx: Context, ex: Executor) -> CheckReport:
    from ..checks import run_checks
    from ..junit import junit_xml

    source = Path(ctx.options.source) if ctx.options.source else None
    report = run_checks(ctx.playbook, ex.backend, ex.hosts, source_root=source, emit=ex.emit_raw,
                        clock=ex.clock)  # fmt: skip
    if ctx.options.junit:
        Path(ctx.options.junit).write_text(junit_xml(report), encoding="utf-8")
    return report


def check(ctx: Context) -> CheckReport:
    """The readiness checklist on its own (the caller decides what a failure means)."""
    with running(ctx, command_text("check", ctx.options), lease=False) as (_run, _lock, ex):
        return run_readiness(ctx, ex)


def _deploy_body(
    ctx: Context, ex: Executor, run: RunRecord, plan: Plan, target: Phase
) -> StepReport:
    watch = ctx.options.wait and not ctx.limited
    soak = ctx.options.soak if ctx.options.soak is not None else target.soak
    if target.waves and not ctx.limited and len(ctx.hosts) > 1:
        from ..waves import deploy_waves

        return deploy_waves(ctx, ex, run, plan, target, soak)
    if target.waves:
        ex.emit(Kind.WARNING, f"{target.title}'s waves are skipped: "
                + ("--limit picks the hosts" if ctx.limited else "one host has no baseline"))
    report = ex.execute_deploy(plan, release_last=not watch)
    record_phase(ctx, ex, run, target.number, soak)
    failed = report.failed
    if failed:
        raise HostsUnreachable(
            f"{target.title} applied within the fail budget, but "
            f"{len(failed)} host(s) failed and were put back: " + ", ".join(r.host for r in failed),
            hint="fix those hosts, then re-run the same deploy",
            results=[r.summary() for r in failed],
        )
    if watch:
        assert plan.undo is not None
        make_soak(ctx, ex, target, plan.undo).run()
    elif not ctx.limited:
        ex.emit(
            Kind.INFO,
            f"not waiting for the soak ({format_duration(soak)}): "
            "run `invoke monitor` (or `invoke advance` from a scheduler) to watch it",
        )
    return report


def make_plan(ctx: Context, phase: int, *, force: bool = False) -> Plan:
    """The plan deploy would execute now: hosts are read, nothing is changed, no lock taken."""
    recorded = ctx.ledger.state(ctx.inventory.name).phase
    target = resolve_target(Action.DEPLOY, ctx.playbook, recorded, phase, force=force)
    with running(ctx, command_text("plan", ctx.options), lease=False) as (_run, _lock, ex):
        readings = ex.preflight()
        plan = ex.plan(Action.DEPLOY, target, readings, recorded)
        if target.waves and not ctx.limited:
            from ..waves import describe_waves

            describe_waves(ctx, ex, target)
        return plan
