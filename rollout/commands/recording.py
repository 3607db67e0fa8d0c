"""The inventory's recorded phase: read against the playbook, recorded after a verified change.

Recording a phase also settles dead runs' open intents on the hosts this run has verified.
"""

from __future__ import annotations

from ..errors import UsageError
from ..events import Kind
from ..executor import Executor
from ..ledger import RunRecord
from ..models import Phase
from .context import Context


def recorded_phase(ctx: Context, number: int) -> Phase:
    """The recorded phase in this playbook; a clear UsageError when the playbook lacks it."""
    if 0 <= number <= ctx.playbook.last:
        return ctx.playbook.phase(number)
    raise UsageError(
        f"the ledger records phase {number} for {ctx.inventory.name}, but "
        f"{ctx.playbook.path} has phases 0..{ctx.playbook.last}",
        hint="use the playbook that deployed it (--playbook), or bring the fleet into this one "
        f"with `invoke rollback --to {ctx.playbook.last} --reason ...`",
    )


def record_phase(ctx: Context, ex: Executor, run: RunRecord, phase: int, soak: float) -> None:
    """Record ``phase`` (and its soak) for the inventory after a verified change, unless
    ``--limit`` covered only part of it; dead runs' intents on these hosts are settled first."""
    supersede(ctx, ex, run)
    if ctx.limited:
        ex.emit(
            Kind.WARNING,
            f"--limit covered {len(ctx.hosts)} of "
            f"{len(ctx.inventory.hosts)} hosts: the recorded phase stays unchanged",
        )
        return
    ctx.ledger.set_phase(ctx.inventory.name, phase, run.id, soak_required=soak)
    ex.emit(Kind.INFO, f"recorded phase {phase} for {ctx.inventory.name}", phase=phase)


def supersede(ctx: Context, ex: Executor, run: RunRecord) -> None:
    """Settle dead runs' unsettled changes on hosts this run has just verified.

    A crashed run leaves intents open as evidence; once a later run has read those hosts back
    at a recorded state, the evidence has served and `status` stops reporting it.
    """
    verified = {h.name for h in ctx.hosts}
    for intent in ctx.ledger.open_intents(ctx.inventory.name):
        if intent.run_id != run.id and intent.host in verified:
            note = "never finished; the host was read back and verified by a later run"
            ctx.ledger.settle(intent.id, False, {"superseded_by": run.id, "note": note})
            ex.emit(Kind.INFO, f"settled change #{intent.id} of dead run {intent.run_id}",
                    host=intent.host)  # fmt: skip
