"""``status``: every selected host read (no lock, no lease) and compared with the ledger."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..fleetrecord import Record
from ..fleetstate import FleetSide
from ..ledger import LockRecord, RunRecord, WaveRecord
from ..models import Observed
from .context import Context
from .running import ledger_knowledge


@dataclass(frozen=True)
class HostStatus:
    host: str
    flags: dict[str, Observed] | None
    matches: int | None
    error: str | None
    record: Record | None = None  # the host's last change, from its fleet record
    behind: bool = False  # this ledger does not know that change (another controller's)
    lease: str | None = None  # who holds the host's fleet lease now, if anyone
    #: the phase this host must hold when it differs from the recorded one: a wave's
    #: baseline host stays at the previous phase (rollout.waves)
    expected: int | None = None
    console: str | None = None  # the console path read through (rollout.erlcall)
    console_fallback: str | None = None  # why rpc, when erl_call was wanted


@dataclass(frozen=True)
class StatusReport:
    inventory: str
    recorded: int | None
    hosts: tuple[HostStatus, ...]
    holder: LockRecord | None
    interrupted: tuple[RunRecord, ...]
    open_intents: int
    wave: WaveRecord | None = None  # the wave the phase is in, while it has a baseline

    @property
    def drifted(self) -> tuple[str, ...]:
        return tuple(
            h.host
            for h in self.hosts
            if h.flags is not None
            and h.matches != (h.expected if h.expected is not None else self.recorded)
        )


def status(ctx: Context) -> StatusReport:
    """Read every selected host (read-only, no lock) and compare with the ledger."""
    ledger = ctx.ledger
    inv = ctx.inventory.name
    backend = ctx.backend_factory(ctx.hosts, ctx.playbook)
    if hasattr(backend, "side"):
        backend.side = FleetSide(ctx.playbook.name, None, 0)  # read-only: peek, no lease
    knowledge = ledger_knowledge(ledger, inv)
    try:
        names = [h.name for h in ctx.hosts]
        from ..fleet import connect_failures, each

        readings = each(names, lambda n: backend.console(n).read_flags(),
                        connect=connect_failures(backend.connect))  # fmt: skip
    finally:
        backend.close()
    rows = []
    for name in names:
        outcome = readings[name]
        if outcome.value is None:
            rows.append(HostStatus(name, None, None, outcome.detail))
        else:
            flags = dict(outcome.value.flags)
            fleet = outcome.value.state
            record = fleet.record if fleet else None
            behind = record is not None and not knowledge.knows(name, record)
            lease = fleet.lease if fleet else None
            held = None
            if lease is not None and lease.live and lease.holder is not None:
                held = f"{lease.id} by {lease.holder.describe()}, {lease.expires_in:.0f}s left"
            rows.append(HostStatus(name, flags, ctx.playbook.match(flags), None, record,
                                   behind, held, console=outcome.value.console,
                                   console_fallback=outcome.value.console_fallback))  # fmt: skip
    from ..waves import current_wave

    wave = current_wave(ctx)
    if wave is not None and not wave.final:
        rows = [r if r.host in wave.canary else dataclasses.replace(r, expected=wave.from_phase)
                for r in rows]  # fmt: skip
    return StatusReport(
        inventory=inv,
        recorded=ledger.state(inv).phase,
        hosts=tuple(rows),
        holder=ledger.holder(inv),
        interrupted=tuple(ledger.interrupted_runs(inv)),
        open_intents=len(ledger.open_intents(inv)),
        wave=wave if wave is not None and not wave.final else None,
    )
