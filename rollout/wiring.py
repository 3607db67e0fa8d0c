"""Optional capabilities plugged into the commands: gates, notifications, restarts.

Kept apart so ``commands`` does not import every subsystem, and so the CLI's start-up stays
light: each function imports what it needs when called.
"""

from __future__ import annotations

from typing import Any


def gates() -> tuple[Any, ...]:
    """Extra gate checks for ``advance``: a fresh backup where the phase requires one.

    (The readiness checklist runs inside ``deploy`` itself.)
    """
    return (backup_gate,)


def backup_gate(ctx: Any, phase: Any, state: Any) -> str | None:
    """A phase with ``gates.backup`` needs a complete backup taken after the last phase change."""
    if not phase.gates.backup:
        return None
    from .backup import backups_root, latest_backup_after

    since = state.phase_changed or 0.0
    hosts = [h.name for h in ctx.inventory.hosts]
    if latest_backup_after(backups_root(), ctx.inventory.name, since, hosts=hosts) is None:
        return (
            "it needs a complete backup taken after the current phase was applied: "
            "run `invoke backup`"
        )
    return None


def deploy_gates() -> tuple[Any, ...]:
    """Gate checks ``deploy`` applies before touching hosts (a fresh backup, where required)."""
    return (backup_gate,)
