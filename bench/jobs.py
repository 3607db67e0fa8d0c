"""The jobs the suite times, and the remote commands every contender runs for them.

A job is what an operator asks for: deploy a phase with read-back, roll back, read status.
The tool does it through ``invoke``; the raw OpenSSH fan-out and ansible-playbook do the same
job by running *the same remote commands*: the tool's own console calls, rendered from
``templates/console`` by :mod:`rollout.console` and wrapped by
:func:`rollout.transport.base.remote_command` exactly as the tool wraps them. The tool sends
the console body on stdin; the others carry it in a here-document of the command line, which
the remote shell turns into the same stdin.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from rollout.consolecode import MARKER, RPC_SCRIPT, encode_payload, render
from rollout.erlcall import CONSOLE_FUNCTION
from rollout.models import Host, Playbook
from rollout.transport.base import remote_command

#: Ends every here-document; never appears in a console body (checked).
HEREDOC_TAG = "ROLLOUT_BENCH_EOF"
#: Stand for the host's ``release_bin`` and ``restart_command`` in a command until they are
#: filled in per host (each placeholder is named after its inventory variable).
BIN = "@release_bin@"
RESTART = "@restart_command@"
PLACEHOLDER = re.compile(r"@(release_bin|restart_command)@")
#: The erl_call floor's remote script: the environment lines, then the tool's own fixed
#: console function (rollout.erlcall: node, cookie file, erl_call under its own deadline)
#: with the Erlang expressions on stdin; ``$0`` is release_bin, ``$1`` erl_call's deadline.
ERL_CALL_SCRIPT = (
    'while IFS= read -r l && [ -n "$l" ]; do export "$l"; done\ncm=erl_call ct=$1\n'
    + CONSOLE_FUNCTION
    + "con\n"
)
#: What starts an accepted erl_call reply line (the floor checks for one per console step).
ERL_CALL_OK = "{ok, {rollout_"


class StepKind(Enum):
    READ = "read"
    APPLY = "apply"
    HEALTH = "health"
    RESTART = "restart"  # the host's restart_command; prints no console result

    @property
    def console(self) -> bool:
        return self is not StepKind.RESTART


@dataclass(frozen=True)
class Step:
    """One console call on every host: read the flags, or apply a phase's full state."""

    kind: StepKind
    phase: int | None = None  # for APPLY: the phase whose full state is written

    def body(self, playbook: Playbook, path: str = "rpc") -> str:
        """The console code for this step, as the tool renders it for ``path``."""
        if self.kind is StepKind.READ:
            name, payload = "read_flags", encode_payload(playbook.flags)
        elif self.kind is StepKind.HEALTH:
            metrics = tuple(t.metric for t in playbook.health.thresholds)
            name, payload = "read_health", encode_payload(playbook.flags, metrics=metrics)
        else:
            assert self.phase is not None
            state = playbook.phase(self.phase).state
            name, payload = "apply_flags", encode_payload(playbook.flags, state)
        if path == "erl_call":
            return render(f"console/erl/{name}.erl.j2", payload=payload)
        return render(f"console/{name}.exs.j2", marker=MARKER, payload=payload)


@dataclass(frozen=True)
class Job:
    """One operator job: the tool's command line and the equivalent remote steps."""

    name: str
    title: str
    tool_args: tuple[str, ...]  # after `invoke`, before `--inventory`
    steps: tuple[Step, ...]
    start_phase: int  # every host holds this phase's full state before a run
    ledger: str  # the ledger template the tool starts from: "empty", "phase1", "phase2"


def deploy_args(phase: int) -> tuple[str, ...]:
    """``invoke`` arguments of a deploy: no soak wait, no readiness checklist (see the title)."""
    return ("deploy", "--phase", str(phase), "--yes", "--no-wait", "--skip-checks")


def make_jobs(emergency: bool) -> tuple[Job, ...]:
    """Deploy (phase 0 -> 1), rollback (2 -> 1) and status (at 1).

    ``emergency``: whether ``invoke rollback --emergency`` exists; without it the rollback
    job is ``rollback --to 1`` and says so in its title.
    """
    if emergency:
        # Apply the emergency phase, restart, wait for the console, re-apply and verify.
        rollback_args: tuple[str, ...] = ("rollback", "--emergency", "--yes")
        rollback_title = "emergency rollback to phase 1 (apply, restart, read, re-apply)"
        rollback_steps: tuple[Step, ...] = (
            Step(StepKind.APPLY, 1),
            Step(StepKind.RESTART),
            Step(StepKind.READ),
            Step(StepKind.APPLY, 1),
        )
    else:
        rollback_args = ("rollback", "--to", "1", "--yes")
        rollback_title = "rollback --to 1 (this checkout has no --emergency)"
        rollback_steps = (Step(StepKind.APPLY, 1),)
    return (
        Job(
            "deploy",
            "deploy phase 1 with read-back (readiness checklist skipped)",
            deploy_args(1),
            (Step(StepKind.READ), Step(StepKind.APPLY, 1)),
            start_phase=0,
            ledger="empty",
        ),
        Job(
            "rollback",
            rollback_title,
            rollback_args,
            rollback_steps,
            start_phase=2,
            ledger="phase2",
        ),
        Job(
            "status",
            "status (read every host)",
            ("status",),
            (Step(StepKind.READ),),
            start_phase=1,
            ledger="phase1",
        ),
    )


def step_command(
    host: Host | None, playbook: Playbook, step: Step, timeout: float, path: str = "rpc"
) -> str:
    """One step as a shell command with its stdin in a here-document.

    With ``host`` None the host's paths stay placeholders (:data:`BIN`, :data:`RESTART`) for
    callers that fill them in per host (bash variables, Ansible host vars). ``path``: the
    console path, ``rpc`` (``bin/<release> rpc``) or ``erl_call`` (:data:`ERL_CALL_SCRIPT`).
    """
    if step.kind is StepKind.RESTART:
        restart = (host.restart_command or "") if host is not None else RESTART
        return remote_command(["sh", "-c", restart], timeout) + "\n"
    body = step.body(playbook, path)
    if HEREDOC_TAG in body:
        raise ValueError(f"the console body contains {HEREDOC_TAG}")
    env = ""
    if host is not None:
        env = "".join(f"{name}={value.reveal()}\n" for name, value in host.release_env)
    release_bin = host.release_bin if host is not None else BIN
    if path == "erl_call":
        inner = str(max(1, int(timeout) - 1))
        command = remote_command(["sh", "-c", ERL_CALL_SCRIPT, release_bin, inner], timeout)
    else:
        command = remote_command(["sh", "-c", RPC_SCRIPT, release_bin], timeout)
    return f"{command} <<'{HEREDOC_TAG}'\n{env}\n{body}{HEREDOC_TAG}\n"


def script(
    host: Host | None, playbook: Playbook, steps: Sequence[Step], timeout: float,
    path: str = "rpc",
) -> str:  # fmt: skip
    """Every step of a job for one host, in one remote shell that stops at the first failure."""
    return "set -e\n" + "".join(step_command(host, playbook, s, timeout, path) for s in steps)


def console_steps(job: Job) -> int:
    """How many console results a job prints per host when it succeeds."""
    return sum(1 for step in job.steps if step.kind.console)


def result_lines(output: str) -> int:
    """How many console results an output holds (one per console step on success)."""
    return sum(1 for line in output.splitlines() if line.startswith((MARKER + " ", ERL_CALL_OK)))
