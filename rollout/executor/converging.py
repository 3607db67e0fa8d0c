"""Changing hosts: plan, confirm, converge batches (apply, read back, verify), retry, undo.

:meth:`Converging.converge` applies a phase's full state to hosts in parallel and reports
only what it read back; every change is an intent in the ledger, written before it and
settled after, and runs only while :meth:`~.claims.Claims.check_right` holds.
:meth:`Converging.execute_deploy` walks a plan's batches and, when one breaks the fail budget
or the run is cancelled between batches, puts the changed hosts back in reverse order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ..consolecode import ApplyResult, Change
from ..errors import (
    CommandTimeout,
    DeployFailed,
    HostError,
    Interrupted,
    Refused,
    RightLost,
    RollbackIncomplete,
    TransportError,
)
from ..events import Kind
from ..flagvalues import event_flags
from ..fleet import run_parallel
from ..fleetstate import LeaseConflict
from ..models import FlagState, Observed, Phase, Risk
from ..plan import Action, Plan, batch_failed, build_plan
from .claims import Claims
from .results import HostResult, StepReport, _failure_text, _verify

#: First pause between rollback retries (doubling), and its cap, in seconds.
RETRY_PAUSE = 1.0
RETRY_PAUSE_MAX = 8.0

#: Asked before a high-risk phase; returns True to go on. None: no terminal to ask on.
Confirm = Callable[[str], bool]


class Converging(Claims):
    """Planning and converging the hosts, retrying and undoing (a concern of the executor)."""

    def plan(
        self,
        action: Action,
        target: Phase,
        readings: Mapping[str, Mapping[str, Observed]],
        recorded: int | None,
    ) -> Plan:
        plan = build_plan(action, self.playbook, target, readings, self.hosts, recorded)
        self.emit(
            Kind.PLAN,
            f"{action.value} to {target.title}: {len(plan.changed_hosts)} of "
            f"{len(plan.hosts)} host(s) to change",
            action=action.value,
            target=target.number,
            undo=plan.undo.number if plan.undo else None,
            batches=[list(b) for b in plan.batches],
            hosts={
                h.host: {"matches": h.matches, "changes": [str(c) for c in h.changes]}
                for h in plan.hosts
            },
        )
        if action is Action.DEPLOY:
            self._warn_unusual(plan)
        return plan

    def _warn_unusual(self, plan: Plan) -> None:
        """Say so when a deploy overwrites a host that matches no phase, or moves a host that
        is ahead of the target back: both are what the operator asked for, but neither is
        what a deploy usually does, and a rollback would have refused the second."""
        target = plan.target
        for host in plan.hosts:
            if host.noop:
                continue
            if host.matches is None:
                self.emit(
                    Kind.WARNING,
                    f"{host.host} matches no phase (drifted or changed by hand): this deploy "
                    f"sets {len(host.changes)} flag(s) to {target.title}'s state: "
                    + ", ".join(str(c) for c in host.changes),
                    host=host.host,
                    drifted=True,
                    changes=[str(c) for c in host.changes],
                )
            elif host.matches > target.number:
                self.emit(
                    Kind.WARNING,
                    f"{host.host} is at phase {host.matches}, ahead of {target.title}: this "
                    f"deploy moves it back to phase {target.number}",
                    host=host.host,
                    ahead=host.matches,
                )

    def confirm_risk(self, target: Phase, yes: bool, confirm: Confirm | None) -> None:
        if target.risk is not Risk.HIGH or yes:
            return
        question = f"{target.title} is HIGH risk. Apply it to {len(self.hosts)} host(s)?"
        if confirm is None:
            raise Refused(
                f"{target.title} is high risk and there is no terminal to confirm on",
                hint="re-run with --yes to confirm",
            )
        self.emit(Kind.CONFIRM, question)
        if not confirm(question):
            raise Refused(f"{target.title} was not confirmed; nothing was changed")

    # -- converging ----------------------------------------------------------------------

    def converge(
        self, names: Sequence[str], target: Phase, action: Action, *, last: bool = False
    ) -> StepReport:
        """Apply ``target``'s full state to ``names`` in parallel; verify by read-back.
        ``last``: the run's last change to them, whose call also gives their lease back."""
        results = run_parallel(list(names), lambda n: self._converge_one(n, target, action, last))
        out = []
        for name in names:
            outcome = results[name]
            if outcome.value is not None:
                out.append(outcome.value)
            else:
                err = outcome.error
                out.append(
                    HostResult(
                        name,
                        False,
                        error=err.detail if err else "unknown error",
                        unreachable=isinstance(err, TransportError),
                    )
                )
        return StepReport(target, tuple(out))

    def _converge_one(
        self, name: str, target: Phase, action: Action, last: bool = False
    ) -> HostResult:
        self.check_right()
        intent = self.ledger.intent(
            self.run.id,
            name,
            action.value,
            target.number,
            {"state": event_flags(target.state.as_dict())},
        )
        try:
            change = Change(action.value, target.number, last)
            result = self._apply_and_verify(name, target.state, change)
        except RightLost as exc:
            self.ledger.settle(intent.id, False, {"error": exc.message, "changed": False})
            raise
        self.ledger.settle(
            intent.id,
            result.ok,
            {
                "flags": event_flags(result.flags),
                "mismatched": list(result.mismatched),
                "error": result.error,
            },
        )
        if result.ok:
            self.emit(
                Kind.VERIFY,
                f"verified at {target.title}",
                host=name,
                ok=True,
                phase=target.number,
                flags=event_flags(result.flags),
                **self._console_data(name),
            )
        else:
            self.emit(
                Kind.VERIFY,
                _failure_text(result, target),
                host=name,
                ok=False,
                phase=target.number,
                flags=event_flags(result.flags),
                mismatched=list(result.mismatched),
                error=result.error,
                **self._console_data(name),
            )
        return result

    def _apply_and_verify(
        self, name: str, state: FlagState, change: Change | None = None
    ) -> HostResult:
        """One apply; when its outcome is unknown (timeout, lost connection), read back."""
        try:
            console = self.backend.console(name)
            applied: ApplyResult = console.apply(state, change)
        except LeaseConflict:
            self.check_right()
            raise  # check_right raises: the lease was lost
        except (CommandTimeout, TransportError) as exc:
            self.forget_if_broken(name, exc)
            return self._settle_unknown(name, state, exc)
        except HostError as exc:
            return self._settle_unknown(name, state, exc)
        return _verify(name, state, applied.reading.flags, applied.errors)

    def _settle_unknown(self, name: str, state: FlagState, cause: HostError) -> HostResult:
        """The apply's effect is unknown: read the host back to find out what it holds."""
        try:
            reading = self.backend.console(name).read_flags()
        except LeaseConflict:
            self.check_right()
            raise
        except HostError as exc:
            self.forget_if_broken(name, exc)
            return HostResult(
                name,
                False,
                error=f"{cause.detail}; read-back failed: {exc.detail}",
                unreachable=isinstance(exc, TransportError),
            )
        verified = _verify(name, state, reading.flags, {})
        if verified.ok:
            return verified
        return HostResult(name, False, verified.flags, verified.mismatched, error=cause.detail)

    def converge_with_retry(
        self, names: Sequence[str], target: Phase, action: Action
    ) -> StepReport:
        """Converge; retry the hosts that failed until the retry deadline passes."""
        deadline = self.clock.monotonic() + self.retry_deadline
        report = self.converge(names, target, action)
        done = {r.host: r for r in report.results}
        attempt = 1
        while True:
            # a node that refused a flag it does not know refuses it again: no retry
            pending = [r.host for r in done.values() if not r.ok and not r.permanent]
            pause = min(RETRY_PAUSE_MAX, RETRY_PAUSE * 2 ** (attempt - 1))
            if not pending or self.clock.monotonic() + pause >= deadline:
                break
            self.clock.sleep(pause)
            attempt += 1
            self.emit(
                Kind.ROLLBACK,
                f"retrying {len(pending)} host(s), attempt {attempt}",
                hosts=pending,
                attempt=attempt,
            )
            for name in pending:
                self.backend.reset(name)
            for result in self.converge(pending, target, action).results:
                done[result.host] = result
        return StepReport(target, tuple(done[n] for n in names))

    def execute_deploy(self, plan: Plan, *, release_last: bool = False) -> StepReport:
        """Apply a deploy plan batch by batch; undo the changed hosts when a batch fails.
        ``release_last``: nothing follows the last batch (no soak), so its applies give the
        fleet lease back in the same call (an undo takes it back first)."""
        changed: list[str] = []
        results: dict[str, HostResult] = {}
        for index, batch in enumerate(plan.batches, start=1):
            if self.cancel.is_set() and changed:
                self._abort(plan, changed)
            self.cancel.check(f"batch {index} of {plan.target.title}; nothing was changed")
            self.emit(
                Kind.BATCH,
                f"batch {index}/{len(plan.batches)}: {', '.join(batch)}",
                index=index,
                hosts=list(batch),
            )
            changed.extend(batch)
            last = release_last and index == len(plan.batches)
            report = self.converge(batch, plan.target, plan.action, last=last)
            for result in report.results:
                results[result.host] = result
            failed = report.failed
            if batch_failed(len(failed), len(batch), plan.max_fail_percentage):
                self._undo(plan, changed, failed)
            for result in failed:  # tolerated by the fail budget: put back alone
                self._undo_one(plan, result.host)
        noop = [HostResult(h.host, True) for h in plan.hosts if h.noop]
        return StepReport(plan.target, tuple(results.values()) + tuple(noop))

    def _undo(self, plan: Plan, changed: Sequence[str], failed: Sequence[HostResult]) -> None:
        """A batch broke the fail budget: put the changed hosts back, then fail the deploy."""
        why = "; ".join(_failure_text(r, plan.target) for r in failed)
        head = f"{plan.target.title} failed ({why})"
        undo, count = self._put_back(plan, changed, f"{len(failed)} host(s) failed", head)
        raise DeployFailed(
            f"{head}; the {count} changed host(s) were put back to {undo.title} and verified",
            hint="fix the cause, then re-run the same deploy",
            results=[r.summary() for r in failed],
        )

    def _abort(self, plan: Plan, changed: Sequence[str]) -> None:
        """Cancelled between batches: put the changed hosts back, like an aborted rollout."""
        signal_name = self.cancel.signal_name
        head = f"{signal_name}: {plan.target.title} aborted"
        undo, count = self._put_back(plan, changed, f"{signal_name}: aborting", head)
        raise Interrupted(
            f"{head}; the {count} changed host(s) were put back to {undo.title} and verified",
            hint="re-run the same deploy when ready",
        )

    def _put_back(
        self, plan: Plan, changed: Sequence[str], why: str, head: str
    ) -> tuple[Phase, int]:
        """Converge ``changed`` to the plan's undo phase in reverse order, each verified;
        RollbackIncomplete (opening with ``head``) when a host does not verify."""
        undo = plan.undo
        assert undo is not None
        names = list(reversed(changed))
        self.emit(
            Kind.UNDO,
            f"{why}; putting {len(names)} changed host(s) back to {undo.title} in reverse order",
            hosts=names,
        )
        results = [self.converge_with_retry([n], undo, Action.ROLLBACK).results[0] for n in names]
        failed = [r.host for r in results if not r.ok]
        if failed:
            raise RollbackIncomplete(
                f"{head}, and the undo to {undo.title} did not verify on: {', '.join(failed)}",
                hint=f"run `invoke rollback --to {undo.number}` once the hosts answer",
                results=[r.summary() for r in results],
            )
        return undo, len(names)

    def _undo_one(self, plan: Plan, name: str) -> None:
        if plan.undo is not None:
            self.converge_with_retry([name], plan.undo, Action.ROLLBACK)
