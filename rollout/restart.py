"""Rolling restarts: a batch at a time, restart, wait for the console, re-apply, verify.

Flags live in the node's memory, so a restart puts every flag back to its default. A host is
therefore done only when its console answers again and the recorded phase's full state was
re-applied and read back; only then does the next batch start. The first host that fails to
restart, to answer or to verify stops the restart: later batches are left untouched.

How a host restarts: its inventory ``restart_command`` (trusted operator config, run as
``sh -c <command>`` with nothing interpolated into it), else
``sudo -n systemctl restart <service>`` where the service is the ``service`` argument or
the host's ``service`` variable.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from .clock import Clock
from .errors import HostError, HostsUnreachable, UsageError
from .events import Kind
from .executor import Executor, HostResult, StepReport
from .fleet import run_parallel
from .models import Host, Observed, Phase
from .plan import Action

SERVICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@._-]*$")
#: First pause between console polls after a restart (doubling), and its cap, in seconds.
POLL_PAUSE = 0.5
POLL_PAUSE_MAX = 5.0


class RestartStatus(Enum):
    VERIFIED = "verified"  # restarted, answered, the phase re-applied and read back
    RESTARTED = "restarted"  # restarted and answered; no phase recorded to re-apply
    RESTART_FAILED = "restart_failed"  # the restart command failed or timed out
    NO_ANSWER = "no_answer"  # restarted, but the console did not answer in time
    NOT_VERIFIED = "not_verified"  # answered, but the phase's state did not read back
    UNTOUCHED = "untouched"  # not restarted: an earlier batch failed


@dataclass(frozen=True)
class HostRestart:
    """One host's outcome."""

    host: str
    status: RestartStatus
    batch: int  # 1-based
    error: str | None = None
    flags: Mapping[str, Observed] = field(default_factory=dict)  # the last read-back
    mismatched: tuple[str, ...] = ()  # flags whose read-back differs from the phase

    @property
    def ok(self) -> bool:
        return self.status in (RestartStatus.VERIFIED, RestartStatus.RESTARTED)

    @property
    def restarted(self) -> bool:
        """Whether the restart command succeeded (the node may still have failed after)."""
        return self.status not in (RestartStatus.UNTOUCHED, RestartStatus.RESTART_FAILED)


@dataclass(frozen=True)
class RestartReport:
    phase: Phase | None  # what was re-applied; None: nothing was recorded
    batches: tuple[tuple[str, ...], ...]
    hosts: tuple[HostRestart, ...]  # in inventory order

    def _names(self, keep: Callable[[HostRestart], bool]) -> tuple[str, ...]:
        return tuple(h.host for h in self.hosts if keep(h))

    @property
    def restarted(self) -> tuple[str, ...]:
        return self._names(lambda h: h.restarted)

    @property
    def verified(self) -> tuple[str, ...]:
        return self._names(lambda h: h.status is RestartStatus.VERIFIED)

    @property
    def failed(self) -> tuple[str, ...]:
        return self._names(lambda h: not h.ok and h.status is not RestartStatus.UNTOUCHED)

    @property
    def untouched(self) -> tuple[str, ...]:
        return self._names(lambda h: h.status is RestartStatus.UNTOUCHED)


class RestartStopped(HostsUnreachable):
    """A host did not come back or verify; the restart stopped there. ``report`` has it all."""

    def __init__(self, message: str, report: RestartReport, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.report = report


def restart_argv(host: Host, service: str | None = None) -> list[str]:
    """The argv that restarts ``host``: its ``restart_command``, else systemctl."""
    if host.restart_command:
        return ["sh", "-c", host.restart_command]
    unit = service or host.service
    if not SERVICE_RE.match(unit):
        raise UsageError(
            f"service {unit!r} for host {host.name} is not a systemd unit name",
            hint="use letters, digits and @._-, like foundation or foundation@blue",
        )
    return ["sudo", "-n", "systemctl", "restart", unit]


def rolling_restart(
    ex: Executor,
    phase: Phase | None,
    hosts: Sequence[Host],
    *,
    service: str | None = None,
    batch: int = 1,
    wait_timeout: float = 60.0,
    command_timeout: float | None = None,
    clock: Clock | None = None,
) -> RestartReport:
    """Restart ``hosts`` ``batch`` at a time; after each batch, re-apply ``phase`` and verify.

    ``wait_timeout`` bounds the wait for a restarted console; ``command_timeout`` (default:
    the larger of the playbook's command timeout and ``wait_timeout``) the restart command.
    Raises :class:`RestartStopped` (exit 5) when a host fails; the report names every host.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise UsageError(f"--batch must be a whole number of hosts, 1 or more, got {batch!r}")
    if service is not None and not SERVICE_RE.match(service):
        raise UsageError(
            f"--service {service!r} is not a systemd unit name",
            hint="use letters, digits and @._-, like foundation or foundation@blue",
        )
    argvs = {h.name: restart_argv(h, service) for h in hosts}  # every name checked up front
    timeout = command_timeout or max(ex.playbook.policy.command_timeout, wait_timeout)
    clock = clock or ex.clock  # the console polls: its monotonic time and sleep
    names = [h.name for h in hosts]
    batches = tuple(tuple(names[i : i + batch]) for i in range(0, len(names), batch))
    if service is not None and any(h.restart_command for h in hosts):
        ex.emit(
            Kind.WARNING,
            f"--service {service} is ignored on hosts with a restart_command: "
            + ", ".join(h.name for h in hosts if h.restart_command),
        )
    if phase is None:
        ex.emit(
            Kind.WARNING,
            "no phase is recorded for this inventory: hosts are restarted without re-applying "
            "flags, so every flag will be at its default",
        )
    ex.emit(
        Kind.RESTART,
        f"rolling restart of {len(names)} host(s) in {len(batches)} batch(es)"
        + (f", re-applying {phase.title}" if phase else ""),
        batches=[list(b) for b in batches],
        phase=phase.number if phase else None,
    )
    done: dict[str, HostRestart] = {}

    def restarter(index: int) -> Callable[[str], HostRestart]:
        def one(name: str) -> HostRestart:
            return _restart_and_wait(
                ex, name, argvs[name], index, timeout, wait_timeout, clock
            )

        return one

    for index, members in enumerate(batches, start=1):
        ex.cancel.check(f"restart batch {index} of {len(batches)}")
        ex.emit(
            Kind.BATCH,
            f"restart batch {index}/{len(batches)}: {', '.join(members)}",
            index=index,
            hosts=list(members),
        )
        outcomes = run_parallel(list(members), restarter(index))
        for name in members:
            outcome = outcomes[name]
            if outcome.value is not None:
                done[name] = outcome.value
            else:
                detail = outcome.error.detail if outcome.error else "unknown error"
                done[name] = HostRestart(name, RestartStatus.RESTART_FAILED, index, detail)
        answered = [n for n in members if done[n].status is RestartStatus.RESTARTED]
        if phase is not None and answered:
            step = ex.converge(answered, phase, Action.REAPPLY)
            for result in step.results:
                done[result.host] = _verified(result, index)
        if any(not done[n].ok for n in members):
            report = _report(phase, batches, names, done)
            _stop(ex, report, index)
    report = _report(phase, batches, names, done)
    ex.emit(
        Kind.RESTART,
        f"rolling restart done: {len(report.restarted)} host(s) restarted"
        + (f", {len(report.verified)} verified at {phase.title}" if phase else ""),
        ok=True,
        restarted=list(report.restarted),
        verified=list(report.verified),
    )
    return report


def _restart_and_wait(
    ex: Executor,
    name: str,
    argv: list[str],
    batch: int,
    timeout: float,
    wait_timeout: float,
    clock: Clock,
) -> HostRestart:
    """Run the restart command, then poll the console until it answers or time runs out."""
    shown = shlex.join(argv)
    ex.check_right()  # a run that lost its lock or lease restarts nothing more
    intent = ex.ledger.intent(ex.run.id, name, "restart", None, {"command": shown})
    ex.emit(Kind.RESTART, f"restarting: {shown}", host=name, command=shown)
    started = clock.monotonic()
    try:
        result = ex.backend.run(name, argv, timeout=timeout)
        failure = None
        if result.timed_out:
            failure = f"the restart command did not finish within {timeout:.0f}s"
        elif not result.ok:
            failure = f"the restart command exited {result.exit_status}: {result.tail()}"
    except HostError as exc:
        failure = f"the restart command failed: {exc.detail}"
    if failure is not None:
        ex.ledger.settle(intent.id, False, {"error": failure})
        ex.emit(Kind.RESTART, failure, host=name, ok=False)
        return HostRestart(name, RestartStatus.RESTART_FAILED, batch, failure)
    deadline = clock.monotonic() + wait_timeout
    pause = POLL_PAUSE
    while True:
        try:
            reading = ex.backend.console(name).read_flags()
        except HostError as exc:
            ex.forget_if_broken(name, exc)
            if clock.monotonic() + pause >= deadline:
                error = f"restarted, but the console did not answer within {wait_timeout:g}s: "
                ex.ledger.settle(intent.id, False, {"error": error + exc.detail})
                ex.emit(Kind.RESTART, error + exc.detail, host=name, ok=False)
                return HostRestart(name, RestartStatus.NO_ANSWER, batch, error + exc.detail)
            clock.sleep(pause)
            pause = min(POLL_PAUSE_MAX, pause * 2)
            continue
        took = clock.monotonic() - started
        ex.ledger.settle(intent.id, True, {"node": reading.node, "seconds": round(took, 3)})
        ex.emit(
            Kind.RESTART,
            f"restarted; console answers as {reading.node} after {took:.1f}s",
            host=name,
            ok=True,
            node=reading.node,
            seconds=round(took, 3),
        )
        return HostRestart(name, RestartStatus.RESTARTED, batch, flags=reading.flags)


def _verified(result: HostResult, batch: int) -> HostRestart:
    if result.ok:
        return HostRestart(result.host, RestartStatus.VERIFIED, batch, flags=result.flags)
    why = result.error or "read back differs: " + ", ".join(result.mismatched)
    return HostRestart(
        result.host, RestartStatus.NOT_VERIFIED, batch, why, result.flags, result.mismatched
    )


def _report(
    phase: Phase | None,
    batches: tuple[tuple[str, ...], ...],
    names: Sequence[str],
    done: Mapping[str, HostRestart],
) -> RestartReport:
    index = {n: i for i, members in enumerate(batches, start=1) for n in members}
    rows = tuple(done.get(n) or HostRestart(n, RestartStatus.UNTOUCHED, index[n]) for n in names)
    return RestartReport(phase, batches, rows)


def _stop(ex: Executor, report: RestartReport, index: int) -> None:
    failed = [h for h in report.hosts if h.host in report.failed]
    text = "; ".join(f"{h.host}: {h.error}" for h in failed)
    untouched = report.untouched
    ex.emit(
        Kind.RESTART,
        f"restart stopped after batch {index}: {text}"
        + (f"; untouched: {', '.join(untouched)}" if untouched else ""),
        ok=False,
        failed=list(report.failed),
        verified=list(report.verified),
        untouched=list(untouched),
    )
    hint = "bring those hosts back (`invoke status`), then re-run the restart"
    if report.phase is not None:
        n = report.phase.number
        reapply = f"invoke deploy --phase {n}" if n else "invoke rollback --to 0"
        hint = (
            f"bring those hosts back and re-apply the phase (`{reapply}`), "
            "then restart the untouched hosts with --limit"
        )
    raise RestartStopped(
        f"rolling restart STOPPED after batch {index} of {len(report.batches)}: {text}. "
        f"Verified: {', '.join(report.verified) or 'none'}; "
        f"untouched: {', '.join(untouched) or 'none'}",
        report,
        hint=hint,
    )


# -- the emergency rollback's restart (``Context.restart``) -----------------------------------


def as_step_report(report: RestartReport, phase: Phase) -> StepReport:
    """The hosts a restart touched, as converge results (untouched hosts are left out)."""
    results = tuple(
        HostResult(h.host, h.ok, h.flags, h.mismatched, h.error)
        for h in report.hosts
        if h.status is not RestartStatus.UNTOUCHED
    )
    return StepReport(phase, results)


def emergency_restarter(
    hosts: Sequence[Host], *, service: str | None = None, wait_timeout: float = 60.0
) -> Callable[[Executor, Phase, Sequence[str]], StepReport]:
    """A ``Context.restart`` hook: restart the named hosts all at once, re-apply, verify.

    An emergency does not stop at the first failure: every named host is restarted in one
    batch, and failures come back as failed results for the rollback to report.
    """
    by_name = {h.name: h for h in hosts}

    def restart(ex: Executor, phase: Phase, names: Sequence[str]) -> StepReport:
        selected = [by_name[n] for n in names]
        if not selected:
            return StepReport(phase, ())
        try:
            report = rolling_restart(
                ex,
                phase,
                selected,
                service=service,
                batch=len(selected),
                wait_timeout=wait_timeout,
            )
        except RestartStopped as exc:
            report = exc.report
        return as_step_report(report, phase)

    return restart
