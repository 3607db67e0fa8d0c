"""``invoke inventory``: the tool's ``ansible-inventory``, pure over a loaded Inventory.

``--list`` is ansible-inventory's JSON shape (``_meta.hostvars`` and one entry per group with
its ``hosts`` and ``children``), but each host's variables are what rollout resolved and will
use: address, port, user, key and known_hosts files, bastions, release variables. Secrets
(``release_env`` values) are masked. Nothing connects to anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .models import Host, Inventory

__all__ = ["graph_text", "host_data", "list_data"]


def host_data(host: Host) -> dict[str, Any]:
    """The variables rollout uses for ``host``, secrets masked."""
    return {
        "address": host.address,
        "port": host.port,
        "user": host.user,
        "key_file": host.key_file,
        "known_hosts_file": host.known_hosts_file,
        "jumps": [str(jump) for jump in host.jumps],
        "release_bin": host.release_bin,
        "release_env": {name: str(value) for name, value in host.release_env},  # masked
        "restart_command": host.restart_command,
        "service": host.service,
        "state_paths": list(host.state_paths),
        "groups": sorted(host.groups),
    }


def _direct_hosts(inventory: Inventory, group: str, shown: set[str]) -> list[str]:
    """The group's own hosts (not its children's), in the group's order."""
    below: set[str] = set()
    for child in inventory.group_children.get(group, ()):
        below |= inventory.groups.get(child, frozenset())
    order = inventory.group_order.get(group) or tuple(
        h.name for h in inventory.hosts if h.name in inventory.groups.get(group, frozenset())
    )
    own = [h for h in order if h in shown and h not in below]
    if group == "all":
        return []
    return own


def _groups(inventory: Inventory, shown: set[str]) -> list[str]:
    """Groups that hold a shown host (``all`` always), in the inventory's group order."""
    return [g for g in inventory.groups if g == "all" or inventory.groups[g] & shown]


def list_data(inventory: Inventory, hosts: Sequence[Host]) -> dict[str, Any]:
    """``ansible-inventory --list`` for the selected ``hosts``."""
    shown = {h.name for h in hosts}
    groups = _groups(inventory, shown)
    out: dict[str, Any] = {"_meta": {"hostvars": {h.name: host_data(h) for h in hosts}}}
    for group in groups:
        entry: dict[str, Any] = {}
        children = [c for c in inventory.group_children.get(group, ()) if c in groups]
        if children:
            entry["children"] = children
        own = _direct_hosts(inventory, group, shown)
        if own:
            entry["hosts"] = own
        out[group] = entry
    return out


def graph_text(inventory: Inventory, hosts: Sequence[Host]) -> str:
    """``ansible-inventory --graph``: the group tree with each group's own hosts."""
    shown = {h.name for h in hosts}
    groups = set(_groups(inventory, shown))
    lines: list[str] = []

    def walk(group: str, depth: int) -> None:
        pad = "  |" * depth
        lines.append(f"{pad}--@{group}:" if depth else f"@{group}:")
        for child in inventory.group_children.get(group, ()):
            if child in groups:
                walk(child, depth + 1)
        for host in _direct_hosts(inventory, group, shown):
            lines.append(f"{pad}  |--{host}")

    walk("all", 0)
    return "\n".join(lines) + "\n"
