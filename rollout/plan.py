"""Pure planning: what to change on which host, in which batch.

A plan is data. ``invoke plan`` prints the same :class:`Plan` that ``deploy`` then executes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from .errors import Refused, UsageError
from .models import BatchSize, FlagChange, Observed, Phase, Playbook


class Action(Enum):
    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    EMERGENCY = "emergency"
    REAPPLY = "reapply"  # drift repair: converge to the phase already recorded
    RESTORE = "restore"


@dataclass(frozen=True)
class HostPlan:
    """One host: what it holds now, which phase that matches, and what must change."""

    host: str
    matches: int | None  # the phase its flags match exactly, None when drifted/mixed
    changes: tuple[FlagChange, ...]

    @property
    def noop(self) -> bool:
        return not self.changes


@dataclass(frozen=True)
class Plan:
    action: Action
    target: Phase
    undo: Phase | None  # the state hosts go back to if this plan fails part-way
    recorded: int | None  # the phase the ledger records before the run
    hosts: tuple[HostPlan, ...]
    batches: tuple[tuple[str, ...], ...]
    max_fail_percentage: float

    @property
    def changed_hosts(self) -> tuple[str, ...]:
        return tuple(h.host for h in self.hosts if not h.noop)

    @property
    def noop(self) -> bool:
        return all(h.noop for h in self.hosts)

    def host(self, name: str) -> HostPlan:
        for plan in self.hosts:
            if plan.host == name:
                return plan
        raise KeyError(name)


def batch_sizes(total: int, serial: Sequence[BatchSize]) -> list[int]:
    """Ansible's ``serial``: counts or percentages of all hosts (floor, min 1); last repeats."""
    sizes: list[int] = []
    spec = list(serial) or ["100%"]
    remaining = total
    i = 0
    while remaining > 0:
        entry = spec[min(i, len(spec) - 1)]
        if isinstance(entry, str):
            size = max(1, math.floor(total * float(entry.rstrip("%")) / 100.0))
        else:
            size = max(1, int(entry))
        size = min(size, remaining)
        sizes.append(size)
        remaining -= size
        i += 1
    return sizes


def make_batches(names: Sequence[str], serial: Sequence[BatchSize]) -> tuple[tuple[str, ...], ...]:
    out = []
    start = 0
    for size in batch_sizes(len(names), serial):
        out.append(tuple(names[start : start + size]))
        start += size
    return tuple(out)


def batch_failed(failed: int, batch_size: int, max_fail_percentage: float) -> bool:
    """Ansible's rule: the run stops when more than ``max_fail_percentage`` of a batch failed."""
    if failed == 0:
        return False
    return failed * 100.0 / batch_size > max_fail_percentage


def resolve_target(
    action: Action,
    playbook: Playbook,
    recorded: int | None,
    requested: int | None,
    *,
    force: bool = False,
) -> Phase:
    """Which phase a command converges to, with the rules that protect the fleet."""
    last = playbook.last
    if action is Action.EMERGENCY:
        number = requested if requested is not None else playbook.emergency.phase
        _check_range(number, last)
        if recorded is not None and number > recorded:
            # an emergency only goes back: a phase ahead of the fleet is a deploy, with its
            # checks, confirmation, backup gate and soak (a broken ledger: fix it by hand)
            raise Refused(
                f"rollback --emergency --to {number} is ahead of the recorded phase {recorded}: "
                "an emergency only goes back",
                hint=f"`invoke rollback --emergency --to {recorded}`, or no --to for the "
                "playbook's emergency phase"
                if recorded > 0
                else "nothing to roll back: the ledger records the baseline",
            )
        return playbook.phase(number)
    if action is Action.REAPPLY:
        if recorded is None:
            raise UsageError("no phase is recorded for this inventory yet; nothing to re-apply")
        return playbook.phase(recorded)
    if action is Action.ROLLBACK:
        if requested is None:
            if recorded is None or recorded == 0:
                raise UsageError(
                    "no earlier phase to roll back to (the ledger records none)",
                    hint="`invoke status` shows each host; `invoke rollback --to 0 --reason ...` "
                    "puts every host at the baseline",
                )
            requested = recorded - 1
        _check_range(requested, last)
        if recorded is not None and requested > recorded and not force:
            raise Refused(
                f"rollback --to {requested} is ahead of the recorded phase {recorded}",
                hint=f"moving forward is a deploy: `invoke deploy --phase {recorded + 1}`",
            )
        return playbook.phase(requested)
    if requested is None:
        raise UsageError("deploy needs --phase N")
    _check_range(requested, last, allow_zero=False)
    base = recorded if recorded is not None else 0
    if requested < base:
        raise Refused(
            f"phase {requested} is behind the recorded phase {base}",
            hint=f"going back is a rollback: `invoke rollback --to {requested}`",
        )
    if requested > base + 1 and not force:
        raise Refused(
            f"phase {requested} skips ahead of the recorded phase {base} (next is {base + 1})",
            hint=f"deploy phase {base + 1} first, or pass --force to skip phases",
        )
    return playbook.phase(requested)


def _check_range(number: int, last: int, *, allow_zero: bool = True) -> None:
    low = 0 if allow_zero else 1
    if not low <= number <= last:
        raise UsageError(f"phase {number} does not exist: the playbook has phases {low}..{last}")


def build_plan(
    action: Action,
    playbook: Playbook,
    target: Phase,
    readings: Mapping[str, Mapping[str, Observed]],
    order: Sequence[str],
    recorded: int | None,
) -> Plan:
    """Diff every host's read-back flags against ``target``'s full state."""
    hosts = []
    for name in order:
        flags = readings[name]
        hosts.append(HostPlan(name, playbook.match(flags), target.state.changes_from(flags)))
    undo: Phase | None = None
    if action is Action.DEPLOY:
        undo = playbook.phase(recorded if recorded is not None else max(0, target.number - 1))
    serial = playbook.policy.serial if action is Action.DEPLOY else ("100%",)
    changed = [h.host for h in hosts if not h.noop]
    return Plan(
        action=action,
        target=target,
        undo=undo,
        recorded=recorded,
        hosts=tuple(hosts),
        batches=make_batches(changed, serial),
        max_fail_percentage=playbook.policy.max_fail_percentage,
    )
