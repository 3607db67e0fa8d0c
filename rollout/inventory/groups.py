"""The group graph: Ansible's implicit rules, cycles, each group's depth, members, priority
and host order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .builder import Builder, GroupDef, fail, show


@dataclass(frozen=True)
class Graph:
    """Each group's depth below ``all`` and its hosts, children included."""

    depth: Mapping[str, int]
    members: Mapping[str, frozenset[str]]


def link_groups(builder: Builder) -> Graph:
    """Apply Ansible's implicit rules (ungrouped hosts, top groups under all); check cycles."""
    groups = builder.groups
    for name, declared in builder.hosts.items():
        if name in groups:
            fail(
                f"{name!r} is both a host and a group",
                declared.loc,
                "rename one of them: Ansible only warns, then may file the group under "
                "'ungrouped' in the host's place, so the two tools would disagree",
            )
    direct: dict[str, set[str]] = {h: set() for h in builder.hosts}
    for group in groups.values():
        for host in group.hosts:
            direct[host].add(group.name)
    ungrouped = groups["ungrouped"].hosts
    for host, names in direct.items():  # Ansible's reconcile_inventory
        lonely = names <= {"all", "ungrouped"}
        if lonely and host not in ungrouped:
            ungrouped.append(host)
        elif not lonely and host in ungrouped:
            ungrouped.remove(host)
    parents: dict[str, list[str]] = {name: [] for name in groups}
    for group in groups.values():
        for child in group.children:
            parents[child].append(group.name)
    for name, ups in parents.items():
        if name != "all" and not ups:
            groups["all"].children.setdefault(name, groups[name].loc)
            ups.append("all")
    _check_cycles(groups)

    depth: dict[str, int] = {"all": 0}

    def depth_of(name: str) -> int:
        if name not in depth:
            depth[name] = 1 + max(depth_of(p) for p in parents[name])
        return depth[name]

    members: dict[str, frozenset[str]] = {}

    def members_of(name: str) -> frozenset[str]:
        if name not in members:
            found = set(groups[name].hosts)
            for child in groups[name].children:
                found |= members_of(child)
            members[name] = frozenset(found)
        return members[name]

    for name in groups:
        depth_of(name)
        members_of(name)
    members["all"] = frozenset(builder.hosts)
    return Graph(depth, members)


def _check_cycles(groups: Mapping[str, GroupDef]) -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for child, loc in groups[name].children.items():
            if state.get(child) == 1:
                cycle = [*path[path.index(child) :], child]
                fail(
                    f"groups form a cycle: {' -> '.join(cycle)}",
                    loc,
                    f"remove {child!r} from the children of {name!r}",
                )
            if child not in state:
                visit(child)
        path.pop()
        state[name] = 2

    for name in groups:
        if name not in state:
            visit(name)


def group_priority(group: GroupDef) -> int:
    value = group.vars.get("ansible_group_priority")
    if value is None:
        return 1
    raw = value.value
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        raw = int(raw)
    if not isinstance(raw, int) or isinstance(raw, bool):
        fail(
            f"ansible_group_priority of group {group.name!r} must be an integer, got {show(raw)}",
            value.loc,
            "use a number; among groups of the same depth the higher priority wins",
        )
    return raw


def group_order(builder: Builder) -> dict[str, tuple[str, ...]]:
    """Each group's hosts in Ansible's ``Group.get_hosts()`` order: the group's own hosts,
    then its descendants' breadth first, each level in declaration order. (Ansible walks a
    level as a Python set, so below the first level its own order can vary from run to run;
    rollout's is the declared one, docs/inventory.md.)"""
    groups = builder.groups
    out: dict[str, tuple[str, ...]] = {}
    for name in groups:
        walk = [name, *groups[name].children]
        seen = set(walk)
        level = list(groups[name].children)
        while level:
            following: list[str] = []
            for group in level:
                for child in groups[group].children:
                    if child not in seen:
                        seen.add(child)
                        walk.append(child)
                        following.append(child)
            level = following
        hosts: dict[str, None] = {}
        for group in walk:
            hosts.update(dict.fromkeys(groups[group].hosts))
        out[name] = tuple(hosts)
    return out
