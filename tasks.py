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
    "ledger": "Ledger file. Default: $ROLLOUT_LEDGER or .rollout/ledger.db",
    "accept_new_host_keys": "Pin unknown host keys on first contact (like OpenSSH "
    "accept-new); changed keys are still refused",
    "lock_timeout": "Wait up to this long (e.g. 30s, 5m) for another run's lock; "
    "default: fail at once",
}


def _help(*skip: str, **extra: str) -> dict[str, str]:
    """Help for the common options (minus ``skip``) and the task's own."""
    return {**{k: v for k, v in COMMON_HELP.items() if k not in skip}, **extra}


def _options(
    argv_name: str,
    inventory: str | None,
    playbook: str | None,
    limit: str | None,
    yes: bool,
    ledger: str | None,
    accept_new_host_keys: bool,
    lock_timeout: str | None,
) -> Options:
    from rollout.commands import DEFAULT_INVENTORY, DEFAULT_PLAYBOOK, Options
    from rollout.errors import SourceLocation
    from rollout.yamlsrc import parse_duration

    wait = 0.0
    if lock_timeout:
        wait = parse_duration(lock_timeout, SourceLocation("--lock-timeout"))
    return Options(
        inventory=inventory or DEFAULT_INVENTORY,
        playbook=playbook or DEFAULT_PLAYBOOK,
        limit=limit,
        yes=yes,
        ledger=ledger,
        accept_new_host_keys=accept_new_host_keys,
        lock_timeout=wait,
        argv=tuple(sys.argv[1:]),
    )


def _confirm() -> Callable[[str], bool] | None:
    if not sys.stdin.isatty():
        return None

    def ask(question: str) -> bool:
        answer = input(f"{question} Type 'yes' to continue: ")
        return answer.strip().lower() == "yes"

    return ask


@contextmanager
def _engine(as_json: bool, **kwargs: Any) -> Iterator[Context]:
    """Load the context and turn engine errors into ``invoke.Exit`` with stable codes."""
    from rollout.commands import load_context
    from rollout.errors import RolloutError
    from rollout.report import Reporter

    reporter = Reporter(as_json=as_json)
    try:
        ctx = load_context(_options(**kwargs), reporter, confirm=_confirm())
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


def _common(
    c: Any,
    inventory: str | None,
    playbook: str | None,
    limit: str | None,
    yes: bool,
    ledger: str | None,
    accept_new_host_keys: bool,
    lock_timeout: str | None,
    name: str,
) -> dict[str, Any]:
    return dict(
        argv_name=name,
        inventory=inventory,
        playbook=playbook,
        limit=limit,
        yes=yes,
        ledger=ledger,
        accept_new_host_keys=accept_new_host_keys,
        lock_timeout=lock_timeout,
    )


@task(help=_help(phase="Phase number to deploy (1..N)", force="Allow skipping phases forward"))
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
    accept_new_host_keys: bool = False,
    lock_timeout: str | None = None,
) -> None:
    """Deploy a phase: read every host, show the diff, apply its full flag state, verify."""
    from rollout import commands

    with _engine(
        json,
        **_common(
            c, inventory, playbook, limit, yes, ledger, accept_new_host_keys, lock_timeout, "deploy"
        ),
    ) as ctx:
        number = commands.check_phase_arg(phase)
        assert number is not None
        commands.deploy(ctx, number, force=force)


@task(help=_help("yes", phase="Phase number to plan (1..N)", force="Allow skipping phases forward"))
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
    lock_timeout: str | None = None,
) -> None:
    """Show what `deploy --phase N` would change on each host, without changing anything."""
    from rollout import commands

    with _engine(
        json,
        **_common(
            c, inventory, playbook, limit, True, ledger, accept_new_host_keys, lock_timeout, "plan"
        ),
    ) as ctx:
        number = commands.check_phase_arg(phase)
        assert number is not None
        commands.make_plan(ctx, number, force=force)


@task(
    help=_help(
        to="Phase to roll back to (default: the one before the recorded phase)",
        reason="Why; recorded in the ledger and the notifications",
        force="Allow a 'rollback' to a phase ahead of the recorded one",
    )
)
def rollback(
    c: Any,
    to: str | None = None,
    reason: str | None = None,
    inventory: str | None = None,
    playbook: str | None = None,
    limit: str | None = None,
    yes: bool = False,
    json: bool = False,
    ledger: str | None = None,
    force: bool = False,
    accept_new_host_keys: bool = False,
    lock_timeout: str | None = None,
) -> None:
    """Roll back: converge every host to an earlier phase's FULL flag state, verified."""
    from rollout import commands

    with _engine(
        json,
        **_common(
            c,
            inventory,
            playbook,
            limit,
            yes,
            ledger,
            accept_new_host_keys,
            lock_timeout,
            "rollback",
        ),
    ) as ctx:
        commands.rollback(ctx, commands.check_phase_arg(to, "--to"), reason=reason, force=force)


@task(help=_help("yes", "lock_timeout"))
def status(
    c: Any,
    inventory: str | None = None,
    playbook: str | None = None,
    limit: str | None = None,
    json: bool = False,
    ledger: str | None = None,
    accept_new_host_keys: bool = False,
) -> None:
    """Show each host's flags, the phase they match (or drift), and the recorded phase."""
    from rollout import commands
    from rollout.report import render_status

    with _engine(
        json,
        **_common(
            c, inventory, playbook, limit, True, ledger, accept_new_host_keys, None, "status"
        ),
    ) as ctx:
        report = commands.status(ctx)
        print(render_status(report, ctx.playbook, as_json=json), flush=True)
        if any(h.error for h in report.hosts):
            from rollout.errors import ExitCode

            raise Exit(code=int(ExitCode.UNREACHABLE))


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

ns = Collection()
for t in (deploy, plan, rollback, status):
    ns.add_task(t)
ns.add_collection(lab)
