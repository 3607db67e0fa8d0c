"""What every command starts from: its options and its loaded, validated inputs.

``Options`` are the flags every command shares; ``load_context`` loads and checks the
playbook, inventory and limit and opens the ledger into a ``Context`` before any host is
touched; ``load_ledger_context`` loads only the inventory and ledger (a ``LedgerContext``),
for commands that must work while the playbook is broken. It also refuses a ledger whose
records sit under the inventory's legacy key, and lists the secrets a run redacts.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backend import Backend, SSHBackend
from ..cancel import Cancel
from ..clock import SYSTEM, Clock
from ..erlcall import console_override
from ..errors import RolloutError
from ..events import Emit, Event, Kind
from ..executor import Confirm, Executor, StepReport
from ..inventory import load_inventory, select_hosts
from ..ledger import Ledger, open_ledger
from ..models import Host, Inventory, Phase, Playbook
from ..output import Redactor
from ..playbook import load_playbook
from ..sshopts import client_config_path
from ..vault import Vault, vault_password_file

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


#: Default --give-up-after: how long a rollback keeps retrying hosts that did not verify.
RETRY_WINDOW = 60.0
#: The same for an emergency rollback, which gives up sooner.
EMERGENCY_RETRY = 30.0


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
    #: The run's one clock: its events' stamps and records read its wall time; durations
    #: inside a run (soak time) come from its monotonic part, never from its wall time.
    clock: Clock = SYSTEM

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
        from ..transport.ssh import SSHTransport

        def on_pin(host: str, fingerprint: str, path: str) -> None:
            pinned.append(host)
            emit(
                Event(
                    Kind.WARNING,
                    f"pinned new host key {fingerprint} in {path}",
                    host=host,
                    data={"fingerprint": fingerprint, "known_hosts": path},
                    ts=context.clock.wall(),  # the context's clock when the key is pinned
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
        from ..restart import emergency_restarter

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
    from ..yamlsrc import read_input

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
    from ..errors import InventoryError, SourceLocation
    from ..inventory import FLEET_VAR

    raise InventoryError(
        f"the ledger holds records under {old!r}, the key older rollouts gave every inventory "
        f"named {old}.*; they may belong to this fleet or to another inventory of that name, "
        f"and this inventory ({inventory.name}) has none of its own yet",
        location=SourceLocation(inventory.path, None, FLEET_VAR),
        hint=f"set `{FLEET_VAR}: {old}` under all: vars to continue that record, or "
        f"`{FLEET_VAR}: <new name>` to start a new one",
    )
