"""``backup``, ``restore`` and rolling ``restart``: the fleet's upkeep, each in its own run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import Refused
from .context import Context
from .recording import record_phase, recorded_phase
from .running import check_fleet, command_text, running

if TYPE_CHECKING:
    from ..backup import Backup, RestoreReport
    from ..restart import RestartReport


def backup(ctx: Context) -> Backup:
    """Save every selected host's flags (and state paths) under backups/<inventory>/<id>/."""
    from ..backup import backups_root, take_backup

    recorded = ctx.ledger.state(ctx.inventory.name).phase
    with running(ctx, command_text("backup", ctx.options), lease=False) as (_run, _lock, ex):
        return take_backup(ex, ctx.inventory.name, ctx.playbook, ctx.hosts, backups_root(),
                           recorded, clock=ctx.clock)  # fmt: skip


def restore(ctx: Context, backup_id: str, *, state: bool = False) -> RestoreReport:
    """Put a backup's flags (and, with ``state``, its state files) back; verified."""
    from ..backup import backups_root, load_backup, restore_backup

    loaded = load_backup(backups_root(), ctx.inventory.name, backup_id)
    with running(ctx, command_text("restore", ctx.options)) as (run, _lock, ex):
        if ex.side is not None:
            ex.claim()
            check_fleet(ctx, ex, what=f"restore of backup {backup_id}")
        report = restore_backup(ex, loaded, ctx.hosts, restore_state=state)
        if report.phase is not None:
            record_phase(ctx, ex, run, report.phase, ctx.playbook.phase(report.phase).soak)
        return report


def restart(ctx: Context, *, service: str | None = None, batch: int = 1,
            wait_timeout: float = 60.0) -> RestartReport:  # fmt: skip
    """Rolling restart, a batch at a time; each host's phase re-applied and verified."""
    from ..restart import rolling_restart

    recorded = ctx.ledger.state(ctx.inventory.name).phase
    phase = recorded_phase(ctx, recorded) if recorded is not None else None
    from ..waves import current_wave

    wave = current_wave(ctx)
    if wave is not None and not wave.final:
        # a restart re-applies the recorded phase on every host it restarts: it would move
        # the wave's baseline forward (TODO(issue 16): restart each side at its own phase)
        raise Refused(
            f"restart refused: {wave.title} is under way and its baseline hosts must stay at "
            f"phase {wave.from_phase}; nothing was changed",
            hint=f"finish the waves first (`invoke advance`), or `invoke rollback --to "
            f"{wave.from_phase} --reason ...`; an emergency is always `invoke rollback "
            "--emergency`",
        )
    with running(ctx, command_text("restart", ctx.options)) as (_run, _lock, ex):
        if ex.side is not None:
            ex.claim()
            check_fleet(ctx, ex, what="restart")
        return rolling_restart(ex, phase, ctx.hosts, service=service, batch=batch,
                               wait_timeout=wait_timeout)  # fmt: skip
