"""A command's run: the ledger run and lock it holds, its fleet lease, its recorded outcome.

``running`` opens a run around a command's body (reaping dead runs, taking the lock, giving
the executor this run's side of the hosts' records) and records how it ended;
``check_fleet`` refuses when a host's record shows a change this ledger does not know.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from ..errors import FleetChanged, Refused, RolloutError
from ..events import Event, Kind
from ..executor import Executor
from ..fleetrecord import Holder, HostState, Knowledge, Record
from ..fleetstate import FleetSide
from ..ledger import Ledger, LockRecord, RunRecord, RunStatus
from .context import RETRY_WINDOW, Context, Options


@contextmanager
def running(
    ctx: Context,
    command: str,
    reason: str | None = None,
    *,
    takeover: bool = False,
    lease: bool = True,
) -> Iterator[tuple[RunRecord, LockRecord, Executor]]:
    """A ledger run holding the inventory lock, with an executor over a fresh backend.

    With ``lease`` (every command that changes hosts), the executor's reads take this run's
    fleet lease on the hosts (see :mod:`rollout.fleetstate`); it is given back at the end.
    """
    ledger = ctx.ledger
    inv = ctx.inventory.name
    for crashed in ledger.reap(inv):
        ctx.emit(
            Event(
                Kind.WARNING,
                f"run {crashed.id} ({crashed.command}, by {crashed.who}) "
                "died without finishing; `invoke status` shows what it left",
                ts=ctx.clock.wall(),
            )
        )
    run = ledger.start_run(inv, command, ctx.options.argv, reason)
    try:
        lock = ledger.acquire_lock(
            inv, command, run.id, wait=ctx.options.lock_timeout, takeover=takeover
        )
    except RolloutError as exc:
        ledger.finish_run(run.id, RunStatus.REFUSED, str(exc))
        raise
    if lock.previous is not None and not takeover:
        old = lock.previous
        ctx.emit(Event(Kind.WARNING, f"took over the stale lock {old.id} of {old.who}@{old.where} "
                       f"pid {old.pid} ({old.command}): that process is gone",
                       ts=ctx.clock.wall()))  # fmt: skip
    backend = ctx.backend_factory(ctx.hosts, ctx.playbook)
    if hasattr(backend, "side"):
        backend.side = _fleet_side(ctx, run, command, reason, lease)
    executor = Executor(
        playbook=ctx.playbook,
        inventory_name=inv,
        hosts=[h.name for h in ctx.hosts],
        backend=backend,
        ledger=ledger,
        run=run,
        emit=ctx.emit,
        retry_deadline=(
            RETRY_WINDOW if ctx.options.retry_deadline is None else ctx.options.retry_deadline
        ),
        clock=ctx.clock,
        cancel=ctx.cancel,
    )
    executor.lock = lock
    executor.emit(
        Kind.RUN_START,
        f"{command} on {len(ctx.hosts)} host(s) of {inv}",
        run=run.id,
        command=command,
        lock=lock.id,
        who=run.who,
        where=run.where,
    )
    status = RunStatus.FAILED
    summary = "failed"
    try:
        yield run, lock, executor
        status, summary = RunStatus.SUCCEEDED, "succeeded"
    except KeyboardInterrupt:
        status, summary = RunStatus.INTERRUPTED, "interrupted"
        raise
    except RolloutError as exc:
        status = _status_for(exc)
        summary = exc.message
        raise
    finally:
        with ctx.cancel.closing():  # a second signal now would leave the record half-written
            try:
                executor.release_lease()
            finally:
                backend.close()
            ledger.finish_run(run.id, status, summary)
        if ctx.cancel.late:
            executor.emit(
                Kind.WARNING,
                "a second signal came while this run gave its leases back and wrote its "
                "outcome; it was held until both were done, so the record is whole",
            )
        executor.emit(
            Kind.RUN_FINISH, summary, ok=status is RunStatus.SUCCEEDED, status=status.value
        )
        ledger.release_lock(lock)


def _fleet_side(
    ctx: Context, run: RunRecord, command: str, reason: str | None, lease: bool
) -> FleetSide:
    """This run's identity on the hosts: the holder of its lease and author of its records."""
    from ..lock import process_start

    ledger = ctx.ledger
    holder = Holder(
        who=ledger.who,
        where=ledger.where,
        pid=ledger.pid,
        pid_start=process_start(ledger.pid) or None,
        run_id=run.id,
        command=command if len(command) <= 300 else command[:299] + "…",  # a document cap
        ledger=ledger.identity,
        ledger_path=ledger.location,  # a file's absolute path, or a server URI without password
        claimed=ctx.clock.wall(),
    )
    ttl = max(5, int(ctx.playbook.policy.lease_ttl))
    return FleetSide(ctx.playbook.name, holder if lease else None, ttl, reason=reason,
                     clock=ctx.clock)  # fmt: skip


def check_fleet(
    ctx: Context, ex: Executor, *, what: str, states: Mapping[str, HostState] | None = None
) -> None:
    """Refuse (FleetChanged, nothing changed) when a host's record shows a change that this
    ledger does not know: another controller's newer generation, or its pause.

    A record is known when this ledger wrote it (its identity), adopted it (`invoke adopt`) or
    holds the run of a copied ledger that wrote it (`invoke ledger.copy`): ``Knowledge``.
    """
    side = ex.side
    if side is None:
        return
    states = states if states is not None else dict(side.states)
    knowledge = ledger_knowledge(ctx.ledger, ctx.inventory.name)
    foreign: list[tuple[str, Record]] = []
    for host in ex.hosts:
        state = states.get(host)
        record = state.record if state else None
        if record is None:
            continue
        if not knowledge.knows(host, record):
            foreign.append((host, record))
    if not foreign:
        return
    paused = [r for _, r in foreign if r.paused]
    shown_hosts = "; ".join(r.story(h) for h, r in foreign[:3])
    more = f" (and {len(foreign) - 3} more host(s))" if len(foreign) > 3 else ""
    local = ctx.ledger.state(ctx.inventory.name).phase
    raise FleetChanged(
        f"{what} refused: the fleet was changed by another controller, and this ledger "
        f"(phase {local if local is not None else '-'}) is behind it: {shown_hosts}{more}. "
        "Nothing was changed",
        hint="talk to whoever made that change; `invoke status` shows every host's last "
        "change. If the fleet is right, take its record into this ledger with `invoke adopt`"
        + (" (it is paused: `invoke resume` lifts that for every controller)" if paused else "")
        + ", then re-run",
        paused=bool(paused),
    )


def ledger_knowledge(ledger: Ledger, inventory: str) -> Knowledge:
    """What ``ledger`` knows of ``inventory``'s host records (see ``fleetrecord.Knowledge``)."""
    return Knowledge(
        ledger.identity, ledger.known_generations(inventory), ledger.continued_ledgers(),
        ledger.has_run,
    )  # fmt: skip


def fleet_paused(ex: Executor) -> Record | None:
    """A host's record that says the fleet is paused (by any controller), if any."""
    if ex.side is None:
        return None
    for host in ex.hosts:
        state = ex.side.states.get(host)
        if state is not None and state.record is not None and state.record.paused:
            return state.record
    return None


def _status_for(exc: RolloutError) -> RunStatus:
    from ..errors import Interrupted, RolledBack

    if isinstance(exc, RolledBack):
        return RunStatus.ROLLED_BACK
    if isinstance(exc, Refused):
        return RunStatus.REFUSED
    if isinstance(exc, Interrupted):
        return RunStatus.INTERRUPTED
    return RunStatus.FAILED


def command_text(name: str, options: Options) -> str:
    """The command a run records: the operator's argv when given, else ``invoke NAME``."""
    return " ".join(("invoke", *options.argv)) if options.argv else f"invoke {name}"
