"""The commands behind the tasks: load and validate inputs, lock, run, record, report.

Each command validates every input before it touches a host, runs inside a ledger run holding
the inventory's lock, and ends by raising the :mod:`rollout.errors` error that matches its
outcome (``tasks.py`` turns that into the exit code) or by returning a summary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import wiring
from .backend import Backend, SSHBackend
from .cancel import Cancel
from .clock import SYSTEM, Clock, ClockPart
from .erlcall import console_override
from .errors import (
    FleetChanged,
    HostError,
    HostOutcome,
    HostsUnreachable,
    Interrupted,
    Refused,
    RollbackIncomplete,
    RolloutError,
    UsageError,
)
from .events import Emit, Event, Kind
from .executor import Confirm, Executor, StepReport
from .fleetstate import FleetSide, Holder, HostState, Knowledge, Record
from .inventory import load_inventory, select_hosts
from .ledger import (
    InventoryState,
    Ledger,
    LockRecord,
    RunRecord,
    RunStatus,
    WaveRecord,
    open_ledger,
)
from .models import Host, Inventory, NotifyKind, Observed, Phase, Playbook
from .output import Redactor
from .plan import Action, Plan, resolve_target
from .playbook import load_playbook
from .sshopts import client_config_path
from .vault import Vault, vault_password_file
from .yamlsrc import format_duration

if TYPE_CHECKING:
    from .backup import Backup, RestoreReport
    from .checks import CheckReport
    from .restart import RestartReport
    from .soak import Soak  # imported when a soak is watched: metrics pull in urllib

REPO = Path(__file__).resolve().parent.parent
DEFAULT_INVENTORY = "inventory/lab.yml"
DEFAULT_PLAYBOOK = "playbooks/otp_refactor.yml"
DEFAULT_LEDGER = ".rollout/ledger.db"


@dataclass(frozen=True)
class Options:
    """Options every command shares (their flags and help: ``rollout/options.py``)."""

    inventory: str = DEFAULT_INVENTORY
    playbook: str = DEFAULT_PLAYBOOK
    limit: str | None = None
    yes: bool = False
    ledger: str | None = None
    accept_new_host_keys: bool = False
    lock_timeout: float = 0.0
    #: --give-up-after: how long a rollback keeps retrying hosts that did not verify (None:
    #: 60 s, or 30 s for an emergency rollback)
    retry_deadline: float | None = None
    soak: float | None = None  # --soak: override the phase's soak duration (seconds)
    interval: float | None = None  # --interval: override the poll interval (seconds)
    wait: bool = True  # deploy waits out the soak unless --no-wait
    skip_checks: bool = False  # --skip-checks: deploy without the readiness checklist
    source: str | None = None  # --source: the service's source tree for the checklist
    junit: str | None = None  # --junit: write the checklist as JUnit XML here
    ssh_config: str | None = None  # --ssh-config: a path, "none", or None for the default
    vault_password_file: str | None = None  # --vault-password-file (else the environment's)
    argv: tuple[str, ...] = ()

    def ledger_target(self) -> str:
        """``--ledger``, else ``$ROLLOUT_LEDGER``, else the default file: a path or a URI."""
        return self.ledger or os.environ.get("ROLLOUT_LEDGER") or DEFAULT_LEDGER

    def ledger_path(self) -> Path:
        """The ledger as a file path (meaningful for a SQLite ledger only)."""
        return Path(self.ledger_target())


@dataclass
class Context:
    """Everything a command needs, loaded and validated before any host is touched."""

    options: Options
    playbook: Playbook
    inventory: Inventory
    hosts: tuple[Host, ...]
    ledger: Ledger
    emit: Emit
    backend_factory: Callable[[Sequence[Host], Playbook], Backend]
    confirm: Confirm | None = None
    pinned: list[str] = field(default_factory=list)
    cancel: Cancel = field(default_factory=Cancel)
    notifiers: dict[str, Any] = field(default_factory=dict)
    #: Restarts services on hosts, then re-applies ``phase`` and verifies (emergency rollback).
    restart: Callable[[Executor, Phase, Sequence[str]], StepReport] | None = None
    #: The run's one clock. Durations inside a run (soak time) come from its monotonic
    #: part, never from its wall time; ``sleep``, ``wall`` and ``mono`` read (and, in tests,
    #: replace) its parts.
    clock: Clock = SYSTEM

    sleep = ClockPart[Callable[[float], None]]("sleep")
    wall = ClockPart[Callable[[], float]]("wall")
    mono = ClockPart[Callable[[], float]]("monotonic")

    @property
    def limited(self) -> bool:
        return len(self.hosts) != len(self.inventory.hosts)


def load_context(
    options: Options,
    emit: Emit,
    *,
    confirm: Confirm | None = None,
    backend_factory: Callable[[Sequence[Host], Playbook], Backend] | None = None,
) -> Context:
    """Load and validate the playbook, inventory and limit; open the ledger. No host touched."""
    playbook = load_playbook(options.playbook)
    inventory = _load_inventory(options)
    hosts = select_hosts(inventory, options.limit)
    ledger = _open_ledger(options, inventory)
    pinned: list[str] = []

    def ssh_backend(selected: Sequence[Host], pb: Playbook) -> Backend:
        from .transport.ssh import SSHTransport

        def on_pin(host: str, fingerprint: str, path: str) -> None:
            pinned.append(host)
            emit(
                Event(
                    Kind.WARNING,
                    f"pinned new host key {fingerprint} in {path}",
                    host=host,
                    data={"fingerprint": fingerprint, "known_hosts": path},
                )
            )

        transport = SSHTransport(
            connect_timeout=pb.policy.connect_timeout,
            accept_new_host_keys=options.accept_new_host_keys,
            on_pin=on_pin,
            redact=Redactor(known_secrets(inventory, pb)),
        )
        return SSHBackend(selected, transport, pb, console_override())

    context = Context(
        options,
        playbook,
        inventory,
        hosts,
        ledger,
        emit,
        backend_factory or ssh_backend,
        confirm,
        pinned,
    )
    if backend_factory is None:
        from .restart import emergency_restarter

        context.restart = emergency_restarter(hosts)
    return context


@dataclass
class LedgerContext:
    """What a command that reads or writes only the ledger needs (history, report, unlock of a
    lock): the inventory's name and the ledger. It never loads the playbook, so a broken one
    does not stop an operator from reading the record or removing a dead run's lock."""

    options: Options
    inventory: Inventory
    ledger: Ledger
    emit: Emit


def load_ledger_context(options: Options, emit: Emit) -> LedgerContext:
    """Load the inventory and open the ledger; no playbook, no host touched."""
    inventory = _load_inventory(options)
    return LedgerContext(options, inventory, _open_ledger(options, inventory), emit)


def _load_inventory(options: Options) -> Inventory:
    return load_inventory(
        options.inventory,
        ssh_config=client_config_path(options.ssh_config),
        vault=Vault(vault_password_file(options.vault_password_file)),
    )


def _open_ledger(options: Options, inventory: Inventory) -> Ledger:
    ledger = open_ledger(options.ledger_target())
    _check_legacy_records(inventory, ledger)
    return ledger


def known_secrets(inventory: Inventory, playbook: Playbook) -> list[str]:
    """Every secret value this run knows, to redact from host output: each host's
    ``release_env`` values, and the webhook and Prometheus URLs (from their variable or file)."""
    from .yamlsrc import read_input

    found = [value.reveal() for host in inventory.hosts for _name, value in host.release_env]
    sources: list[tuple[str | None, str | None]] = [
        (playbook.source.url_env, playbook.source.url_file)
    ]
    if playbook.notify.webhook is not None:
        sources.append((playbook.notify.webhook.url_env, playbook.notify.webhook.url_file))
    for env, path in sources:
        if env:
            found.append(os.environ.get(env, "").strip())
        if path:
            with contextlib.suppress(RolloutError):
                found.append(read_input(path, 65536).strip())
    return [f for f in found if f]


def _check_legacy_records(inventory: Inventory, ledger: Ledger) -> None:
    """Refuse to guess when the ledger holds records under the inventory's old key.

    Older rollouts keyed an inventory by its file's stem, so ``eu/prod.yml`` and
    ``us/prod.yml`` shared ``prod``. Those records may be this fleet's or another's; only the
    operator knows, and says so with ``rollout_fleet`` (docs/inventory.md).
    """
    old = inventory.legacy_name
    if old is None:
        return
    if ledger.runs(inventory.name, 1) or ledger.state(inventory.name).phase is not None:
        return
    if not ledger.runs(old, 1) and ledger.state(old).phase is None:
        return
    from .errors import InventoryError, SourceLocation
    from .inventory import FLEET_VAR

    raise InventoryError(
        f"the ledger holds records under {old!r}, the key older rollouts gave every inventory "
        f"named {old}.*; they may belong to this fleet or to another inventory of that name, "
        f"and this inventory ({inventory.name}) has none of its own yet",
        location=SourceLocation(inventory.path, None, FLEET_VAR),
        hint=f"set `{FLEET_VAR}: {old}` under all: vars to continue that record, or "
        f"`{FLEET_VAR}: <new name>` to start a new one",
    )


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
                       f"pid {old.pid} ({old.command}): that process is gone"))  # fmt: skip
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
        sleep=ctx.sleep,
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
        executor.emit(
            Kind.RUN_FINISH, summary, ok=status is RunStatus.SUCCEEDED, status=status.value
        )
        ledger.release_lock(lock)


def _fleet_side(
    ctx: Context, run: RunRecord, command: str, reason: str | None, lease: bool
) -> FleetSide:
    """This run's identity on the hosts: the holder of its lease and author of its records."""
    from .lock import process_start

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
        claimed=ctx.wall(),
    )
    ttl = max(5, int(ctx.playbook.policy.lease_ttl))
    return FleetSide(ctx.playbook.name, holder if lease else None, ttl, reason=reason)


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
    """What ``ledger`` knows of ``inventory``'s host records (see ``fleetstate.Knowledge``)."""
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
    from .errors import Interrupted, RolledBack

    if isinstance(exc, RolledBack):
        return RunStatus.ROLLED_BACK
    if isinstance(exc, Refused):
        return RunStatus.REFUSED
    if isinstance(exc, Interrupted):
        return RunStatus.INTERRUPTED
    return RunStatus.FAILED


def _command_text(name: str, options: Options) -> str:
    return " ".join(("invoke", *options.argv)) if options.argv else f"invoke {name}"


# -- deploy / plan ---------------------------------------------------------------------------


def deploy(ctx: Context, phase: int, *, force: bool = False) -> StepReport:
    """Converge the selected hosts to ``phase``'s full state, batch by batch, verified."""
    recorded = ctx.ledger.state(ctx.inventory.name).phase
    target = resolve_target(Action.DEPLOY, ctx.playbook, recorded, phase, force=force)
    with running(ctx, _command_text("deploy", ctx.options)) as (run, _lock, ex):
        from .waves import continuing, refuse_past_waves

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
    from .checks import run_checks
    from .junit import junit_xml

    source = Path(ctx.options.source) if ctx.options.source else None
    report = run_checks(ctx.playbook, ex.backend, ex.hosts, source_root=source, emit=ex.emit_raw)
    if ctx.options.junit:
        Path(ctx.options.junit).write_text(junit_xml(report), encoding="utf-8")
    return report


def check(ctx: Context) -> CheckReport:
    """The readiness checklist on its own (the caller decides what a failure means)."""
    with running(ctx, _command_text("check", ctx.options), lease=False) as (_run, _lock, ex):
        return run_readiness(ctx, ex)


def notify(
    ctx: Context,
    ex: Executor,
    kind: NotifyKind,
    phase: int | None,
    target: int | None,
    summary: str,
    *,
    reason: str | None = None,
    failed: Sequence[str] = (),
) -> None:
    """Send a notification; it never raises and never waits longer than its timeout."""
    from .notify import Notification, Notifier

    try:
        notifier = ctx.notifiers.get(ex.run.id)
        if notifier is None:  # one per run, so "no webhook configured" is said once
            notifier = Notifier(
                ctx.playbook.notify, ctx.emit, lambda k, d: ctx.ledger.event(ex.run.id, k, d)
            )
            ctx.notifiers[ex.run.id] = notifier
        notifier.send(
            Notification(
                kind,
                ctx.inventory.name,
                phase,
                target,
                reason,
                ex.run.who,
                summary,
                tuple(failed),
                ex.run.id,
            )
        )
    except RolloutError as exc:
        _side_warning(ex, f"notification not sent: {exc.message}")
    except Exception as exc:  # a side output never aborts a run nor keeps it from recording
        _side_warning(ex, f"notification not sent: {type(exc).__name__}: {exc}")


def _side_warning(ex: Executor, message: str) -> None:
    with contextlib.suppress(Exception):  # even a warning about a side output must not abort
        ex.emit(Kind.WARNING, message)


def _deploy_body(
    ctx: Context, ex: Executor, run: RunRecord, plan: Plan, target: Phase
) -> StepReport:
    watch = ctx.options.wait and not ctx.limited
    soak = ctx.options.soak if ctx.options.soak is not None else target.soak
    if target.waves and not ctx.limited and len(ctx.hosts) > 1:
        from .waves import deploy_waves

        return deploy_waves(ctx, ex, run, plan, target, soak)
    if target.waves:
        ex.emit(Kind.WARNING, f"{target.title}'s waves are skipped: "
                + ("--limit picks the hosts" if ctx.limited else "one host has no baseline"))
    report = ex.execute_deploy(plan, release_last=not watch)
    _record_phase(ctx, ex, run, target.number, soak)
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


def make_soak(ctx: Context, ex: Executor, phase: Phase, previous: Phase) -> Soak:
    """The soak watcher for ``phase``, with the CLI's interval override applied; during a
    wave, it judges the canary against the baseline (rollout.waves)."""
    from .soak import Soak
    from .waves import current_wave, split_for

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
        from .canary import WaveJudgement, WaveVerdict
        from .waves import judge, settle

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
        wall=ctx.wall,
        mono=ctx.mono,
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
        from .wavereport import prometheus_text, write_textfile

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
    with running(ctx, _command_text("monitor", ctx.options)) as (run, _lock, ex):
        if ctx.options.soak is not None and ctx.options.soak != state.soak_required:
            state = ctx.ledger.set_soak_required(ctx.inventory.name, ctx.options.soak, run.id)
        from .soak import soak_done

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
        from .waves import close_final, current_wave, judge, settle

        wave = current_wave(ctx)
        state = make_soak(ctx, ex, phase, previous).run()
        if wave is not None and not wave.final and wave.verdict is None:
            settle(ctx, ex, wave, judge(ctx, wave))  # the next wave is for deploy or advance
        close_final(ctx, ex)
        return state


def recorded_phase(ctx: Context, number: int) -> Phase:
    """The recorded phase in this playbook; a clear UsageError when the playbook lacks it."""
    if 0 <= number <= ctx.playbook.last:
        return ctx.playbook.phase(number)
    raise UsageError(
        f"the ledger records phase {number} for {ctx.inventory.name}, but "
        f"{ctx.playbook.path} has phases 0..{ctx.playbook.last}",
        hint="use the playbook that deployed it (--playbook), or bring the fleet into this one "
        f"with `invoke rollback --to {ctx.playbook.last} --reason ...`",
    )


def make_plan(ctx: Context, phase: int, *, force: bool = False) -> Plan:
    """The plan deploy would execute now: hosts are read, nothing is changed, no lock taken."""
    recorded = ctx.ledger.state(ctx.inventory.name).phase
    target = resolve_target(Action.DEPLOY, ctx.playbook, recorded, phase, force=force)
    with running(ctx, _command_text("plan", ctx.options), lease=False) as (_run, _lock, ex):
        readings = ex.preflight()
        plan = ex.plan(Action.DEPLOY, target, readings, recorded)
        if target.waves and not ctx.limited:
            from .waves import describe_waves

            describe_waves(ctx, ex, target)
        return plan


def _record_phase(ctx: Context, ex: Executor, run: RunRecord, phase: int, soak: float) -> None:
    _supersede(ctx, ex, run)
    if ctx.limited:
        ex.emit(
            Kind.WARNING,
            f"--limit covered {len(ctx.hosts)} of "
            f"{len(ctx.inventory.hosts)} hosts: the recorded phase stays unchanged",
        )
        return
    ctx.ledger.set_phase(ctx.inventory.name, phase, run.id, soak_required=soak)
    ex.emit(Kind.INFO, f"recorded phase {phase} for {ctx.inventory.name}", phase=phase)


def _supersede(ctx: Context, ex: Executor, run: RunRecord) -> None:
    """Settle dead runs' unsettled changes on hosts this run has just verified.

    A crashed run leaves intents open as evidence; once a later run has read those hosts back
    at a recorded state, the evidence has served and `status` stops reporting it.
    """
    verified = {h.name for h in ctx.hosts}
    for intent in ctx.ledger.open_intents(ctx.inventory.name):
        if intent.run_id != run.id and intent.host in verified:
            note = "never finished; the host was read back and verified by a later run"
            ctx.ledger.settle(intent.id, False, {"superseded_by": run.id, "note": note})
            ex.emit(Kind.INFO, f"settled change #{intent.id} of dead run {intent.run_id}",
                    host=intent.host)  # fmt: skip


# -- rollback -----------------------------------------------------------------------------


def rollback(
    ctx: Context, to: int | None = None, *, reason: str | None = None, force: bool = False
) -> StepReport:
    """Converge every reachable selected host to an earlier phase's full state, verified."""
    recorded = ctx.ledger.state(ctx.inventory.name).phase
    target = resolve_target(Action.ROLLBACK, ctx.playbook, recorded, to, force=force)
    with running(ctx, _command_text("rollback", ctx.options), reason) as (run, _lock, ex):
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


#: Default --give-up-after: how long a rollback keeps retrying hosts that did not verify.
RETRY_WINDOW = 60.0
#: The same for an emergency rollback, which gives up sooner.
EMERGENCY_RETRY = 30.0


def emergency(ctx: Context, to: int | None = None, *, reason: str | None = None) -> StepReport:
    """Emergency rollback: no checks, no soak; take the lock over; every reachable host to the
    emergency phase's full state in parallel, restart services, re-apply and verify."""
    recorded = ctx.ledger.state(ctx.inventory.name).phase
    target = resolve_target(Action.EMERGENCY, ctx.playbook, recorded, to)
    if ctx.options.retry_deadline is None:  # an explicit --give-up-after wins
        ctx.options = dataclasses.replace(ctx.options, retry_deadline=EMERGENCY_RETRY)
    command = _command_text("rollback", ctx.options)
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
    _record_phase(ctx, ex, run, floor.number, floor.soak)
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
    from .fleet import run_parallel

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
        _record_phase(ctx, ex, run, phase, soak)
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


# -- status ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostStatus:
    host: str
    flags: dict[str, Observed] | None
    matches: int | None
    error: str | None
    record: Record | None = None  # the host's last change, from its fleet record
    behind: bool = False  # this ledger does not know that change (another controller's)
    lease: str | None = None  # who holds the host's fleet lease now, if anyone
    #: the phase this host must hold when it differs from the recorded one: a wave's
    #: baseline host stays at the previous phase (rollout.waves)
    expected: int | None = None
    console: str | None = None  # the console path read through (rollout.erlcall)
    console_fallback: str | None = None  # why rpc, when erl_call was wanted


@dataclass(frozen=True)
class StatusReport:
    inventory: str
    recorded: int | None
    hosts: tuple[HostStatus, ...]
    holder: LockRecord | None
    interrupted: tuple[RunRecord, ...]
    open_intents: int
    wave: WaveRecord | None = None  # the wave the phase is in, while it has a baseline

    @property
    def drifted(self) -> tuple[str, ...]:
        return tuple(
            h.host
            for h in self.hosts
            if h.flags is not None
            and h.matches != (h.expected if h.expected is not None else self.recorded)
        )


def status(ctx: Context) -> StatusReport:
    """Read every selected host (read-only, no lock) and compare with the ledger."""
    ledger = ctx.ledger
    inv = ctx.inventory.name
    backend = ctx.backend_factory(ctx.hosts, ctx.playbook)
    if hasattr(backend, "side"):
        backend.side = FleetSide(ctx.playbook.name, None, 0)  # read-only: peek, no lease
    knowledge = ledger_knowledge(ledger, inv)
    try:
        names = [h.name for h in ctx.hosts]
        from .fleet import connect_failures, each

        readings = each(names, lambda n: backend.console(n).read_flags(),
                        connect=connect_failures(backend.connect))  # fmt: skip
    finally:
        backend.close()
    rows = []
    for name in names:
        outcome = readings[name]
        if outcome.value is None:
            rows.append(HostStatus(name, None, None, outcome.detail))
        else:
            flags = dict(outcome.value.flags)
            fleet = outcome.value.state
            record = fleet.record if fleet else None
            behind = record is not None and not knowledge.knows(name, record)
            lease = fleet.lease if fleet else None
            held = None
            if lease is not None and lease.live and lease.holder is not None:
                held = f"{lease.id} by {lease.holder.describe()}, {lease.expires_in:.0f}s left"
            rows.append(HostStatus(name, flags, ctx.playbook.match(flags), None, record,
                                   behind, held, console=outcome.value.console,
                                   console_fallback=outcome.value.console_fallback))  # fmt: skip
    from .waves import current_wave

    wave = current_wave(ctx)
    if wave is not None and not wave.final:
        rows = [r if r.host in wave.canary else dataclasses.replace(r, expected=wave.from_phase)
                for r in rows]  # fmt: skip
    return StatusReport(
        inventory=inv,
        recorded=ledger.state(inv).phase,
        hosts=tuple(rows),
        holder=ledger.holder(inv),
        interrupted=tuple(ledger.interrupted_runs(inv)),
        open_intents=len(ledger.open_intents(inv)),
        wave=wave if wave is not None and not wave.final else None,
    )


def bad_phase(number: int, last: int, recorded: int | None = None) -> None:
    """Refuse a phase outside 1..``last``, naming the next phase after ``recorded``."""
    after = recorded if recorded is not None else 0
    if after < last:
        hint = f"the next phase is {after + 1}: `invoke approve {after + 1}`"
    else:
        hint = f"the ledger records phase {recorded}: no phase is left to approve"
    raise UsageError(
        f"phase {number} does not exist: the playbook has phases 1..{last}",
        hint=f"{hint}; `invoke status` shows the recorded phase",
    )


def require_phase(value: str | int | None) -> int:
    number = check_phase_arg(value)
    if number is None:
        raise UsageError("--phase is required")
    return number


def check_phase_arg(value: str | int | None, name: str = "--phase") -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} expects a phase number, got {value!r}") from None


# -- backup, restore, restart ----------------------------------------------------------------


def backup(ctx: Context) -> Backup:
    """Save every selected host's flags (and state paths) under backups/<inventory>/<id>/."""
    from .backup import backups_root, take_backup

    recorded = ctx.ledger.state(ctx.inventory.name).phase
    with running(ctx, _command_text("backup", ctx.options), lease=False) as (_run, _lock, ex):
        return take_backup(ex, ctx.inventory.name, ctx.playbook, ctx.hosts, backups_root(),
                           recorded, clock=ctx.wall)  # fmt: skip


def restore(ctx: Context, backup_id: str, *, state: bool = False) -> RestoreReport:
    """Put a backup's flags (and, with ``state``, its state files) back; verified."""
    from .backup import backups_root, load_backup, restore_backup

    loaded = load_backup(backups_root(), ctx.inventory.name, backup_id)
    with running(ctx, _command_text("restore", ctx.options)) as (run, _lock, ex):
        if ex.side is not None:
            ex.claim()
            check_fleet(ctx, ex, what=f"restore of backup {backup_id}")
        report = restore_backup(ex, loaded, ctx.hosts, restore_state=state)
        if report.phase is not None:
            _record_phase(ctx, ex, run, report.phase, ctx.playbook.phase(report.phase).soak)
        return report


def restart(ctx: Context, *, service: str | None = None, batch: int = 1,
            wait_timeout: float = 60.0) -> RestartReport:  # fmt: skip
    """Rolling restart, a batch at a time; each host's phase re-applied and verified."""
    from .restart import rolling_restart

    recorded = ctx.ledger.state(ctx.inventory.name).phase
    phase = recorded_phase(ctx, recorded) if recorded is not None else None
    from .waves import current_wave

    wave = current_wave(ctx)
    if wave is not None and not wave.final:
        # a restart re-applies the recorded phase on every host it restarts: it would move
        # the wave's baseline forward (TODO(issue 16): restart each side at its own phase)
        raise Refused(
            f"restart refused: {wave.title} is under way and its baseline hosts must stay at "
            f"phase {wave.from_phase}; nothing was changed",
            hint=f"finish the waves first (`invoke advance`), or `invoke rollback --to "
            f"{wave.from_phase} --reason ...`; an emergency is always `invoke rollback "
            "--emergency`",
        )
    with running(ctx, _command_text("restart", ctx.options)) as (_run, _lock, ex):
        if ex.side is not None:
            ex.claim()
            check_fleet(ctx, ex, what="restart")
        return rolling_restart(ex, phase, ctx.hosts, service=service, batch=batch,
                               wait_timeout=wait_timeout)  # fmt: skip


# -- the fleet's records: adopt, pause, resume, unlock a lease ----------------------------------


def adopt(ctx: Context) -> dict[str, Record]:
    """Take the hosts' records into this ledger: their phase, pause and generations.

    For an operator who has read `invoke status` and agrees with what another controller did;
    afterwards this ledger is no longer behind, and its commands go on from the fleet's state.
    """
    if ctx.limited:
        raise UsageError("adopt takes the whole fleet's record; drop --limit")
    inv = ctx.inventory.name
    with running(ctx, _command_text("adopt", ctx.options), lease=False) as (run, _lock, ex):
        _unreachable, readings = ex.claim()
        unread = [h for h in ex.hosts if h not in readings]
        if unread:
            raise HostsUnreachable(
                f"cannot adopt the fleet's record: {len(unread)} host(s) unreadable: "
                + ", ".join(unread),
                hint="bring them back, then re-run `invoke adopt`",
                results=[HostOutcome(h, False, "unreadable") for h in unread],
            )
        states = ex.side.states if ex.side is not None else {}
        records = {h: s.record for h, s in states.items() if s.record is not None}
        if not records:
            ex.emit(Kind.INFO, "no host carries a record yet: nothing to adopt")
            return {}
        mine = ctx.ledger.identity
        foreign = {h: r for h, r in records.items() if r.ledger != mine}
        ctx.ledger.adopt(inv, {h: (r.generation, r.run_id, r.ledger) for h, r in foreign.items()},
                         run.id)  # fmt: skip
        for host, record in sorted(records.items()):
            ex.emit(Kind.INFO, f"adopted: {record.story()}", host=host)
        newest = max(records.values(), key=lambda r: (r.changed, r.generation))
        phases = sorted({r.phase for r in records.values() if r.phase is not None})
        if len(phases) > 1:
            ex.emit(Kind.WARNING, f"the fleet is mixed (phases {phases}); recording the newest "
                    f"change's phase {newest.phase}; `invoke status` shows each host")  # fmt: skip
        if newest.phase is not None:
            soak = ctx.playbook.phase(newest.phase).soak
            ctx.ledger.set_phase(inv, newest.phase, run.id, soak_required=soak)
            ex.emit(Kind.INFO, f"recorded phase {newest.phase} for {inv} (adopted)",
                    phase=newest.phase)  # fmt: skip
        paused = next((r for r in records.values() if r.paused), None)
        if paused is not None:
            ctx.ledger.set_paused(inv, True, paused.paused_by or paused.who,
                                  paused.paused_reason)  # fmt: skip
        elif ctx.ledger.state(inv).paused:
            ctx.ledger.set_paused(inv, False, ctx.ledger.who, "adopted an unpaused fleet")
        return records


def set_pause(ctx: Context, paused: bool, reason: str | None) -> InventoryState:
    """Pause or resume rollouts, in this ledger and on every host's record (for every
    controller). Refused while this ledger is behind the fleet (adopt first)."""
    from .fleet import run_parallel
    from .fleetstate import Op

    inv = ctx.inventory.name
    word = "pause" if paused else "resume"
    with running(ctx, _command_text(word, ctx.options), reason) as (run, _lock, ex):
        side = ex.side
        if side is not None:
            unreachable, _readings = ex.claim()
            check_fleet(ctx, ex, what=word)
            side.pause = (f"{run.who}@{run.where}", reason or "paused") if paused else None
            targets = [h for h in ex.hosts if h not in unreachable]

            def note(name: str) -> HostState:
                state = side.states.get(name)
                phase = state.record.phase if state and state.record else None
                record = side.record_for(name, word, phase)
                console = ex.backend.console(name)
                return console.state_call(Op.NOTE, record)  # type: ignore[attr-defined, no-any-return]

            ex.check_right()
            for name, outcome in run_parallel(targets, note).items():
                ok = outcome.error is None
                ex.emit(Kind.INFO if ok else Kind.WARNING,
                        f"fleet record {'paused' if paused else 'resumed'}" if ok
                        else f"could not write the fleet record: {outcome.error.detail}",  # type: ignore[union-attr]
                        host=name, ok=ok)  # fmt: skip
            if unreachable:
                ex.emit(Kind.WARNING, f"{word}: {len(unreachable)} host(s) unreachable keep "
                        f"their record: {', '.join(unreachable)}")  # fmt: skip
        return ctx.ledger.set_paused(inv, paused, ctx.ledger.who, reason if paused else None)


def clear_lease(ctx: Context, lease_id: str) -> list[str]:
    """Remove the fleet lease ``lease_id`` (exact id) from every host that holds it."""
    from .fleet import run_parallel
    from .fleetstate import LEASE_ID_RE, Op

    if not LEASE_ID_RE.match(lease_id):
        raise UsageError(f"{lease_id!r} is not a fleet lease id (fl- and 12 hex digits)")
    cleared: list[str] = []
    with running(ctx, _command_text("unlock", ctx.options), lease=False) as (_run, _lock, ex):
        failed = ex.connect_all()

        def clear(name: str) -> HostState:
            console = ex.backend.console(name)
            return console.state_call(Op.CLEAR, replace_id=lease_id)  # type: ignore[attr-defined, no-any-return]

        for name, outcome in run_parallel([h for h in ex.hosts if h not in failed], clear).items():
            value = outcome.value
            if value is not None and value.lease is not None and value.lease.status == "cleared":
                cleared.append(name)
                ex.emit(Kind.INFO, f"cleared the fleet lease {lease_id}", host=name, ok=True)
        if not cleared:
            raise UsageError(f"no reachable host holds the fleet lease {lease_id}",
                             hint="`invoke status` shows each host's lease")  # fmt: skip
    return cleared
