"""Hosts and the inventory: one release host with its connection variables resolved, the
bastions on the way to it, and the fleet they form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

from .secret import Secret


class ConsoleMode(Enum):
    """``rollout_console``: how a host's console calls reach its node (rollout.erlcall)."""

    AUTO = "auto"  # erl_call where the release has it and it answers, else rpc (recorded)
    ERL_CALL = "erl_call"  # erl_call only: a host without it fails, saying so
    RPC = "rpc"  # bin/<release> rpc only


@dataclass(frozen=True)
class Host:
    """One release host from the inventory, with its connection variables resolved."""

    name: str
    address: str
    port: int = 22
    user: str | None = None
    key_file: str | None = None
    known_hosts_file: str | None = None
    release_bin: str = "/opt/foundation/bin/foundation"
    release_env: tuple[tuple[str, Secret], ...] = ()
    restart_command: str | None = None
    service: str = "foundation"
    groups: frozenset[str] = frozenset()
    state_paths: tuple[str, ...] = ()
    #: bastions to go through, first hop first (ProxyJump); never bypassed
    jumps: tuple[Jump, ...] = ()
    #: rollout_state_dir: where the host keeps its fleet record and lease ("" = the default,
    #: ``<release root>/.rollout-state`` for ``<release root>/bin/<name>``, else
    #: ``<dir of release_bin>/.rollout-state-<name>``; see rollout.fleetstate)
    rollout_state_dir: str = ""
    #: rollout_console: the console path (rollout.erlcall); auto unless the inventory says
    console: ConsoleMode = ConsoleMode.AUTO

    def __str__(self) -> str:
        return self.name

    @property
    def state_dir(self) -> str:
        if self.rollout_state_dir:
            return self.rollout_state_dir
        parent, _, name = self.release_bin.rpartition("/")
        if parent.endswith("/bin") and parent.count("/") >= 2:  # <root>/bin/<release>
            return parent.removesuffix("/bin") + "/.rollout-state"
        # another layout: beside the script, named after it, so two releases never share one
        return f"{parent}/.rollout-state-{name}"


@dataclass(frozen=True)
class Jump:
    """One bastion on the way to a host (OpenSSH's ProxyJump hop), resolved like a host."""

    name: str  # as written in ProxyJump (or the ssh_config Host alias)
    address: str
    port: int = 22
    user: str | None = None
    key_file: str | None = None

    def __str__(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.address}:{self.port}"


@dataclass(frozen=True)
class Inventory:
    path: str
    #: The fleet's identity, its key in the ledger and for backups: ``rollout_fleet`` when
    #: the inventory sets it, else its path relative to the project root (docs/inventory.md)
    name: str
    hosts: tuple[Host, ...]
    groups: Mapping[str, frozenset[str]]  # group -> host names (children resolved)
    #: group -> host names in Ansible's group order (what ``web[0]`` indexes); empty: none known
    group_order: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    #: group -> its direct child groups, in declaration order (for ``invoke inventory --graph``)
    group_children: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    #: The key an older rollout used for this inventory (its file's stem), when it differs
    #: from ``name`` and ``name`` was derived from the path: records under it need a decision
    legacy_name: str | None = None

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)
