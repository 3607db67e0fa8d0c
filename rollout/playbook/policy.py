"""``policy`` (batch sizes, failure tolerance, timeouts, the lock's lease) and ``emergency``
(the phase an emergency rollback goes to, and whether it restarts the release)."""

from __future__ import annotations

from ..fields import show
from ..models import BatchSize, EmergencyPolicy, RolloutPolicy
from ..yamlsrc import Node, NodeList
from .reader import (
    check_keys,
    count_or_share,
    fail,
    read_bool,
    read_duration,
    read_int,
    read_number,
)

__all__ = ["read_emergency", "read_policy"]

_POLICY_KEYS = ("serial", "max_fail_percentage", "connect_timeout", "command_timeout", "lease_ttl")
_EMERGENCY_KEYS = ("phase", "restart")


def read_policy(node: Node) -> RolloutPolicy:
    """The ``policy`` mapping over the models' defaults."""
    check_keys(node, _POLICY_KEYS, "policy")
    defaults = RolloutPolicy()
    serial = defaults.serial
    if "serial" in node:
        serial = _serial(node)
    max_fail = defaults.max_fail_percentage
    if "max_fail_percentage" in node:
        max_fail = read_number(node, "max_fail_percentage", "policy.max_fail_percentage")
        if not 0 <= max_fail <= 100:
            fail(
                node.loc("max_fail_percentage", "policy.max_fail_percentage"),
                f"max_fail_percentage {max_fail:g} is outside 0..100",
                "0 stops at the first failed host; 100 never stops for failures",
            )
    timeouts = {
        key: read_duration(node, key, f"policy.{key}", positive=True)
        for key in ("connect_timeout", "command_timeout", "lease_ttl")
        if key in node
    }
    if timeouts.get("lease_ttl", 5.0) < 5.0:
        fail(
            node.loc("lease_ttl", "policy.lease_ttl"),
            f"lease_ttl {timeouts['lease_ttl']:g}s is too short",
            "use at least 5s, and more than the longest soak poll interval (default 2m)",
        )
    return RolloutPolicy(serial, max_fail, **timeouts)


def _serial(node: Node) -> tuple[BatchSize, ...]:
    value = node["serial"]
    hint = 'use whole host counts (1, 5) or percentages ("50%"), e.g. [1, "50%", "100%"]'
    if isinstance(value, NodeList):
        if not value:
            fail(node.loc("serial", "policy.serial"), "`serial` is empty", hint)
        entries = [(item, value.loc(i, f"policy.serial[{i + 1}]")) for i, item in enumerate(value)]
    else:
        entries = [(value, node.loc("serial", "policy.serial"))]
    out: list[BatchSize] = []
    for item, loc in entries:
        size = count_or_share(item, 100)
        if size is None:
            fail(loc, f"bad batch size {show(item)}", hint)
        out.append(size)
    return tuple(out)


def read_emergency(node: Node, last: int) -> EmergencyPolicy:
    """The ``emergency`` mapping; ``last`` is the playbook's last phase."""
    check_keys(node, _EMERGENCY_KEYS, "emergency")
    defaults = EmergencyPolicy()
    phase = defaults.phase
    if "phase" in node:
        phase = read_int(node, "phase", "emergency.phase", low=0)
    if phase > last:
        fail(
            node.loc("phase", "emergency.phase"),
            f"emergency phase {phase} does not exist (phases are 1..{last})",
            f"use a phase from 0 (the baseline) to {last}",
        )
    restart = defaults.restart
    if "restart" in node:
        restart = read_bool(node, "restart", "emergency.restart")
    return EmergencyPolicy(phase, restart)
