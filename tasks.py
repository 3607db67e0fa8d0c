"""Invoke tasks: the operator's commands. Thin: parse options, call the engine, map errors.

Run ``invoke --list`` for the tasks and ``invoke --help TASK`` for each one's options.
A task's signature holds only its own options; the shared ones are declared once in
``rollout/options.py`` and attached by ``@command(GROUP, ...)`` (``rollout/cli.py``,
docs/architecture.md).
Exit codes are stable (README.md, "Exit codes"); the engine imports lazily so that
``--list`` and ``--help`` stay fast.

Why this is one module of over 400 lines: it is the CLI's one list of tasks, each a few lines
that take options, call one command and print what it returns; split by group, ``invoke
--list`` would be spread over modules with no smaller concept in any of them. The ``lab.*``
tasks stay here too, rather than in a ``rollout_lab/tasks.py``: there the lab would import the
engine's CLI layer (``rollout.cli.command``, for the same task class: no short flags, Invoke's
core flags refused), where it imports only the model and ``templating``; importing that
module here would load the whole lab package (some 70 modules) on every ``invoke --list``,
where today a lab task imports it when it runs; and this file would stay over 400 lines.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from invoke.collection import Collection
from invoke.exceptions import Exit

from rollout.cli import command, engine, ledger_only
from rollout.options import (
    BASE,
    CHECKS,
    CONFIRM,
    INTERVAL,
    LIMIT,
    LOCK,
    OUTPUT,
    RETRY,
    SCANS,
    SOAK,
    Flags,
    duration,
    one,
)

if TYPE_CHECKING:
    from rollout.clock import Clock
    from rollout.commands.context import Context, LedgerContext

#: The single shared options the inventory, runbook tasks take.
INVENTORY, PLAYBOOK = one("inventory"), one("playbook")
SSH_CONFIG, VAULT = one("ssh_config"), one("vault_password_file")

#: For report and advance (the page: rollout/htmlreport.py, docs/report-page.md).
HTML_HELP = "Write the run's evidence as one self-contained HTML page to this file"


@command(*BASE, LIMIT, LOCK, CONFIRM, CHECKS, SOAK, RETRY, help={
    "phase": "Phase number to deploy (1..N)",
    "force": "Allow skipping phases forward",
    "wait": "Wait out the soak, watching health (default); --no-wait returns after applying",
})  # fmt: skip
def deploy(c: Any, flags: Flags, phase: str, force: bool = False, wait: bool = True) -> None:
    """Deploy a phase: read every host, show the diff, apply its full flag state, verify, soak."""
    from rollout import commands

    with engine(flags, wait=wait) as ctx:
        commands.deploy(ctx, commands.require_phase(phase), force=force)


@command(*BASE, LIMIT, LOCK, help={"phase": "Phase to plan (1..N)",
                                    "force": "Allow skipping phases forward"})  # fmt: skip
def plan(c: Any, flags: Flags, phase: str, force: bool = False) -> None:
    """Show what `deploy --phase N` would change on each host, without changing anything."""
    from rollout import commands

    with engine(flags) as ctx:
        commands.make_plan(ctx, commands.require_phase(phase), force=force)


@command(*BASE, LIMIT, LOCK, CONFIRM, RETRY, help={
    "to": "Phase to roll back to (default: the one before the recorded phase)",
    "reason": "Why; recorded in the ledger and the notifications",
    "force": "Allow a 'rollback' to a phase ahead of the recorded one",
    "emergency": "Emergency: no checks or soak; take over the lock; every reachable host to "
    "the emergency phase (playbook, default 1) in parallel; restart; verify",
})  # fmt: skip
def rollback(
    c: Any,
    flags: Flags,
    to: str | None = None,
    reason: str | None = None,
    emergency: bool = False,
    force: bool = False,
) -> None:
    """Roll back: converge every host to an earlier phase's FULL flag state, verified."""
    from rollout import commands

    with engine(flags) as ctx:
        number = commands.check_phase_arg(to, "--to")
        if emergency:
            commands.emergency(ctx, number, reason=reason)
        else:
            commands.rollback(ctx, number, reason=reason, force=force)


@command(*BASE, LOCK, SOAK, RETRY)  # fmt: skip
def monitor(c: Any, flags: Flags) -> None:
    """Start or resume the recorded phase's soak; roll back automatically on a breach."""
    from rollout import commands

    with engine(flags) as ctx:
        commands.monitor(ctx)


@command(*BASE, LIMIT)  # fmt: skip
def status(c: Any, flags: Flags) -> None:
    """Show each host's flags, the phase they match (or drift), and the recorded phase."""
    from rollout import commands
    from rollout.errors import HostOutcome, HostsUnreachable
    from rollout.report import render_status

    with engine(flags) as ctx:
        report = commands.status(ctx)
        print(render_status(report, ctx.playbook, as_json=flags.json), flush=True)
        down = [h.host for h in report.hosts if h.error]
        if down:
            raise HostsUnreachable(
                f"{len(down)} host(s) could not be read: {', '.join(down)}",
                results=[HostOutcome(h.host, False, h.error) for h in report.hosts if h.error],
            )


@command(*BASE, LIMIT, LOCK, SCANS)  # fmt: skip
def check(c: Any, flags: Flags) -> None:
    """Run the readiness checklist: source scans, commands, metrics, reachability; N/M passed."""
    import sys as _sys

    from rollout import commands
    from rollout.checks import render_checks
    from rollout.errors import Refused

    with engine(flags) as ctx:
        report = commands.check(ctx)
        if not flags.json:
            print(render_checks(report, encoding=_sys.stdout.encoding), flush=True)
        if not report.ok:
            passed, total = report.overall
            raise Refused(
                f"readiness checks failed: {passed}/{total} passed",
                hint="fix the failing checks listed above",
            )


@command(*BASE, LIMIT, LOCK)  # fmt: skip
def backup(c: Any, flags: Flags) -> None:
    """Back up every host's flags and state paths to backups/<inventory>/<id>/ (checksummed)."""
    from rollout import commands

    with engine(flags) as ctx:
        saved = commands.backup(ctx)
        ctx.emit(_final_event(ctx.clock, f"backup {saved.id} complete: {len(saved.hosts)} "
                              "host(s)", "backup", saved.recorded_phase))  # fmt: skip


@command(*BASE, LIMIT, LOCK, help={
    "backup": "The backup id (see `invoke backups`)",
    "state": "Also restore the state files (not only the flags)",
})  # fmt: skip
def restore(c: Any, flags: Flags, backup: str, state: bool = False) -> None:
    """Put a backup's flags (and with --state its files) back on every host; verified."""
    from rollout import commands

    with engine(flags) as ctx:
        commands.restore(ctx, backup, state=state)


@command(*BASE)  # fmt: skip
def backups(c: Any, flags: Flags) -> None:
    """List the inventory's backups, newest first, and whether each is complete."""
    import json as _json

    from rollout.backup import backups_root, list_backups

    with ledger_only(flags) as ctx:
        for info in reversed(list_backups(backups_root(), ctx.inventory.name)):
            if flags.json:
                print(_json.dumps({"event": "backup", "id": info.id, "complete": info.complete,
                                   "recorded_phase": info.recorded_phase, "who": info.who,
                                   "hosts": list(info.hosts)}))  # fmt: skip
            else:
                state = "complete" if info.complete else f"INCOMPLETE ({info.problem})"
                print(f"{info.id}  phase {info.recorded_phase}  {len(info.hosts)} host(s)  "
                      f"by {info.who}  {state}")  # fmt: skip


@command(*BASE, LIMIT, LOCK, help={
    "service": "Service to restart where a host has no restart_command (default: the "
    "inventory's `service`, else foundation)",
    "batch": "Hosts restarted at once (default 1)",
    "wait_timeout": "Seconds to wait for each host's console after its restart (default 60)",
})  # fmt: skip
def restart(
    c: Any, flags: Flags, service: str | None = None, batch: int = 1, wait_timeout: int = 60
) -> None:
    """Rolling restart: a batch at a time, wait for the console, re-apply the phase, verify."""
    from rollout import commands

    with engine(flags) as ctx:
        commands.restart(ctx, service=service, batch=int(batch), wait_timeout=float(wait_timeout))


@command(PLAYBOOK, help={"output": "Where to write (default RUNBOOK.md)",
                           "check": "Do not write; exit 1 if the file is stale"})  # fmt: skip
def runbook(c: Any, flags: Flags, output: str = "RUNBOOK.md", check: bool = False) -> None:
    """Render RUNBOOK.md (the operator's procedure) from the playbook and its template."""
    from pathlib import Path

    from rollout.errors import RolloutError
    from rollout.playbook import load_playbook
    from rollout.resources import default_playbook
    from rollout.runbook import render_runbook

    try:
        text = render_runbook(load_playbook(flags.playbook or default_playbook()))
    except RolloutError as exc:
        raise Exit(f"error: {exc}", code=int(exc.exit_code)) from None
    path = Path(output)
    if check:
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            raise Exit(f"{path} is stale: run `invoke runbook`", code=1)
        print(f"{path} is up to date")
        return
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")


# -- unattended rollouts and evidence ---------------------------------------------------------


@command(*BASE, LOCK, CHECKS, INTERVAL, RETRY, help={
    "junit": "Write the gates' results for the next phase as JUnit XML to this file",
    "max_gap": "Longest gap between two scheduled samples that still counts as soak (default 15m)",
    "html": HTML_HELP + " (the run this step made, else the latest; written on failure too)",
})  # fmt: skip
def advance(c: Any, flags: Flags, max_gap: str | None = None, html: str | None = None) -> None:
    """For schedulers: one health round for the running soak, or the next phase once healthy."""
    from rollout import pipeline

    with engine(flags) as ctx, _page_after(ctx, html, flags.json):
        gap = duration(max_gap, "--max-gap") or pipeline.ADVANCE_MAX_GAP
        result = pipeline.advance(ctx, _gates(), max_gap=gap)
        ctx.emit(_final_event(ctx.clock, result.message, result.outcome.value, result.phase))


def _gates() -> tuple[Any, ...]:
    """Gate checks beyond soak and approval: fresh backup and readiness checks."""
    from rollout import wiring

    return wiring.gates()


def _final_event(clock: Clock, message: str, outcome: str, phase: int | None) -> Any:
    """A command's last line, stamped by ``clock`` (the context's; a ledger-only command's
    ledger's)."""
    from rollout.events import Event, Kind

    return Event(Kind.INFO, message, ok=True, data={"outcome": outcome, "phase": phase},
                 ts=clock.wall())  # fmt: skip


@command(*BASE, help={"reason": "Why (recorded)"})  # fmt: skip
def pause(c: Any, flags: Flags, reason: str | None = None) -> None:
    """Pause unattended rollouts for every controller: `advance` does nothing until resumed."""
    from rollout import commands

    with engine(flags) as ctx:
        state = commands.set_pause(ctx, True, reason)
        ctx.emit(_final_event(ctx.clock, f"rollouts of {state.inventory} paused", "paused",
                              state.phase))  # fmt: skip


@command(*BASE)  # fmt: skip
def resume(c: Any, flags: Flags) -> None:
    """Resume unattended rollouts (for every controller) after a pause or a rollback."""
    from rollout import commands

    with engine(flags) as ctx:
        state = commands.set_pause(ctx, False, None)
        ctx.emit(_final_event(ctx.clock, f"rollouts of {state.inventory} resumed", "resumed",
                              state.phase))  # fmt: skip


@command(*BASE)  # fmt: skip
def adopt(c: Any, flags: Flags) -> None:
    """Take the fleet's record (another controller's change) into this ledger."""
    from rollout import commands

    with engine(flags) as ctx:
        records = commands.adopt(ctx)
        state = ctx.ledger.state(ctx.inventory.name)
        ctx.emit(_final_event(ctx.clock, f"adopted the records of {len(records)} host(s); "
                              f"recorded phase {state.phase}", "adopted", state.phase))  # fmt: skip


@command(*BASE, help={"phase": "The phase being approved",
                         "note": "Free text recorded with the approval"})  # fmt: skip
def approve(c: Any, flags: Flags, phase: str, note: str | None = None) -> None:
    """Record your approval for a phase whose gate requires one (`advance` waits for it)."""
    from rollout import commands

    with engine(flags) as ctx:
        number = commands.require_phase(phase)
        if not 1 <= number <= ctx.playbook.last:
            recorded = ctx.ledger.state(ctx.inventory.name).phase
            commands.bad_phase(number, ctx.playbook.last, recorded)
        ctx.ledger.approve(ctx.inventory.name, number, ctx.ledger.who, note)
        ctx.emit(_final_event(ctx.clock, f"phase {number} approved by {ctx.ledger.who}",
                              "approved", number))  # fmt: skip


@command(*BASE, help={"count": "How many runs"})  # fmt: skip
def history(c: Any, flags: Flags, count: int = 20) -> None:
    """List the inventory's recent runs: who, when, what, and how each ended."""
    from rollout.history import render_history
    from rollout.wavereport import waves_by_run

    with ledger_only(flags) as ctx:
        print(render_history(ctx.ledger.runs(ctx.inventory.name, int(count)), as_json=flags.json,
                             waves=waves_by_run(ctx.ledger, ctx.inventory.name)))


@command(*BASE, help={
    "run": "Run id (see history); default: the inventory's latest run",
    "html": HTML_HELP,
    "junit": "Write the run's wave judgements as JUnit XML (a test case per wave and metric) "
    "to this file",
})  # fmt: skip
def report(
    c: Any, flags: Flags, run: str | None = None, html: str | None = None, junit: str | None = None
) -> None:
    """Show one run's timeline: steps, per-host results, every health sample and verdict,
    and each wave's canary-against-baseline judgement."""
    from rollout.history import render_report
    from rollout.wavereport import waves_of_run, write_junit

    with ledger_only(flags) as ctx:
        if html:
            _write_page(ctx, run, html, flags.json)
            return
        if run is None:
            run = _latest_run(ctx)
        record = ctx.ledger.run(run)
        events = ctx.ledger.events(run)
        waves = waves_of_run(ctx.ledger, record, events)
        if junit:
            write_junit(junit, waves)
        print(render_report(record, events, ctx.ledger.intents(run), as_json=flags.json,
                            waves=waves))  # fmt: skip


@command(*BASE, help={
    "lock_id": "The exact lock id (lk-...) or fleet lease id (fl-...), as the busy error or "
    "status prints it",
    "force": "Also remove the lock of a run that is alive on this machine",
})  # fmt: skip
def unlock(c: Any, flags: Flags, lock_id: str, force: bool = False) -> None:
    """Remove a dead run's lock (lk-...) or fleet lease (fl-...); needs the exact id."""
    from rollout import commands
    from rollout.errors import Refused
    from rollout.lock import Liveness, describe

    if lock_id.startswith("fl-"):  # on the hosts: connecting needs the playbook
        with engine(flags) as fleet:
            hosts = commands.clear_lease(fleet, lock_id)
            fleet.emit(_final_event(fleet.clock, f"cleared the fleet lease {lock_id} on "
                                    f"{len(hosts)} host(s)", "unlocked", None))  # fmt: skip
        return
    with ledger_only(flags) as ctx:  # a lock is the ledger's: a broken playbook cannot block it
        held = ctx.ledger.holder(ctx.inventory.name)
        if held is not None and held.id == lock_id and not force:
            alive = ctx.ledger.lock_liveness(held)
            if alive is Liveness.ALIVE:
                raise Refused(
                    f"refusing to unlock a live run on this machine: "
                    f"{describe(held, alive, ctx.ledger.clock.wall())}",
                    hint=f"let it finish, or stop it; to remove its lock anyway (it stops at its "
                    f"next change): invoke unlock {lock_id} --force",
                )
        old = ctx.ledger.unlock(ctx.inventory.name, lock_id)
        ctx.emit(
            _final_event(
                ctx.ledger.clock,
                f"removed lock {old.id} of {old.who}@{old.where} pid {old.pid} ({old.command})",
                "unlocked",
                None,
            )
        )


# -- the report page (--html) -----------------------------------------------------------------


def _latest_run(ctx: LedgerContext) -> str:
    from rollout.evidence import gather

    return gather(ctx.ledger, None, ctx.inventory.name).run.id


def _write_page(ctx: Context | LedgerContext, run: str | None, path: str, as_json: bool) -> None:
    """Render ``run`` (default: the inventory's latest) to ``path`` and say so on stdout."""
    from rollout.evidence import gather
    from rollout.htmlreport import write_html

    evidence = gather(ctx.ledger, run, ctx.inventory.name)
    out = write_html(evidence, path, clock=ctx.ledger.clock)
    message = f"wrote the report page of run {evidence.run.id} to {out}"
    if as_json:
        import json

        print(json.dumps({"event": "report.html", "run": evidence.run.id, "path": str(out),
                          "message": message}), flush=True)  # fmt: skip
    else:
        print(message, flush=True)


@contextmanager
def _page_after(ctx: Context, path: str | None, as_json: bool) -> Iterator[None]:
    """Write the page of the run this command made (else the latest) when it ends, even when
    it fails: a breach and its rollback are what a pipeline's artifact is for."""
    try:
        yield
    finally:
        if path:
            run = getattr(ctx.emit, "run_id", None)  # the Reporter keeps run.start's id
            try:
                _write_page(ctx, run, path, as_json)
            except Exception as exc:  # never hide the command's own outcome behind the page's
                print(f"warning: could not write the report page {path}: {exc}",
                      file=sys.stderr, flush=True)  # fmt: skip


@command(OUTPUT, help={
    "src": "The ledger to copy from (a file, or a URI)",
    "dest": "The ledger to copy into. Default: $ROLLOUT_LEDGER",
    "json": "Print the result as one JSON line",
})  # fmt: skip
def ledger_copy(c: Any, flags: Flags, src: str, dest: str | None = None) -> None:
    """Copy a ledger's history (runs with their ids, events, intents, phases, approvals) into
    another, e.g. a SQLite file into the team's PostgreSQL ledger; safe to run again."""
    import os

    from rollout.errors import RolloutError, UsageError
    from rollout.ledger import open_ledger
    from rollout.ledgercopy import copy_history

    try:
        target = dest or os.environ.get("ROLLOUT_LEDGER")
        if not target:
            raise UsageError("no destination ledger", hint="pass --dest postgresql://USER@HOST/DB")
        with open_ledger(src) as source, open_ledger(target) as destination:
            report = copy_history(source, destination)
    except RolloutError as exc:
        raise Exit(f"error: {exc}", code=int(exc.exit_code)) from None
    if flags.json:
        import json as _json
        from dataclasses import asdict

        print(_json.dumps({"event": "ledger.copied", "ok": True, **asdict(report)}))
    else:
        print(f"✓ {report.summary()}")


# -- the inventory, as ansible-inventory shows it ----------------------------------------------


@command(INVENTORY, LIMIT, SSH_CONFIG, VAULT, name="inventory", help={
    "list": "Print JSON: every host's resolved connection and tool variables (secrets "
    "masked) and every group (the default)",
    "graph": "Print the group tree",
    "host": "Print one host's resolved variables as JSON",
})  # fmt: skip
def inventory_(
    c: Any, flags: Flags, list: bool = False, graph: bool = False, host: str | None = None
) -> None:
    """Show the inventory as rollout resolves it (ansible-inventory's --list/--graph/--host);
    connects to nothing."""
    import json

    from rollout import vault
    from rollout.commands.context import DEFAULT_INVENTORY
    from rollout.errors import RolloutError
    from rollout.inventory import load_inventory, select_hosts
    from rollout.invlist import graph_text, host_data, list_data
    from rollout.sshopts import client_config_path

    if sum((bool(list), bool(graph), host is not None)) > 1:
        raise Exit("error: give one of --list, --graph, --host", code=2)
    try:
        inv = load_inventory(
            flags.inventory or DEFAULT_INVENTORY,
            ssh_config=client_config_path(flags.ssh_config),
            vault=vault.Vault(vault.vault_password_file(flags.vault_password_file)),
        )
        hosts = select_hosts(inv, flags.limit)
        if host is not None:
            print(json.dumps(host_data(inv.host(host)), indent=2))
        elif graph:
            print(graph_text(inv, hosts), end="")
        else:
            print(json.dumps(list_data(inv, hosts), indent=2))
    except KeyError:
        raise Exit(f"error: no host {host!r} in the inventory", code=2) from None
    except RolloutError as exc:
        raise Exit(f"error: {exc}", code=int(exc.exit_code)) from None


# -- the lab ---------------------------------------------------------------------------------


@command(help={"hosts": "Number of lab hosts (default 3)"})  # fmt: skip
def lab_up(c: Any, hosts: int = 3) -> None:
    """Start the local lab: N sshd + Elixir release hosts; writes inventory/lab.yml."""
    from rollout_lab import cli

    code = cli.cmd_up(int(hosts))
    if code:
        raise Exit(code=code)


@command(help={"purge": "Also delete the lab directory"})  # fmt: skip
def lab_down(c: Any, purge: bool = False) -> None:
    """Stop exactly the lab processes lab.up started (by pid)."""
    from rollout_lab import cli

    code = cli.cmd_down(purge)
    if code:
        raise Exit(code=code)


@command()  # fmt: skip
def lab_status(c: Any) -> None:
    """Show each lab host: sshd, node, console."""
    from rollout_lab import cli

    code = cli.cmd_status()
    if code:
        raise Exit(code=code)


lab = Collection("lab")
lab.add_task(lab_up, name="up", default=False)
lab.add_task(lab_down, name="down")
lab.add_task(lab_status, name="status")

ledger_tasks = Collection("ledger")
ledger_tasks.add_task(ledger_copy, name="copy")

ns = Collection()
for t in (deploy, plan, rollback, monitor, status, check, backup, restore, backups, restart,
          advance, pause, resume, adopt, approve, history, report, unlock, runbook,
          inventory_):  # fmt: skip
    ns.add_task(t)
ns.add_collection(lab)
ns.add_collection(ledger_tasks)
