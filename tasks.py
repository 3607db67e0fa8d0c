"""Invoke tasks: the operator's commands. Thin: parse options, call the engine, map errors.

Run ``invoke --list`` for the tasks and ``invoke --help TASK`` for each one's options.
Exit codes are stable (README.md, "Exit codes"); the engine imports lazily so that
``--list`` and ``--help`` stay fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from invoke.collection import Collection
from invoke.exceptions import Exit
from invoke.tasks import task

if TYPE_CHECKING:
    from rollout.commands import Context, Options

COMMON_HELP = {
    "inventory": "Ansible-style inventory file (YAML or INI). Default: inventory/lab.yml",
    "playbook": "Rollout playbook. Default: playbooks/otp_refactor.yml",
    "limit": "Host pattern: name, group, 'a,b', 'group:!x', 'group:&y', globs",
    "yes": "Do not ask for confirmation (a high-risk phase asks on a terminal, "
    "and refuses without one)",
    "json": "Print JSON lines (one event per line) instead of text",
    "ledger": "Ledger: a file, or a postgresql://USER@HOST:PORT/DB URI (docs/ledger.md)."
    " Default: $ROLLOUT_LEDGER or .rollout/ledger.db",
    "accept_new_host_keys": "Pin unknown host keys on first contact (like OpenSSH "
    "accept-new); changed keys are still refused",
    "skip_checks": "Deploy without running the readiness checklist (recorded in the ledger)",
    "source": "The service's source tree for the checklist's scans (default: the playbook's "
    "checks.source_root)",
    "junit": "Also write the checklist's results as JUnit XML to this file",
    "soak": "Override the phase's soak duration (e.g. 30s, 10m) for demos and tests",
    "interval": "Override the health poll interval (e.g. 2s)",
    "lock_timeout": "Wait up to this long (e.g. 30s, 5m) for another run's lock; "
    "default: fail at once",
    "ssh_config": "OpenSSH client config to resolve hosts through (HostName, Port, User, "
    "IdentityFile, ProxyJump); 'none' for none. Default: $ROLLOUT_SSH_CONFIG, else "
    "~/.ssh/config if it exists",
    "vault_password_file": "File holding the Ansible Vault password for vault-encrypted vars "
    "files and !vault values. Default: $ANSIBLE_VAULT_PASSWORD_FILE",
}
#: For the tasks that can roll back (deploy's undo, a soak's automatic rollback, rollback).
RETRY_HELP = (
    "Stop retrying hosts whose rollback does not verify after this long, and exit 6 "
    "(e.g. 10s, 2m); default 60s, 30s for --emergency"
)

#: For report and advance (the page: rollout/htmlreport.py, docs/report-page.md).
HTML_HELP = "Write the run's evidence as one self-contained HTML page to this file"


_CHECK_OPTS = ("skip_checks", "source", "junit")
_LEDGER_ONLY = ("yes", "limit", "soak", "interval", "lock_timeout", *_CHECK_OPTS)


def _help(*skip: str, **extra: str) -> dict[str, str]:
    """Help for the common options (minus ``skip``) and the task's own."""
    return {**{k: v for k, v in COMMON_HELP.items() if k not in skip}, **extra}


_OPTION_KEYS = (
    "inventory", "playbook", "limit", "yes", "ledger", "accept_new_host_keys", "lock_timeout",
    "soak", "interval", "wait", "skip_checks", "source", "junit", "give_up_after", "ssh_config",
    "vault_password_file",
)  # fmt: skip


def _duration(value: str | None, option: str) -> float | None:
    from rollout.errors import SourceLocation
    from rollout.yamlsrc import parse_duration

    return None if value in (None, "") else parse_duration(value, SourceLocation(option))


def _options(given: dict[str, Any]) -> Options:
    """Options from a task's arguments; unknown names are the task's own and ignored here."""
    from rollout.commands import DEFAULT_INVENTORY, Options
    from rollout.database import redact_argv
    from rollout.resources import default_playbook

    opts = {k: given[k] for k in _OPTION_KEYS if k in given}
    return Options(
        inventory=opts.get("inventory") or DEFAULT_INVENTORY,
        playbook=opts.get("playbook") or default_playbook(),
        limit=opts.get("limit"),
        yes=bool(opts.get("yes", True)),
        ledger=opts.get("ledger"),
        accept_new_host_keys=bool(opts.get("accept_new_host_keys", False)),
        lock_timeout=_duration(opts.get("lock_timeout"), "--lock-timeout") or 0.0,
        retry_deadline=_duration(opts.get("give_up_after"), "--give-up-after"),
        soak=_duration(opts.get("soak"), "--soak"),
        interval=_duration(opts.get("interval"), "--interval"),
        wait=bool(opts.get("wait", True)),
        skip_checks=bool(opts.get("skip_checks", False)),
        source=opts.get("source"),
        junit=opts.get("junit"),
        ssh_config=opts.get("ssh_config"),
        vault_password_file=opts.get("vault_password_file"),
        argv=redact_argv(sys.argv[1:]),
    )


def _confirm() -> Callable[[str], bool] | None:
    if not sys.stdin.isatty():
        return None

    def ask(question: str) -> bool:
        answer = input(f"{question} Type 'yes' to continue: ")
        return answer.strip().lower() == "yes"

    return ask


@contextmanager
def _engine(as_json: bool, given: dict[str, Any]) -> Iterator[Context]:
    """Load the context and turn engine errors into ``invoke.Exit`` with stable codes."""
    from rollout.commands import load_context
    from rollout.errors import RolloutError
    from rollout.report import Reporter

    reporter = Reporter(as_json=as_json)
    try:
        ctx = load_context(_options(given), reporter, confirm=_confirm())
        ctx.cancel.install()
        yield ctx
    except RolloutError as exc:
        if as_json:
            import json

            print(
                json.dumps(
                    {
                        "event": "error",
                        "ok": False,
                        "exit_code": int(exc.exit_code),
                        "error": type(exc).__name__,
                        "message": exc.message,
                        "hint": exc.hint,
                    }
                ),
                flush=True,
            )
        raise Exit(f"error: {exc}", code=int(exc.exit_code)) from None
    except KeyboardInterrupt:
        raise Exit("interrupted", code=130) from None


@task(
    help=_help(
        phase="Phase number to deploy (1..N)",
        force="Allow skipping phases forward",
        wait="Wait out the soak, watching health (default); --no-wait returns after applying",
        give_up_after=RETRY_HELP,
    )
)
def deploy(
    c: Any,
    phase: str,
    inventory: str | None = None,
    playbook: str | None = None,
    limit: str | None = None,
    yes: bool = False,
    json: bool = False,
    ledger: str | None = None,
    force: bool = False,
    wait: bool = True,
    soak: str | None = None,
    interval: str | None = None,
    skip_checks: bool = False,
    source: str | None = None,
    junit: str | None = None,
    accept_new_host_keys: bool = False,
    ssh_config: str | None = None,
    vault_password_file: str | None = None,
    lock_timeout: str | None = None,
    give_up_after: str | None = None,
) -> None:
    """Deploy a phase: read every host, show the diff, apply its full flag state, verify, soak."""
    from rollout import commands

    with _engine(json, locals()) as ctx:
        commands.deploy(ctx, commands.require_phase(phase), force=force)


@task(help=_help("yes", "soak", "interval", *_CHECK_OPTS, phase="Phase to plan (1..N)",
                 force="Allow skipping phases forward"))  # fmt: skip
def plan(
    c: Any,
    phase: str,
    inventory: str | None = None,
    playbook: str | None = None,
    limit: str | None = None,
    json: bool = False,
    ledger: str | None = None,
    force: bool = False,
    accept_new_host_keys: bool = False,
    ssh_config: str | None = None,
    vault_password_file: str | None = None,
    lock_timeout: str | None = None,
) -> None:
    """Show what `deploy --phase N` would change on each host, without changing anything."""
    from rollout import commands

    with _engine(json, locals()) as ctx:
        commands.make_plan(ctx, commands.require_phase(phase), force=force)


@task(
    help=_help(
        "soak",
        "interval",
        *_CHECK_OPTS,
        to="Phase to roll back to (default: the one before the recorded phase)",
        reason="Why; recorded in the ledger and the notifications",
        force="Allow a 'rollback' to a phase ahead of the recorded one",
        give_up_after=RETRY_HELP,
        emergency="Emergency: no checks or soak; take over the lock; every reachable host to "
        "the emergency phase (playbook, default 1) in parallel; restart; verify",
    )
)
def rollback(
    c: Any,
    to: str | None = None,
    reason: str | None = None,
    emergency: bool = False,
    inventory: str | None = None,
    playbook: str | None = None,
    limit: str | None = None,
    yes: bool = False,
    json: bool = False,
    ledger: str | None = None,
    force: bool = False,
    accept_new_host_keys: bool = False,
    ssh_config: str | None = None,
    vault_password_file: str | None = None,
    lock_timeout: str | None = None,
    give_up_after: str | None = None,
) -> None:
    """Roll back: converge every host to an earlier phase's FULL flag state, verified."""
    from rollout import commands

    with _engine(json, locals()) as ctx:
        number = commands.check_phase_arg(to, "--to")
        if emergency:
            commands.emergency(ctx, number, reason=reason)
        else:
            commands.rollback(ctx, number, reason=reason, force=force)


@task(help=_help("yes", "limit", *_CHECK_OPTS, give_up_after=RETRY_HELP))
def monitor(
    c: Any,
    inventory: str | None = None,
    playbook: str | None = None,
    json: bool = False,
    ledger: str | None = None,
    soak: str | None = None,
    interval: str | None = None,
    accept_new_host_keys: bool = False,
    ssh_config: str | None = None,
    vault_password_file: str | None = None,
    lock_timeout: str | None = None,
    give_up_after: str | None = None,
) -> None:
    """Start or resume the recorded phase's soak; roll back automatically on a breach."""
    from rollout import commands

    with _engine(json, locals()) as ctx:
        commands.monitor(ctx)


@task(help=_help("yes", "lock_timeout", "soak", "interval", *_CHECK_OPTS))
def status(
    c: Any,
    inventory: str | None = None,
    playbook: str | None = None,
    limit: str | None = None,
    json: bool = False,
    ledger: str | None = None,
    accept_new_host_keys: bool = False,
    ssh_config: str | None = None,
    vault_password_file: str | None = None,
) -> None:
    """Show each host's flags, the phase they match (or drift), and the recorded phase."""
    from rollout import commands
    from rollout.errors import HostsUnreachable
    from rollout.report import render_status

    with _engine(json, locals()) as ctx:
        report = commands.status(ctx)
        print(render_status(report, ctx.playbook, as_json=json), flush=True)
        down = [h.host for h in report.hosts if h.error]
        if down:
            raise HostsUnreachable(f"{len(down)} host(s) could not be read: {', '.join(down)}")


@task(help=_help("yes", "skip_checks", "soak", "interval"))
def check(
    c: Any,
    source: str | None = None,
    junit: str | None = None,
    inventory: str | None = None,
    playbook: str | None = None,
    limit: str | None = None,
    json: bool = False,
    ledger: str | None = None,
    accept_new_host_keys: bool = False,
    ssh_config: str | None = None,
    vault_password_file: str | None = None,
    lock_timeout: str | None = None,
) -> None:
    """Run the readiness checklist: source scans, commands, metrics, reachability; N/M passed."""
    import sys as _sys

    from rollout import commands
    from rollout.checks import render_checks
    from rollout.errors import Refused

    with _engine(json, locals()) as ctx:
        report = commands.check(ctx)
        if not json:
            print(render_checks(report, encoding=_sys.stdout.encoding), flush=True)
        if not report.ok:
            passed, total = report.overall
            raise Refused(
                f"readiness checks failed: {passed}/{total} passed",
                hint="fix the failing checks listed above",
            )


@task(help=_help("yes", "soak", "interval", *_CHECK_OPTS))
def backup(
    c: Any,
    inventory: str | None = None,
    playbook: str | None = None,
    limit: str | None = None,
    json: bool = False,
    ledger: str | None = None,
    accept_new_host_keys: bool = False,
    ssh_config: str | None = None,
    vault_password_file: str | None = None,
    lock_timeout: str | None = None,
) -> None:
    """Back up every host's flags and state paths to backups/<inventory>/<id>/ (checksummed)."""
    from rollout import commands

    with _engine(json, locals()) as ctx:
        saved = commands.backup(ctx)
        ctx.emit(_final_event(f"backup {saved.id} complete: {len(saved.hosts)} host(s)",
                              "backup", saved.recorded_phase))  # fmt: skip


@task(
    help=_help(
        "yes", "soak", "interval", *_CHECK_OPTS,
        backup="The backup id (see `invoke backups`)",
        state="Also restore the state files (not only the flags)",
    )
)  # fmt: skip
def restore(
    c: Any,
    backup: str,
    state: bool = False,
    inventory: str | None = None,
    playbook: str | None = None,
    limit: str | None = None,
    json: bool = False,
    ledger: str | None = None,
    accept_new_host_keys: bool = False,
    ssh_config: str | None = None,
    vault_password_file: str | None = None,
    lock_timeout: str | None = None,
) -> None:
    """Put a backup's flags (and with --state its files) back on every host; verified."""
    from rollout import commands

    with _engine(json, locals()) as ctx:
        commands.restore(ctx, backup, state=state)


@task(help=_help(*_LEDGER_ONLY))
def backups(
    c: Any,
    inventory: str | None = None,
    playbook: str | None = None,
    json: bool = False,
    ledger: str | None = None,
    accept_new_host_keys: bool = False,
    ssh_config: str | None = None,
    vault_password_file: str | None = None,
) -> None:
    """List the inventory's backups, newest first, and whether each is complete."""
    import json as _json

    from rollout.backup import backups_root, list_backups

    with _engine(json, locals()) as ctx:
        for info in reversed(list_backups(backups_root(), ctx.inventory.name)):
            if json:
                print(_json.dumps({"event": "backup", "id": info.id, "complete": info.complete,
                                   "recorded_phase": info.recorded_phase, "who": info.who,
                                   "hosts": list(info.hosts)}))  # fmt: skip
            else:
                state = "complete" if info.complete else f"INCOMPLETE ({info.problem})"
                print(f"{info.id}  phase {info.recorded_phase}  {len(info.hosts)} host(s)  "
                      f"by {info.who}  {state}")  # fmt: skip


@task(
    help=_help(
        "yes", "soak", "interval", *_CHECK_OPTS,
        service="Service to restart where a host has no restart_command (default: the "
        "inventory's `service`, else foundation)",
        batch="Hosts restarted at once (default 1)",
        wait_timeout="Seconds to wait for each host's console after its restart (default 60)",
    )
)  # fmt: skip
def restart(
    c: Any,
    service: str | None = None,
    batch: int = 1,
    wait_timeout: int = 60,
    inventory: str | None = None,
    playbook: str | None = None,
    limit: str | None = None,
    json: bool = False,
    ledger: str | None = None,
    accept_new_host_keys: bool = False,
    ssh_config: str | None = None,
    vault_password_file: str | None = None,
    lock_timeout: str | None = None,
) -> None:
    """Rolling restart: a batch at a time, wait for the console, re-apply the phase, verify."""
    from rollout import commands

    with _engine(json, locals()) as ctx:
        commands.restart(ctx, service=service, batch=int(batch), wait_timeout=float(wait_timeout))


@task(help={"playbook": COMMON_HELP["playbook"],
            "output": "Where to write (default RUNBOOK.md)",
            "check": "Do not write; exit 1 if the file is stale"})  # fmt: skip
def runbook(c: Any, playbook: str | None = None, output: str = "RUNBOOK.md",
            check: bool = False) -> None:  # fmt: skip
    """Render RUNBOOK.md (the operator's procedure) from the playbook and its template."""
    from pathlib import Path

    from rollout.errors import RolloutError
    from rollout.playbook import load_playbook
    from rollout.resources import default_playbook
    from rollout.runbook import render_runbook

    try:
        text = render_runbook(load_playbook(playbook or default_playbook()))
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


@task(
    help=_help(
        "yes",
        "limit",
        "soak",
        junit="Write the gates' results for the next phase as JUnit XML to this file",
        max_gap="Longest gap between two scheduled samples that still counts as soak (default 15m)",
        give_up_after=RETRY_HELP,
        html=HTML_HELP + " (the run this step made, else the latest; written on failure too)",
    )
)
def advance(
    c: Any,
    inventory: str | None = None,
    playbook: str | None = None,
    json: bool = False,
    ledger: str | None = None,
    interval: str | None = None,
    max_gap: str | None = None,
    source: str | None = None,
    skip_checks: bool = False,
    junit: str | None = None,
    accept_new_host_keys: bool = False,
    ssh_config: str | None = None,
    vault_password_file: str | None = None,
    lock_timeout: str | None = None,
    give_up_after: str | None = None,
    html: str | None = None,
) -> None:
    """For schedulers: one health round for the running soak, or the next phase once healthy."""
    from rollout import pipeline

    with _engine(json, locals()) as ctx, _page_after(ctx, html, json):
        gap = _duration(max_gap, "--max-gap") or pipeline.ADVANCE_MAX_GAP
        result = pipeline.advance(ctx, _gates(), max_gap=gap)
        ctx.emit(_final_event(result.message, result.outcome.value, result.phase))


def _gates() -> tuple[Any, ...]:
    """Gate checks beyond soak and approval: fresh backup and readiness checks."""
    from rollout import wiring

    return wiring.gates()


def _final_event(message: str, outcome: str, phase: int | None) -> Any:
    from rollout.events import Event, Kind

    return Event(Kind.INFO, message, ok=True, data={"outcome": outcome, "phase": phase})


@task(help=_help(*_LEDGER_ONLY, reason="Why (recorded)"))
def pause(
    c: Any,
    reason: str | None = None,
    inventory: str | None = None,
    playbook: str | None = None,
    json: bool = False,
    ledger: str | None = None,
    accept_new_host_keys: bool = False,
    ssh_config: str | None = None,
    vault_password_file: str | None = None,
) -> None:
    """Pause unattended rollouts for every controller: `advance` does nothing until resumed."""
    from rollout import commands

    with _engine(json, locals()) as ctx:
        state = commands.set_pause(ctx, True, reason)
        ctx.emit(_final_event(f"rollouts of {state.inventory} paused", "paused", state.phase))


@task(help=_help(*_LEDGER_ONLY))
def resume(
    c: Any,
    inventory: str | None = None,
    playbook: str | None = None,
    json: bool = False,
    ledger: str | None = None,
    accept_new_host_keys: bool = False,
    ssh_config: str | None = None,
    vault_password_file: str | None = None,
) -> None:
    """Resume unattended rollouts (for every controller) after a pause or a rollback."""
    from rollout import commands

    with _engine(json, locals()) as ctx:
        state = commands.set_pause(ctx, False, None)
        ctx.emit(_final_event(f"rollouts of {state.inventory} resumed", "resumed", state.phase))


@task(help=_help(*_LEDGER_ONLY))
def adopt(
    c: Any,
    inventory: str | None = None,
    playbook: str | None = None,
    json: bool = False,
    ledger: str | None = None,
    accept_new_host_keys: bool = False,
    ssh_config: str | None = None,
    vault_password_file: str | None = None,
) -> None:
    """Take the fleet's record (another controller's change) into this ledger."""
    from rollout import commands

    with _engine(json, locals()) as ctx:
        records = commands.adopt(ctx)
        state = ctx.ledger.state(ctx.inventory.name)
        ctx.emit(_final_event(f"adopted the records of {len(records)} host(s); recorded phase "
                              f"{state.phase}", "adopted", state.phase))  # fmt: skip


@task(
    help=_help(
        *_LEDGER_ONLY,
        phase="The phase being approved", note="Free text recorded with the approval",
    )
)  # fmt: skip
def approve(
    c: Any,
    phase: str,
    note: str | None = None,
    inventory: str | None = None,
    playbook: str | None = None,
    json: bool = False,
    ledger: str | None = None,
    accept_new_host_keys: bool = False,
    ssh_config: str | None = None,
    vault_password_file: str | None = None,
) -> None:
    """Record your approval for a phase whose gate requires one (`advance` waits for it)."""
    from rollout import commands

    with _engine(json, locals()) as ctx:
        number = commands.require_phase(phase)
        if not 1 <= number <= ctx.playbook.last:
            commands.bad_phase(number, ctx.playbook.last)
        ctx.ledger.approve(ctx.inventory.name, number, ctx.ledger.who, note)
        ctx.emit(_final_event(f"phase {number} approved by {ctx.ledger.who}", "approved", number))


@task(help=_help(*_LEDGER_ONLY, count="How many runs"))
def history(
    c: Any,
    count: int = 20,
    inventory: str | None = None,
    playbook: str | None = None,
    json: bool = False,
    ledger: str | None = None,
    accept_new_host_keys: bool = False,
    ssh_config: str | None = None,
    vault_password_file: str | None = None,
) -> None:
    """List the inventory's recent runs: who, when, what, and how each ended."""
    from rollout.history import render_history

    with _engine(json, locals()) as ctx:
        print(render_history(ctx.ledger.runs(ctx.inventory.name, int(count)), as_json=json))


@task(help=_help(*_LEDGER_ONLY, run="Run id (see history); default: the inventory's latest run",
                 html=HTML_HELP))  # fmt: skip
def report(
    c: Any,
    run: str | None = None,
    inventory: str | None = None,
    playbook: str | None = None,
    json: bool = False,
    ledger: str | None = None,
    accept_new_host_keys: bool = False,
    html: str | None = None,
    ssh_config: str | None = None,
    vault_password_file: str | None = None,
) -> None:
    """Show one run's timeline: steps, per-host results, every health sample and verdict."""
    from rollout.history import render_report

    with _engine(json, locals()) as ctx:
        if html:
            _write_page(ctx, run, html, json)
            return
        if run is None:
            run = _latest_run(ctx)
        record = ctx.ledger.run(run)
        print(render_report(record, ctx.ledger.events(run), ctx.ledger.intents(run),
                            as_json=json))  # fmt: skip


@task(help=_help(*_LEDGER_ONLY,
                 lock_id="The exact lock id (lk-...) or fleet lease id (fl-...), as the busy "
                 "error or status prints it",
                 force="Also remove the lock of a run that is alive on this machine"))  # fmt: skip
def unlock(
    c: Any,
    lock_id: str,
    force: bool = False,
    inventory: str | None = None,
    playbook: str | None = None,
    json: bool = False,
    ledger: str | None = None,
    accept_new_host_keys: bool = False,
    ssh_config: str | None = None,
    vault_password_file: str | None = None,
) -> None:
    """Remove a dead run's lock (lk-...) or fleet lease (fl-...); needs the exact id."""
    from rollout import commands
    from rollout.errors import Refused
    from rollout.lock import Liveness, describe

    with _engine(json, locals()) as ctx:
        if lock_id.startswith("fl-"):
            hosts = commands.clear_lease(ctx, lock_id)
            ctx.emit(_final_event(f"cleared the fleet lease {lock_id} on {len(hosts)} host(s)",
                                  "unlocked", None))  # fmt: skip
            return
        held = ctx.ledger.holder(ctx.inventory.name)
        if held is not None and held.id == lock_id and not force:
            alive = ctx.ledger.lock_liveness(held)
            if alive is Liveness.ALIVE:
                import time

                raise Refused(
                    f"refusing to unlock a live run on this machine: "
                    f"{describe(held, alive, time.time())}",
                    hint=f"let it finish, or stop it; to remove its lock anyway (it stops at its "
                    f"next change): invoke unlock {lock_id} --force",
                )
        old = ctx.ledger.unlock(ctx.inventory.name, lock_id)
        ctx.emit(
            _final_event(
                f"removed lock {old.id} of {old.who}@{old.where} pid {old.pid} ({old.command})",
                "unlocked",
                None,
            )
        )


# -- the report page (--html) -----------------------------------------------------------------


def _latest_run(ctx: Context) -> str:
    from rollout.evidence import gather

    return gather(ctx.ledger, None, ctx.inventory.name).run.id


def _write_page(ctx: Context, run: str | None, path: str, as_json: bool) -> None:
    """Render ``run`` (default: the inventory's latest) to ``path`` and say so on stdout."""
    from rollout.evidence import gather
    from rollout.htmlreport import write_html

    evidence = gather(ctx.ledger, run, ctx.inventory.name)
    out = write_html(evidence, path)
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

@task(
    help={
        "src": "The ledger to copy from (a file, or a URI)",
        "dest": "The ledger to copy into. Default: $ROLLOUT_LEDGER",
        "json": "Print the result as one JSON line",
    }
)
def ledger_copy(c: Any, src: str, dest: str | None = None, json: bool = False) -> None:
    """Copy a ledger's history (runs with their ids, events, intents, phases, approvals) into
    another, e.g. a SQLite file into the team's PostgreSQL ledger; safe to run again."""
    import os

    from rollout.errors import RolloutError, UsageError
    from rollout.ledger import open_ledger
    from rollout.ledgercopy import copy_history

    try:
        target = dest or os.environ.get("ROLLOUT_LEDGER")
        if not target:
            raise UsageError(
                "no destination ledger", hint="pass --dest postgresql://USER@HOST/DB"
            )
        with open_ledger(src) as source, open_ledger(target) as destination:
            report = copy_history(source, destination)
    except RolloutError as exc:
        raise Exit(f"error: {exc}", code=int(exc.exit_code)) from None
    if json:
        import json as _json
        from dataclasses import asdict

        print(_json.dumps({"event": "ledger.copied", "ok": True, **asdict(report)}))
    else:
        print(f"✓ {report.summary()}")


# -- the inventory, as ansible-inventory shows it ----------------------------------------------


@task(
    name="inventory",
    help={
        "inventory": COMMON_HELP["inventory"],
        "limit": COMMON_HELP["limit"],
        "ssh_config": COMMON_HELP["ssh_config"],
        "vault_password_file": COMMON_HELP["vault_password_file"],
        "list": "Print JSON: every host's resolved connection and tool variables (secrets "
        "masked) and every group (the default)",
        "graph": "Print the group tree",
        "host": "Print one host's resolved variables as JSON",
    },
)
def inventory_(
    c: Any,
    inventory: str | None = None,
    limit: str | None = None,
    ssh_config: str | None = None,
    vault_password_file: str | None = None,
    list: bool = False,
    graph: bool = False,
    host: str | None = None,
) -> None:
    """Show the inventory as rollout resolves it (ansible-inventory's --list/--graph/--host);
    connects to nothing."""
    import json

    from rollout import vault
    from rollout.commands import DEFAULT_INVENTORY
    from rollout.errors import RolloutError
    from rollout.inventory import load_inventory, select_hosts
    from rollout.invlist import graph_text, host_data, list_data
    from rollout.sshopts import client_config_path

    if sum((bool(list), bool(graph), host is not None)) > 1:
        raise Exit("error: give one of --list, --graph, --host", code=2)
    try:
        inv = load_inventory(
            inventory or DEFAULT_INVENTORY,
            ssh_config=client_config_path(ssh_config),
            vault=vault.Vault(vault.vault_password_file(vault_password_file)),
        )
        hosts = select_hosts(inv, limit)
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


@task(help={"hosts": "Number of lab hosts (default 3)"})
def lab_up(c: Any, hosts: int = 3) -> None:
    """Start the local lab: N sshd + Elixir release hosts; writes inventory/lab.yml."""
    from rollout.lab import cli

    code = cli.cmd_up(int(hosts))
    if code:
        raise Exit(code=code)


@task(help={"purge": "Also delete the lab directory"})
def lab_down(c: Any, purge: bool = False) -> None:
    """Stop exactly the lab processes lab.up started (by pid)."""
    from rollout.lab import cli

    code = cli.cmd_down(purge)
    if code:
        raise Exit(code=code)


@task()
def lab_status(c: Any) -> None:
    """Show each lab host: sshd, node, console."""
    from rollout.lab import cli

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
