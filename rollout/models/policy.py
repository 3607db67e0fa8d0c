"""Policies a playbook sets: the gates before a phase, batches (``serial``), timeouts and
leases, and the emergency rollback.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Gates:
    """What must hold before a phase may be applied (see ``advance``)."""

    backup: bool = False  # a backup taken after the previous phase was applied
    checks: bool = True  # the readiness checklist passes
    approval: bool = False  # `invoke approve --phase N` recorded


#: Ansible's ``serial``: each entry an absolute count or a percentage string like "50%".
BatchSize = int | str


@dataclass(frozen=True)
class RolloutPolicy:
    serial: tuple[BatchSize, ...] = ("100%",)
    max_fail_percentage: float = 0.0
    connect_timeout: float = 10.0
    command_timeout: float = 60.0
    #: how long a run's fleet lease lives on a host without a renewal (rollout.fleetstate)
    lease_ttl: float = 120.0


@dataclass(frozen=True)
class EmergencyPolicy:
    phase: int = 1
    restart: bool = True
