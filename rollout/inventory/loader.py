"""Load Ansible-style inventories into :class:`~rollout.models.Inventory`.

Reads Ansible's YAML inventory (``all: {hosts, vars, children}``), its INI inventory
(``[group]``, ``[group:vars]``, ``[group:children]``, host ranges such as ``web[01:10]``), a
directory of such files, and the ``group_vars/`` and ``host_vars/`` directories beside them.
Variables merge as Ansible merges them, lowest first, the whole value replaced (no deep merge):

1. inline vars of ``all``, then of the host's other groups, shallow before deep (same depth:
   ``ansible_group_priority``, then group name);
2. ``group_vars/all``, then ``group_vars/<group>`` in the same group order;
3. inline host vars, then ``host_vars/<host>``.

The merged variables become a :class:`~rollout.models.Host`; everything rollout does not use is
accepted and ignored, so an operator's existing Ansible inventory loads. Every problem is an
:class:`~rollout.errors.InventoryError` naming the file, line and key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from types import MappingProxyType

from ..errors import SourceLocation
from ..models import Host, Inventory
from ..sshopts import load_client_config
from ..vault import Vault
from .builder import FLEET_VAR, Builder, Value, Vars, fail, show
from .groups import group_order, group_priority, link_groups
from .host_fields import Client, make_host, pick
from .hostvars import Rendered
from .sources import parse_source, source_files
from .vars_files import load_vars_files

__all__ = ["fleet_identity", "load_inventory"]

#: A plain name, or a path-like key (a moved inventory keeps its record by naming its old
#: derived key, e.g. ``inventory/eu/prod.yml``).
FLEET_NAME_RE = re.compile(r"[A-Za-z0-9/][A-Za-z0-9._/-]{0,255}")
#: What marks a project root, for the path-derived fleet identity (see :func:`fleet_identity`).
_ROOT_MARKERS = ("tasks.py", ".git")


def load_inventory(
    path: str | Path, *, ssh_config: str | Path | None = None, vault: Vault | None = None
) -> Inventory:
    """Read an inventory file (or directory) and the group_vars/host_vars beside it.

    ``ssh_config``: an OpenSSH client config to resolve hosts through (docs/inventory.md,
    "SSH"); None reads none. ``vault``: decrypts Ansible Vault data (None: no password, so
    vault data is an error naming where it is).
    """
    vault = vault or Vault()
    given = Path(path)
    if not given.exists():
        fail(
            "no such inventory file or directory",
            SourceLocation(str(given)),
            "check the path; inventories live under inventory/, e.g. inventory/lab.yml",
        )
    resolved = given.resolve()
    base = resolved if resolved.is_dir() else resolved.parent
    builder = Builder()
    for source in source_files(resolved):
        parse_source(source, builder)
    if not builder.hosts:
        fail(
            "the inventory defines no hosts",
            SourceLocation(str(resolved)),
            "add hosts under all: hosts: (YAML) or in a [group] section (INI)",
        )
    graph = link_groups(builder)
    client = (
        Client(load_client_config(ssh_config), str(Path(ssh_config).expanduser()))
        if ssh_config is not None
        else None
    )

    group_files = {
        name: load_vars_files(base / "group_vars", name, vault) for name in builder.groups
    }
    fleet = pick({**builder.groups["all"].vars, **group_files["all"]}, FLEET_VAR)
    for layer in (*(g.vars for n, g in builder.groups.items() if n != "all"),
                  *(v for n, v in group_files.items() if n != "all"),
                  *(h.vars for h in builder.hosts.values())):  # fmt: skip
        if FLEET_VAR in layer:
            fail(
                f"{FLEET_VAR} names the whole inventory, not a group or a host",
                layer[FLEET_VAR].loc,
                "set it once under all: vars (or [all:vars], or group_vars/all.yml)",
            )
    priority = {name: group_priority(group) for name, group in builder.groups.items()}
    hosts: list[Host] = []
    for name, host in builder.hosts.items():
        member_of = frozenset(g for g, members in graph.members.items() if name in members)
        ordered = sorted(
            (g for g in member_of if g != "all"), key=lambda g: (graph.depth[g], priority[g], g)
        )
        host_files = load_vars_files(base / "host_vars", name, vault)
        layers: Iterable[Vars] = [
            builder.groups["all"].vars,
            *(builder.groups[g].vars for g in ordered),
            group_files["all"],
            *(group_files[g] for g in ordered),
            host.vars,
            host_files,
        ]
        merged: Vars = {}
        for layer in layers:
            merged.update(layer)
        if FLEET_VAR in host_files:
            fail(
                f"{FLEET_VAR} names the whole inventory, not a host",
                host_files[FLEET_VAR].loc,
                "set it once under all: vars (or [all:vars], or group_vars/all.yml)",
            )
        rendered = Rendered(name, member_of, merged, vault)
        hosts.append(make_host(name, member_of, rendered, base, client))

    groups = {name: graph.members[name] for name in builder.groups}
    order = group_order(builder)
    position = {name: i for i, name in enumerate(order["all"])}
    stem = resolved.stem if resolved.is_file() else resolved.name
    if fleet is not None:
        name = _fleet_name(fleet)
        legacy = None
    else:
        name = fleet_identity(resolved)
        legacy = stem if stem != name else None
    return Inventory(
        path=str(resolved),
        name=name,
        hosts=tuple(sorted(hosts, key=lambda h: position[h.name])),
        groups=MappingProxyType(groups),
        group_order=MappingProxyType(order),
        group_children=MappingProxyType(
            {name: tuple(group.children) for name, group in builder.groups.items()}
        ),
        legacy_name=legacy,
    )


def _fleet_name(value: Value) -> str:
    text = value.value
    if not isinstance(text, str) or not FLEET_NAME_RE.fullmatch(text) or ".." in text:
        fail(
            f"{FLEET_VAR} must be a name of letters, digits and '._/-' (at most 256, no '..'), "
            f"got {show(text)}",
            value.loc,
            "e.g. rollout_fleet: eu-prod",
        )
    return text


def fleet_identity(path: Path) -> str:
    """The ledger key of an inventory without ``rollout_fleet``: its path relative to the
    project root (the nearest directory above it holding ``tasks.py`` or ``.git``), so two
    checkouts of one project agree; outside any project, its absolute path."""
    resolved = path.resolve()
    for parent in resolved.parents:
        if any((parent / marker).exists() for marker in _ROOT_MARKERS):
            return resolved.relative_to(parent).as_posix()
    return resolved.as_posix()
