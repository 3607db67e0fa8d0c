"""Walks plans through a backend: connect, read, diff, apply, read back, verify, undo.

The executor emits events and records intent and outcome in the ledger; it never prints,
sleeps on its own clock or exits. Every success it reports was read back from the host.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .backend import Backend
from .cancel import Cancel
from .clock import SYSTEM, Clock
from .console import ApplyResult, Change, FlagReading
from .errors import (
    CommandTimeout,
    DeployFailed,
    FleetBusy,
    HostError,
    HostOutcome,
    HostsUnreachable,
    InputError,
    Interrupted,
    LockBusy,
    PlaybookError,
    Refused,
    RightLost,
    RollbackIncomplete,
    SourceLocation,
    TransportError,
)
from .events import Emit, Event, Kind
from .flagvalues import event_flags
from .fleet import Outcome, each, run_parallel
from .fleetstate import FleetSide, HostState, LeaseConflict, Op, new_lease_id, shown
from .ledger import Ledger, LockRecord, RunRecord
from .lock import Liveness, describe, pid_liveness, utc
from .models import FlagState, Observed, Phase, Playbook, Risk, format_value
from .plan import Action, Plan, batch_failed, build_plan

#: First pause between rollback retries (doubling), and its cap, in seconds.
RETRY_PAUSE = 1.0
RETRY_PAUSE_MAX = 8.0

#: How long a claim keeps retrying hosts held by a racing run that yields to it (seconds).
RACE_WAIT = 10.0

#: Asked before a high-risk phase; returns True to go on. None: no terminal to ask on.
Confirm = Callable[[str], bool]


@dataclass(frozen=True)
class HostResult:
    """The verified end state of one host after a step."""

    host: str
    ok: bool
    flags: Mapping[str, Observed] = field(default_factory=dict)
    mismatched: tuple[str, ...] = ()
    error: str | None = None
    unreachable: bool = False
    #: the node refused in a way retrying cannot fix (a flag it does not know)
    permanent: bool = False

    def summary(self) -> HostOutcome:
        """This result as the data a host-spanning error carries."""
        why = self.error or ("read back differs: " + ", ".join(self.mismatched))
        return HostOutcome(self.host, self.ok, None if self.ok else why, self.unreachable)


@dataclass(frozen=True)
class StepReport:
    """What a converge step did on every host it touched."""

    target: Phase
    results: tuple[HostResult, ...]

    @property
    def failed(self) -> tuple[HostResult, ...]:
        return tuple(r for r in self.results if not r.ok)


@dataclass(frozen=True)
class _Preflight:
    """One host's pre-flight: the connection's error, or the read's outcome."""

    connect_error: HostError | None
    read: Outcome[FlagReading] | None
    bad_input: InputError | None = None  # the operator's to fix (known_hosts): stops the run


class Executor:
    """Runs one command's steps for one inventory, inside a run recorded in the ledger."""

    def __init__(
        self,
        *,
        playbook: Playbook,
        inventory_name: str,
        hosts: Sequence[str],
        backend: Backend,
        ledger: Ledger,
        run: RunRecord,
        emit: Emit,
        clock: Clock = SYSTEM,
        retry_deadline: float = 60.0,
        cancel: Cancel | None = None,
    ) -> None:
        self.playbook = playbook
        self.inventory = inventory_name
        self.hosts = list(hosts)
        self.backend = backend
        self.ledger = ledger
        self.run = run
        self.emit_raw = emit
        self.clock = clock  # retry deadlines and lease races: its monotonic time and sleep
        self.retry_deadline = retry_deadline
        self.cancel = cancel or Cancel()
        #: the ledger lock this run holds (set by ``commands.running``): checked before changes
        self.lock: LockRecord | None = None
        #: this run's side of the hosts' records and leases (None: a backend without them)
        self.side: FleetSide | None = getattr(backend, "side", None)
        self._announced: set[tuple[str, str]] = set()  # lease takeovers already announced

    # -- the right to change hosts -------------------------------------------------------

    def check_right(self, *, heartbeat: bool = False) -> None:
        """Raise RightLost unless this run still holds its ledger lock and fleet leases.

        Called before every change to a host (and, with ``heartbeat``, at every soak poll,
        which also refreshes the lock's heartbeat): a run whose lock was taken over, removed
        by `invoke unlock`, or whose lease on any host is gone, stops and changes nothing more.
        """
        lock = self.lock
        if lock is not None:
            try:
                if heartbeat:
                    self.ledger.heartbeat(lock)
                else:
                    holder = self.ledger.holder(lock.inventory)
                    if holder is None or holder.id != lock.id:
                        raise LockBusy(_lost_lock(self.ledger, lock, holder))
            except RightLost:
                raise
            except LockBusy as exc:
                raise RightLost(
                    f"this run ({self.run.id}) lost its lock {lock.id} and stopped changing "
                    f"hosts: {exc.message}",
                    hint="see who took it with `invoke status` and `invoke history`; "
                    "nothing more was changed by this run",
                ) from None
        side = self.side
        if side is not None and side.lost:
            host, state = next(iter(side.lost.items()))
            raise RightLost(
                f"this run ({self.run.id}) lost its fleet lease on {host} and stopped changing "
                f"hosts: {_holder_text(state)}",
                hint="`invoke status` shows who changed each host; nothing more was changed "
                "by this run",
            )
    # -- events --------------------------------------------------------------------------

    def emit(
        self,
        kind: Kind,
        message: str,
        *,
        host: str | None = None,
        ok: bool | None = None,
        **data: object,
    ) -> None:
        event = Event(kind, message, host=host, ok=ok, data=data)
        self.ledger.event(self.run.id, kind.value, event.to_json(), host=host)
        # the terminal is a side output (a closed pipe, a full disk): it must never stop a
        # change from being verified and recorded
        with contextlib.suppress(Exception):
            self.emit_raw(event)

    # -- pre-flight ----------------------------------------------------------------------

    def connect_all(self, names: Sequence[str] | None = None) -> dict[str, HostError]:
        """Connect to hosts; return the ones that failed (and emit a line per host)."""
        names = list(names or self.hosts)
        results = self.backend.connect(names)
        failed: dict[str, HostError] = {}
        for name in names:
            error = results[name].error
            self._connected(name, error)
            if error is not None:
                failed[name] = error
        return failed

    def _connected(self, name: str, error: HostError | None) -> None:
        if error is not None:
            self.emit(Kind.CONNECT, error.detail, host=name, ok=False, hint=error.hint)
        else:
            self.emit(Kind.CONNECT, "connected", host=name, ok=True)

    def _emit_read(self, name: str, outcome: Outcome[FlagReading]) -> None:
        if outcome.error is not None:
            self._forget_if_broken(name, outcome.error)
            self.emit(
                Kind.READ, outcome.error.detail, host=name, ok=False, **self._console_data(name)
            )
        else:
            assert outcome.value is not None
            flags = outcome.value.flags
            match = self.playbook.match(flags)
            self.emit(
                Kind.READ,
                _describe_match(match),
                host=name,
                ok=True,
                flags=event_flags(flags),
                matches=match,
                **self._console_data(name),
            )

    def _console_data(self, name: str) -> dict[str, object]:
        """Which console path ``name`` uses (and why rpc, when erl_call was wanted)."""
        choice = self.backend.console_path(name)
        if choice is None:
            return {}
        data: dict[str, object] = {"console": choice.path.value}
        if choice.fallback:
            data["console_fallback"] = choice.fallback
        return data

    def _connect_and_read(self, name: str) -> _Preflight:
        """Connect to one host and read it as soon as its own connection is up."""
        try:
            error = self.backend.connect([name])[name].error
        except InputError as exc:
            return _Preflight(None, None, exc)
        if error is not None:
            return _Preflight(error, None)
        try:
            return _Preflight(None, Outcome(name, value=self.backend.console(name).read_flags()))
        except HostError as exc:
            return _Preflight(None, Outcome(name, error=exc))

    def preflight(self, *, force: bool = False) -> dict[str, Mapping[str, Observed]]:
        """Connect to and read every host; any failure stops the run before a change.

        Each host is read as soon as its own connection is up, so the slowest handshake does
        not hold back every other host's read; the events come out as before (every
        connection, then every read). The read also takes this run's fleet lease on the
        host (all or nothing: see :meth:`_settle_claims`).
        """
        self._begin_claim(force)
        done = run_parallel(self.hosts, self._connect_and_read)
        for outcome in done.values():
            if outcome.value is not None and outcome.value.bad_input is not None:
                raise outcome.value.bad_input
        failed: dict[str, HostError] = {}
        for name in self.hosts:
            step = done[name].value
            error = done[name].error or (step.connect_error if step else None)
            self._connected(name, error)
            if error is not None:
                failed[name] = error
        reads: dict[str, Outcome[FlagReading]] = {}
        conflicts: dict[str, LeaseConflict] = {}
        for name in self.hosts:
            step = done[name].value
            if name in failed or step is None or step.read is None:
                continue
            if isinstance(step.read.error, LeaseConflict):
                conflicts[name] = step.read.error
            else:
                reads[name] = step.read
        self._announce_takeovers()
        reads.update(self._settle_claims(conflicts))
        readings: dict[str, Mapping[str, Observed]] = {}
        for name in self.hosts:
            if name not in reads:
                continue
            self._emit_read(name, reads[name])
            if reads[name].error is not None:
                failed[name] = reads[name].error  # type: ignore[assignment]
            else:
                value = reads[name].value
                assert value is not None
                readings[name] = value.flags
        self._announce_takeovers()
        if failed:
            lines = "; ".join(f"{h}: {e.detail}" for h, e in failed.items())
            raise HostsUnreachable(
                f"pre-flight failed on {len(failed)} of {len(self.hosts)} host(s), "
                f"nothing was changed: {lines}",
                hint="fix the hosts, or leave them out with --limit, then re-run",
                results=[HostOutcome(h, h not in failed, failed[h].detail if h in failed else None,
                                     h in failed and h not in reads) for h in self.hosts],
            )  # fmt: skip
        self._refuse_unknown_flags(readings)
        return readings

    def claim(self, *, force: bool = False) -> tuple[dict[str, HostError], dict[str, FlagReading]]:
        """Connect, read and lease every reachable host (rollback, monitor, advance).

        Unreachable hosts come back as errors (the caller goes on without them); a host held
        by another live run ends the claim (FleetBusy), unless ``force`` (an emergency).
        """
        self._begin_claim(force)
        outcomes = each(self.hosts, lambda n: self.backend.console(n).read_flags(),
                        connect=self.connect_all)  # fmt: skip
        unreachable = {n: o.error for n, o in outcomes.items() if o.unreachable and o.error}
        reachable = [h for h in self.hosts if h not in unreachable]
        conflicts: dict[str, LeaseConflict] = {}
        for name, outcome in outcomes.items():
            if isinstance(outcome.error, LeaseConflict):
                conflicts[name] = outcome.error
        self._announce_takeovers()
        outcomes.update(self._settle_claims(conflicts))
        readings: dict[str, FlagReading] = {}
        for name in reachable:
            outcome = outcomes[name]
            if outcome.error is not None:
                # a host that answers SSH but not its console stays in the run (a rollback
                # still tries it, and reports it); the script took its lease before the console
                self._forget_if_broken(name, outcome.error)
                self.emit(Kind.READ, outcome.error.detail, host=name, ok=False,
                          **self._console_data(name))  # fmt: skip
            elif outcome.value is not None:
                readings[name] = outcome.value
        self._announce_takeovers()
        if self.side is not None:
            self.side.op_read = Op.RENEW if self.side.lease_id else Op.PEEK
        return unreachable, readings

    # -- the fleet lease -----------------------------------------------------------------

    def _begin_claim(self, force: bool) -> None:
        side = self.side
        if side is None or side.holder is None:
            return
        if side.lease_id is None:
            side.lease_id = new_lease_id()
        side.op_read = Op.TAKE
        if force:
            side.replace = {h: "*" for h in self.hosts}

    def _settle_claims(
        self, conflicts: Mapping[str, LeaseConflict]
    ) -> dict[str, Outcome[FlagReading]]:
        """Resolve hosts whose lease another run holds: all or nothing.

        A holder on this machine whose process is gone is replaced; a racing run whose claim
        is newer than ours (its start time, then its lease id) yields to us, so we retry its
        hosts for up to RACE_WAIT seconds while it gives them back; an older live holder
        wins, and this run takes nothing (what it took is released when it ends).
        """
        side = self.side
        out: dict[str, Outcome[FlagReading]] = {}
        if not conflicts or side is None or side.holder is None:
            if side is not None and side.holder is not None:
                side.op_read = Op.RENEW
            return out
        mine = (side.holder.claimed, side.lease_id or "")
        deadline = self.clock.monotonic() + RACE_WAIT
        pending = dict(conflicts)
        while pending:
            retry: list[str] = []
            for host, err in pending.items():
                lease = err.state.lease
                holder = lease.holder if lease else None
                if lease is None or holder is None or lease.id is None:
                    raise self._busy(host, err.state)
                alive = pid_liveness(holder.where, holder.pid, holder.pid_start,
                                     here=self.ledger.where, probe=self.ledger._probe)  # fmt: skip
                if alive in (Liveness.GONE, Liveness.REUSED):
                    side.replace[host] = lease.id  # a dead holder on this machine
                    retry.append(host)
                elif (holder.claimed, lease.id) > mine and self.clock.monotonic() < deadline:
                    retry.append(host)  # a racing run that yields to this one
                else:
                    raise self._busy(host, err.state)
            if any(h not in side.replace for h in retry):
                self.clock.sleep(0.3)
            outcomes = run_parallel(retry, lambda n: self.backend.console(n).read_flags())
            pending = {}
            for host, outcome in outcomes.items():
                if isinstance(outcome.error, LeaseConflict):
                    pending[host] = outcome.error
                else:
                    out[host] = outcome
        side.op_read = Op.RENEW
        return out

    def _busy(self, host: str, state: HostState) -> FleetBusy:
        return FleetBusy(
            f"{host}: {_holder_text(state)}; this run takes no lease and changes nothing",
            hint="wait for that run to finish (its lease is renewed while it runs), or, if it "
            "is dead, let its lease expire or clear it with `invoke unlock "
            f"{state.lease.id if state.lease else 'LEASE_ID'}`; `invoke rollback --emergency` "
            "takes over a live lease",
        )

    def _announce_takeovers(self) -> None:
        side = self.side
        if side is None:
            return
        for host in self.hosts:
            state = side.states.get(host)
            lease = state.lease if state else None
            if lease is None or lease.previous_id is None or lease.status != "taken":
                continue
            if (host, lease.previous_id) in self._announced:
                continue
            self._announced.add((host, lease.previous_id))
            prev = lease.previous
            who = prev.describe() if prev else "an unknown holder"
            expired = lease.previous_expires < lease.now
            how = (
                f"expired {lease.now - lease.previous_expires:.0f}s ago"
                if expired
                else "taken over"
            )
            self.emit(
                Kind.WARNING,
                f"took over the fleet lease {lease.previous_id} of {who} ({how})",
                host=host,
                previous_lease=lease.previous_id,
                previous_run=prev.run_id if prev else None,
                expired=expired,
            )
            self.ledger.event(self.run.id, "lease.takeover", {
                "host": host, "previous": lease.previous_id,
                "holder": prev.describe() if prev else None, "expired": expired,
            }, host=host)  # fmt: skip

    def release_lease(self) -> None:
        """Give back this run's lease on every host that holds it (at the end of the run);
        a host whose last apply gave it back already (op final) is not called again."""
        side = self.side
        if side is None or side.lease_id is None:
            return
        mine = [
            h
            for h, st in side.states.items()
            if st.lease is not None
            and st.lease.id == side.lease_id
            and st.lease.status in ("taken", "renewed")
        ]

        def give_back(name: str) -> HostState:
            return self.backend.console(name).state_call(Op.RELEASE)  # type: ignore[attr-defined, no-any-return]

        results = run_parallel(mine, give_back)
        for name, outcome in results.items():
            if outcome.error is not None:
                self.emit(
                    Kind.WARNING,
                    f"could not give back the fleet lease ({outcome.error.detail}); it expires "
                    f"within {side.ttl}s",
                    host=name,
                )
        side.forget_lease()

    def _refuse_unknown_flags(self, readings: Mapping[str, Mapping[str, Observed]]) -> None:
        """A declared flag that a node answers ``absent`` is one its service does not know:
        every change would fail on it and no undo could verify, so stop before any change."""
        unknown: dict[str, list[str]] = {}
        for name in self.hosts:
            flags = readings.get(name, {})
            for flag in self.playbook.flags:
                if flags.get(flag) is None:
                    unknown.setdefault(flag, []).append(name)
        if not unknown:
            return
        first = next(iter(unknown))
        lines = self.playbook.flag_lines
        shown = "; ".join(
            f"`{flag}` (line {lines.get(flag, '?')}) on {', '.join(hosts)}"
            for flag, hosts in unknown.items()
        )
        self.emit(Kind.WARNING, f"flags the service does not know: {shown}",
                  unknown={f: h for f, h in unknown.items()})  # fmt: skip
        raise PlaybookError(
            f"the playbook declares flag(s) the service does not know (read back absent): "
            f"{shown}; nothing was changed",
            location=SourceLocation(self.playbook.path, lines.get(first), f"flags.{first}"),
            hint="deploy a release of the service that defines those flags, or remove them "
            "from the playbook's flags: and phases",
        )

    # -- the plan ------------------------------------------------------------------------

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
        return plan

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
            self._forget_if_broken(name, exc)
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
            self._forget_if_broken(name, exc)
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

    def _forget_if_broken(self, name: str, error: HostError) -> None:
        if isinstance(error, (TransportError, CommandTimeout)):
            self.backend.reset(name)

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

    # -- commands ------------------------------------------------------------------------

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


def _verify(
    name: str, state: FlagState, flags: Mapping[str, Observed], errors: Mapping[str, str]
) -> HostResult:
    mismatched = tuple(c.flag for c in state.changes_from(flags))
    error = None
    if errors:
        error = "; ".join(f"{flag} replied {reply}" for flag, reply in errors.items())
    permanent = any("unknown_flag" in reply for reply in errors.values())
    return HostResult(name, not mismatched and not errors, flags, mismatched, error,
                      permanent=permanent)  # fmt: skip


def _failure_text(result: HostResult, target: Phase) -> str:
    parts = []
    if result.mismatched:
        shown = ", ".join(
            f"{f}={format_value(result.flags.get(f))} (want {format_value(target.state.get(f))})"
            for f in result.mismatched
        )
        parts.append(f"read back differs: {shown}")
    if result.error:
        parts.append(result.error)
    return f"{result.host}: " + ("; ".join(parts) or "failed")


def _describe_match(match: int | None) -> str:
    return "drifted: matches no phase" if match is None else f"matches phase {match}"


def _holder_text(state: HostState) -> str:
    """Who holds a host's lease now, with its run, command and expiry (shown as data)."""
    lease = state.lease
    if lease is None or lease.id is None:
        return "the lease was removed (`invoke unlock`) and nobody holds it"
    holder = lease.holder
    who = holder.describe() if holder else "an unknown holder"
    ledger = f", ledger {holder.ledger_path}" if holder and holder.ledger_path else ""
    left = lease.expires - lease.now
    when = utc(lease.expires) if lease.expires else "?"
    expiry = f"expires in {left:.0f}s ({when}, host clock)" if left >= 0 else "expired"
    return f"the fleet lease {shown(lease.id)} is held by {who}{ledger}; it {expiry}"


def _lost_lock(ledger: Ledger, lock: LockRecord, holder: LockRecord | None) -> str:
    if holder is None:
        return f"the lock {lock.id} was removed (`invoke unlock`)"
    now = ledger.clock.wall()  # the clock the ledger stamps heartbeats with
    return f"the lock was taken over: {describe(holder, ledger.lock_liveness(holder), now)}"
