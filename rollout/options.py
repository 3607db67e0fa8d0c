"""The options the tasks share, declared once: each flag, its help and short flag, its group.

A task names the groups it takes (``@command(TARGET, OUTPUT, SSH, ...)`` in :mod:`rollout.cli`)
and keeps only its own options in its signature, the way Fabric declares its core flags once
(``Fab.core_args``) instead of in every task. The values arrive as one typed :class:`Flags`,
and :meth:`Flags.options` is the one place they become the engine's
:class:`~rollout.commands.context.Options`.

Short flags are few and mean the same in every task (``-h`` stays Invoke's ``--help``):

====  ================  =====================================================
 -i   --inventory       the inventory (as in Ansible)
 -p   --playbook        the playbook
 -l   --limit           the host pattern (as in Ansible)
 -y   --yes             do not ask for confirmation
 -j   --json            JSON lines
====  ================  =====================================================

No other option has a short flag (``auto_shortflags=False`` everywhere).

To add a shared option: one field in :class:`Flags` (``name: type = flag("help")``) and its
name in a group below; read it in :meth:`Flags.options`. To add it to a task, name its group (or
the single flag) in the task's ``@command(...)``. docs/architecture.md says the same.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .commands.context import Options

#: Each short flag and the option it stands for, in every task.
SHORT_FLAGS: dict[str, str] = {
    "i": "inventory",
    "p": "playbook",
    "l": "limit",
    "y": "yes",
    "j": "json",
}
_SHORT = {name: short for short, name in SHORT_FLAGS.items()}


def flag(help: str, default: Any = None) -> Any:
    """A :class:`Flags` field: its default and its ``--help`` text."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Flags:
    """Every shared option's value in one invocation (the default where the task lacks it)."""

    inventory: str | None = flag(
        "Ansible-style inventory file (YAML or INI). Default: inventory/lab.yml"
    )
    playbook: str | None = flag("Rollout playbook. Default: playbooks/otp_refactor.yml")
    limit: str | None = flag("Host pattern: name, group, 'a,b', 'group:!x', 'group:&y', globs")
    yes: bool = flag(
        "Do not ask for confirmation (a high-risk phase asks on a terminal, "
        "and refuses without one)",
        False,
    )
    json: bool = flag("Print JSON lines (one event per line) instead of text", False)
    ledger: str | None = flag(
        "Ledger: a file, or a postgresql://USER@HOST:PORT/DB URI (docs/ledger.md)."
        " Default: $ROLLOUT_LEDGER or .rollout/ledger.db"
    )
    accept_new_host_keys: bool = flag(
        "Pin unknown host keys on first contact (like OpenSSH "
        "accept-new); changed keys are still refused",
        False,
    )
    ssh_config: str | None = flag(
        "OpenSSH client config to resolve hosts through (HostName, Port, User, "
        "IdentityFile, ProxyJump); 'none' for none. Default: $ROLLOUT_SSH_CONFIG, else "
        "~/.ssh/config if it exists"
    )
    vault_password_file: str | None = flag(
        "File holding the Ansible Vault password for vault-encrypted vars "
        "files and !vault values. Default: $ANSIBLE_VAULT_PASSWORD_FILE"
    )
    lock_timeout: str | None = flag(
        "Wait up to this long (e.g. 30s, 5m) for another run's lock; default: fail at once"
    )
    skip_checks: bool = flag(
        "Deploy without running the readiness checklist (recorded in the ledger)", False
    )
    source: str | None = flag(
        "The service's source tree for the checklist's scans (default: the playbook's "
        "checks.source_root)"
    )
    junit: str | None = flag("Also write the checklist's results as JUnit XML to this file")
    soak: str | None = flag(
        "Override the phase's soak duration (e.g. 30s, 10m) for demos and tests"
    )
    interval: str | None = flag("Override the health poll interval (e.g. 2s)")
    give_up_after: str | None = flag(
        "Stop retrying hosts whose rollback does not verify after this long, and exit 6 "
        "(e.g. 10s, 2m); default 60s, 30s for --emergency"
    )
    #: The options this task declares (``yes`` defaults to True where a task has no --yes).
    declared: frozenset[str] = field(default=frozenset(), compare=False)

    @classmethod
    def of(cls, given: Mapping[str, Any], declared: frozenset[str]) -> Flags:
        """The flags from a task's parsed arguments; those it does not declare keep defaults."""
        return cls(**{k: v for k, v in given.items() if k in declared}, declared=declared)

    def options(self) -> Options:
        """The one parse point: these flags as the engine's ``Options`` (durations parsed)."""
        from .commands.context import DEFAULT_INVENTORY, Options
        from .database import redact_argv
        from .resources import default_playbook

        return Options(
            inventory=self.inventory or DEFAULT_INVENTORY,
            playbook=self.playbook or default_playbook(),
            limit=self.limit,
            # a task without --yes (plan, status, ...) never asks
            yes=bool(self.yes) if "yes" in self.declared else True,
            ledger=self.ledger,
            accept_new_host_keys=bool(self.accept_new_host_keys),
            lock_timeout=duration(self.lock_timeout, "--lock-timeout") or 0.0,
            retry_deadline=duration(self.give_up_after, "--give-up-after"),
            soak=duration(self.soak, "--soak"),
            interval=duration(self.interval, "--interval"),
            skip_checks=bool(self.skip_checks),
            source=self.source,
            junit=self.junit,
            ssh_config=self.ssh_config,
            vault_password_file=self.vault_password_file,
            argv=redact_argv(sys.argv[1:]),
        )


def duration(value: str | None, option: str) -> float | None:
    """``value`` (e.g. ``30s``) in seconds; None when not given. ``option`` names it in errors."""
    from .errors import SourceLocation
    from .yamlsrc import parse_duration

    return None if value in (None, "") else parse_duration(value, SourceLocation(option))


@dataclass(frozen=True)
class Group:
    """Named shared options a task takes together (a task's ``help={}`` may reword one)."""

    name: str
    flags: tuple[str, ...]

    def __post_init__(self) -> None:
        unknown = set(self.flags) - set(FIELDS)
        if unknown:
            raise ValueError(f"group {self.name}: no such field in Flags: {sorted(unknown)}")


FIELDS: dict[str, dataclasses.Field[Any]] = {
    f.name: f for f in dataclasses.fields(Flags) if f.name != "declared"
}


def one(name: str) -> Group:
    """A group of a single shared option, for a task that takes only part of a group."""
    return Group(name, (name,))


def short_flag(name: str) -> str | None:
    """The option's short flag, if it has one."""
    return _SHORT.get(name)


def help_text(name: str) -> str:
    """The shared option's ``--help`` text."""
    return str(FIELDS[name].metadata["help"])


# -- the groups ---------------------------------------------------------------------------------

#: What to act on: the inventory (and how to decrypt it), the playbook, the ledger.
TARGET = Group("target", ("inventory", "playbook", "ledger", "vault_password_file"))
#: Which hosts of the inventory.
LIMIT = one("limit")
#: How to print.
OUTPUT = one("json")
#: How to reach the hosts.
SSH = Group("ssh", ("accept_new_host_keys", "ssh_config"))
#: Waiting for another run's lock.
LOCK = one("lock_timeout")
#: Asking before a risky change.
CONFIRM = one("yes")
#: The readiness checklist before a deploy (SCANS: the checklist's inputs and outputs).
SCANS = Group("scans", ("source", "junit"))
CHECKS = Group("checks", ("skip_checks", *SCANS.flags))
#: Overriding the soak.
SOAK = Group("soak", ("soak", "interval"))
INTERVAL = one("interval")
#: How long a rollback retries.
RETRY = one("give_up_after")

#: What every engine task takes: the target, the output and the SSH options.
BASE = (TARGET, OUTPUT, SSH)
