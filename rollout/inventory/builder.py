"""What an inventory is while it is being read: groups, hosts and their inline variables.

Every source format (:mod:`.yaml_source`, :mod:`.ini_source`) feeds one :class:`Builder`;
every problem is an :class:`~rollout.errors.InventoryError` raised through :func:`fail`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import NoReturn

from .. import fields
from ..errors import InventoryError, SourceLocation

# Checked with fullmatch(): "$" alone would accept a trailing newline.
GROUP_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
#: The inventory variable (under ``all: vars``) that names the fleet in the ledger.
FLEET_VAR = "rollout_fleet"
# Our own variable names, long enough that a near miss is a typo rather than another variable.
_TYPO_GUARDED = (
    "release_bin", "release_env", "known_hosts_file", "restart_command", "state_paths",
    "rollout_state_dir", "rollout_console",
    FLEET_VAR,
)  # fmt: skip


def fail(message: str, location: SourceLocation | None, hint: str | None = None) -> NoReturn:
    fields.fail(InventoryError, location, message, hint)


def show(value: object) -> str:
    return fields.show(value, 80, yaml_words=False)


@dataclass(frozen=True)
class Value:
    """A variable's value and where it was set."""

    value: object
    loc: SourceLocation
    secret: bool = False  # from Ansible Vault (or rendered from a vault value)


Vars = dict[str, Value]


def show_value(value: Value, shown: object) -> str:
    """``shown`` for an error message, unless the value came from Ansible Vault."""
    return "(a vault value, not shown)" if value.secret else show(shown)


@dataclass
class GroupDef:
    """A group while the inventory is being read."""

    name: str
    loc: SourceLocation
    vars: Vars = field(default_factory=dict)
    children: dict[str, SourceLocation] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)


@dataclass
class HostDef:
    """A host while the inventory is being read; ``vars`` are its inline vars."""

    name: str
    loc: SourceLocation
    vars: Vars = field(default_factory=dict)


class Builder:
    """Collects groups, hosts and inline vars from one or more inventory sources."""

    def __init__(self) -> None:
        implicit = SourceLocation("<implicit>")
        self.groups: dict[str, GroupDef] = {n: GroupDef(n, implicit) for n in ("all", "ungrouped")}
        self.groups["all"].children["ungrouped"] = implicit  # as Ansible's InventoryData
        self.hosts: dict[str, HostDef] = {}

    def group(self, name: str, loc: SourceLocation) -> GroupDef:
        if not GROUP_NAME_RE.fullmatch(name):
            fail(
                f"group name {name!r} is not allowed",
                loc,
                "use letters, digits, '_' and '-', starting with a letter or '_'",
            )
        if name not in self.groups:
            self.groups[name] = GroupDef(name, loc)
        return self.groups[name]

    def add_child(self, parent: str, child: str, loc: SourceLocation) -> GroupDef:
        if child == "all":
            fail(
                f"group 'all' cannot be a child of {parent!r}",
                loc,
                "'all' already holds every host; remove it from the children",
            )
        group = self.group(child, loc)
        self.groups[parent].children.setdefault(child, loc)
        return group

    def add_host(
        self, name: str, loc: SourceLocation, group: str, port: int | None = None
    ) -> HostDef:
        """Add ``name`` to ``group``; ``name:port`` sets the port only where the host is first
        declared (Ansible's ``Host(name, port)``): a later ``h1:4444`` does not move it."""
        host = self.hosts.get(name)
        if host is None:
            host = self.hosts[name] = HostDef(name, loc)
            if port is not None:
                set_var(host.vars, "ansible_port", port, loc)
        members = self.groups[group].hosts
        if name not in members:
            members.append(name)
        return host


def set_var(target: Vars, key: str, value: object, loc: SourceLocation) -> None:
    if key not in _TYPO_GUARDED:
        close = difflib.get_close_matches(key, _TYPO_GUARDED, n=1, cutoff=0.88)
        if close:
            fail(f"unknown variable {key!r}", loc, f"did you mean {close[0]!r}?")
    target[key] = Value(value, loc)
