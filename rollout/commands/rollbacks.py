"""``rollback`` and ``rollback --emergency``: every reachable host to an earlier phase, verified.

A rollback reads before it writes and never moves a host forward past where this fleet
ever verified it; an emergency takes the lock over, pauses the fleet, converges in
parallel and restarts services; both end by recording and notifying what verified.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from ..errors import (
    HostError,
    HostOutcome,
    HostsUnreachable,
    Interrupted,
    Refused,
    RollbackIncomplete,
)
from ..events import Kind
from ..executor import Executor, StepReport
from ..ledger import LockRecord, RunRecord
from ..models import NotifyKind, Observed, Phase
from ..plan import Action, resolve_target
from .context import EMERGENCY_RETRY, Context
from .notifications import notify
from .recording import record_phase
from .running import check_fleet, command_text, ledger_knowledge, running


def rollback(
    ctx: Context, to: int | None = None, *, reason: str | None = None, force: bool = False
) -> StepReport:
    """Converge every reachable selected host to an earlier phase's full state, verified."""
    recorded = ctx.ledger.state(ctx.inventory.name).phase
    target = resolve_target(Action.ROLLBACK, ctx.playbook, recorded, to, force=force)
    with running(ctx, command_text("rollback", ctx.options), reason) as (run, _lock, ex):
        ex.emit(
            Kind.ROLLBACK,
            f"rolling back to {target.title}" + (f": {reason}" if reason else ""),
            target=target.number,
            reason=reason,
        )
        unreachable, readings = ex.claim()
        check_fleet(ctx, ex, what=f"rollback to {target.title}")
        reachable = [h for h in ex.hosts if h not in unreachable]
        behind = _behind(ctx, ex, reachable, target, {n: r.flags for n, r in readings.items()})
        if behind:
            shown = ", ".join(f"{h} (at phase {p})" for h, p in behind.items())
            lowest = min(behind.values())
            raise Refused(
                f"rollback to {target.title} would move {len(behind)} host(s) forward: {shown}; "
                "a rollback never moves a host past the phase it is at; nothing was changed",
                hint=f"`invoke rollback --to {lowest} --reason ...` (the lowest phase a host "
                "is at), or `invoke status` to see every host",
            )
        try:
            report = ex.converge_with_retry(reachable, target, Action.ROLLBACK)
        except KeyboardInterrupt:
            raise Interrupted(
                f"rollback to {target.title} interrupted; the recorded phase is unchanged",
                hint=f"`invoke status` shows each host; finish with `invoke rollback --to "
                f"{target.number} --reason ...`",
            ) from None
        return _finish_rollback(
            ctx,
            ex,
            run,
            report,
            unreachable,
            target.number,
            target.soak,
            recorded=recorded,
            reason=reason,
        )


def emergency(ctx: Context, to: int | None = None, *, reason: str | None = None) -> StepReport:
    """Emergency rollback: no checks, no soak; take the lock over; every reachable host to the
    emergency phase's full state in parallel, restart services, re-apply and verify."""
    recorded = ctx.ledger.state(ctx.inventory.name).phase
    target = resolve_target(Action.EMERGENCY, ctx.playbook, recorded, to)
    if ctx.options.retry_deadline is None:  # an explicit --give-up-after wins
        ctx.options = dataclasses.replace(ctx.options, retry_deadline=EMERGENCY_RETRY)
    command = command_text("rollback", ctx.options)
    hint = (
        f"finish it with `invoke rollback --emergency --to {target.number} --reason ...`; "
        "`invoke status` shows each host"
    )
    with running(ctx, command, reason, takeover=True) as (run, lock, ex):
        try:
            return _emergency_body(ctx, ex, run, lock, target, recorded, reason)
        except KeyboardInterrupt:  # a second signal: what was verified is in the ledger
            state = ctx.ledger.state(ctx.inventory.name)
            if not state.paused:
                ctx.ledger.set_paused(ctx.inventory.name, True, run.who, "emergency rollback "
                                      "interrupted")  # fmt: skip
            raise Interrupted(
                f"emergency rollback to {target.title} interrupted; the ledger records phase "
                f"{state.phase} and rollouts are paused",
                hint=hint,
            ) from None
        except Interrupted as exc:  # the first signal, settled between steps (the restarts)
            if exc.hint is None:
                exc.hint = hint
            raise


def _emergency_body(
    ctx: Context,
    ex: Executor,
    run: RunRecord,
    lock: LockRecord,
    target: Phase,
    recorded: int | None,
    reason: str | None,
) -> StepReport:
    """The emergency after its lock: pause, read, record the target, converge, restart."""
    # paused first: whatever happens next, no scheduled advance acts on this fleet
    ctx.ledger.set_paused(
        ctx.inventory.name, True, run.who, f"emergency rollback: {reason or 'no reason given'}"
    )
    if lock.previous is not None:
        old = lock.previous
        ex.emit(
            Kind.WARNING,
            f"took over the lock of {old.who}@{old.where} pid {old.pid} "
            f"({old.command}); that run must stop changing hosts",
            previous_lock=old.id,
            previous_run=old.run_id,
        )
    why = f"emergency rollback: {reason or 'no reason given'}"
    if ex.side is not None:
        ex.side.pause = (f"{run.who}@{run.where}", why)  # written on every host it changes
    ex.emit(
        Kind.ROLLBACK,
        f"EMERGENCY ROLLBACK to {target.title}" + (f": {reason}" if reason else ""),
        ok=False,
        target=target.number,
        reason=reason,
        emergency=True,
    )
    unreachable_first, readings = ex.claim(force=True)
    knowledge = ledger_knowledge(ctx.ledger, ctx.inventory.name)
    for host, state in (ex.side.states.items() if ex.side else ()):
        rec = state.record
        if rec is not None and not knowledge.knows(host, rec):
            ex.emit(Kind.WARNING, f"overriding another controller's change: {rec.story()}",
                    host=host)  # fmt: skip
    if ex.side is not None:  # hosts leased now may be taken by a later emergency; the
        # others (unreachable now) are taken over by the apply itself if they come back
        ex.side.replace = {h: "*" for h in unreachable_first}
    behind = _behind(ctx, ex, ex.hosts, target, {n: r.flags for n, r in readings.items()})
    for host, at in behind.items():
        ex.emit(
            Kind.WARNING,
            f"already at phase {at}, behind {target.title}: left as it is "
            "(an emergency only goes back)",
            host=host,
            phase=at,
        )
    if behind and len(behind) == len(ex.hosts):
        raise Refused(
            f"every host is already behind {target.title}: an emergency only goes back; "
            "nothing was changed",
            hint="`invoke status` shows each host's phase",
        )
    ahead = [h for h in ex.hosts if h not in behind]
    # hosts left behind hold an earlier phase: record the lowest, so that no later drift
    # repair moves them forward (status shows the hosts that are ahead of it). Recorded
    # before the first change, so that an interrupted emergency still records it.
    floor = ctx.playbook.phase(min([target.number, *behind.values()]))
    record_phase(ctx, ex, run, floor.number, floor.soak)
    report = ex.converge_with_retry(ahead, target, Action.EMERGENCY)
    if ctx.playbook.emergency.restart and ctx.restart is not None:
        verified = [r.host for r in report.results if r.ok]
        report = _merge(report, ctx.restart(ex, target, verified))
    unreachable = {r.host: r.error for r in report.results if r.unreachable}
    remaining = StepReport(target, tuple(r for r in report.results if not r.unreachable))
    return _finish_rollback(
        ctx,
        ex,
        run,
        remaining,
        unreachable,
        floor.number,
        floor.soak,
        emergency=True,
        recorded=recorded,
        reason=reason,
        already_recorded=True,
    )


def _behind(
    ctx: Context,
    ex: Executor,
    names: Sequence[str],
    target: Phase,
    known: Mapping[str, Mapping[str, Observed]] | None = None,
) -> dict[str, int]:
    """The hosts that read back at a phase below ``target`` and that this fleet's record never
    verified at ``target`` or beyond, with the phase they are at.

    A rollback reads before it writes: converging those hosts would move them forward, past
    where they have ever been in this fleet. A host that was verified at or beyond the target
    and reads back lower has lost its flags (a restarted node holds its defaults): putting it
    at the target restores the fleet's state, so it is not "behind". A host that cannot be
    read, or whose flags match no phase, is not judged here (the converge settles it).
    """
    from ..fleet import run_parallel

    if known is None:  # read now (``known``: what the run's claim has just read)
        outcomes = run_parallel(list(names), lambda n: ex.backend.console(n).read_flags())
        known = {n: o.value.flags for n, o in outcomes.items() if o.value is not None}
    reached = _highest_verified(ctx)
    behind: dict[str, int] = {}
    for name in names:
        flags = known.get(name)
        if flags is None:
            continue
        at = ctx.playbook.match(flags)
        if at is not None and at < target.number and reached.get(name, -1) < target.number:
            behind[name] = at
    return behind


def _highest_verified(ctx: Context) -> dict[str, int]:
    """Per host, the highest phase this fleet's ledger shows it verified at (read back)."""
    reached: dict[str, int] = {}
    for event in ctx.ledger.inventory_events(ctx.inventory.name, Kind.VERIFY.value):
        inner = event.data.get("data")
        phase = inner.get("phase") if isinstance(inner, dict) else None
        if event.host and event.data.get("ok") is True and isinstance(phase, int):
            reached[event.host] = max(phase, reached.get(event.host, -1))
    return reached


def _merge(first: StepReport, second: StepReport) -> StepReport:
    """``first`` with the hosts ``second`` reports on replaced by their newer results."""
    newer = {r.host: r for r in second.results}
    return StepReport(first.target, tuple(newer.get(r.host, r) for r in first.results))


def _detail(error: object) -> str | None:
    return error.detail if isinstance(error, HostError) else None if error is None else str(error)


def _finish_rollback(
    ctx: Context,
    ex: Executor,
    run: RunRecord,
    report: StepReport,
    unreachable: Mapping[str, object],
    phase: int,
    soak: float,
    *,
    emergency: bool = False,
    recorded: int | None = None,
    reason: str | None = None,
    already_recorded: bool = False,
) -> StepReport:
    failed = [r.host for r in report.failed]
    kind = NotifyKind.ROLLBACK_EMERGENCY if emergency else NotifyKind.ROLLBACK_MANUAL
    verified = len(report.results) - len(failed)
    if ((not failed and not unreachable) or emergency) and not already_recorded:
        # An emergency records its target even when incomplete: that is the state the fleet
        # must be in, and `status` then shows every host that still differs from it.
        # Recorded before anything is announced: no side output can keep it from the ledger.
        record_phase(ctx, ex, run, phase, soak)
    notify(
        ctx,
        ex,
        kind,
        recorded,
        phase,
        f"{'emergency ' if emergency else ''}rollback to phase {phase}: {verified} host(s) "
        f"verified, {len(failed) + len(unreachable)} not",
        reason=reason,
        failed=[*failed, *unreachable],
    )
    if not failed and not unreachable:
        return report
    parts = []
    if unreachable:
        parts.append(f"unreachable: {', '.join(unreachable)}")
    if failed:
        parts.append(f"not verified: {', '.join(failed)}")
    message = (
        f"rollback to phase {phase} is INCOMPLETE ({'; '.join(parts)}); "
        f"{len(report.results) - len(failed)} host(s) verified"
    )
    hint = f"bring those hosts back, then re-run `invoke rollback --to {phase}`"
    if emergency:
        hint = "bring those hosts back, then re-run `invoke rollback --emergency`"
    results = [r.summary() for r in report.results]
    results += [HostOutcome(h, False, _detail(e), True) for h, e in unreachable.items()]
    if failed:
        raise RollbackIncomplete(message, hint=hint, results=results)
    raise HostsUnreachable(message, hint=hint, results=results)
