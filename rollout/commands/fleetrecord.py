"""The hosts' own record: ``adopt`` it, ``pause``/``resume`` on it, clear a dead run's lease.

These write every host's fleet record (for every controller), not only this ledger.
"""

from __future__ import annotations

from ..errors import HostOutcome, HostsUnreachable, UsageError
from ..events import Kind
from ..fleetrecord import HostState, Record
from ..ledger import InventoryState
from .context import Context
from .running import check_fleet, command_text, running


def adopt(ctx: Context) -> dict[str, Record]:
    """Take the hosts' records into this ledger: their phase, pause and generations.

    For an operator who has read `invoke status` and agrees with what another controller did;
    afterwards this ledger is no longer behind, and its commands go on from the fleet's state.
    """
    if ctx.limited:
        raise UsageError("adopt takes the whole fleet's record; drop --limit")
    inv = ctx.inventory.name
    with running(ctx, command_text("adopt", ctx.options), lease=False) as (run, _lock, ex):
        _unreachable, readings = ex.claim()
        unread = [h for h in ex.hosts if h not in readings]
        if unread:
            raise HostsUnreachable(
                f"cannot adopt the fleet's record: {len(unread)} host(s) unreadable: "
                + ", ".join(unread),
                hint="bring them back, then re-run `invoke adopt`",
                results=[HostOutcome(h, False, "unreadable") for h in unread],
            )
        states = ex.side.states if ex.side is not None else {}
        records = {h: s.record for h, s in states.items() if s.record is not None}
        if not records:
            ex.emit(Kind.INFO, "no host carries a record yet: nothing to adopt")
            return {}
        mine = ctx.ledger.identity
        foreign = {h: r for h, r in records.items() if r.ledger != mine}
        ctx.ledger.adopt(inv, {h: (r.generation, r.run_id, r.ledger) for h, r in foreign.items()},
                         run.id)  # fmt: skip
        for host, record in sorted(records.items()):
            ex.emit(Kind.INFO, f"adopted: {record.story()}", host=host)
        newest = max(records.values(), key=lambda r: (r.changed, r.generation))
        phases = sorted({r.phase for r in records.values() if r.phase is not None})
        if len(phases) > 1:
            ex.emit(Kind.WARNING, f"the fleet is mixed (phases {phases}); recording the newest "
                    f"change's phase {newest.phase}; `invoke status` shows each host")  # fmt: skip
        if newest.phase is not None:
            soak = ctx.playbook.phase(newest.phase).soak
            ctx.ledger.set_phase(inv, newest.phase, run.id, soak_required=soak)
            ex.emit(Kind.INFO, f"recorded phase {newest.phase} for {inv} (adopted)",
                    phase=newest.phase)  # fmt: skip
        paused = next((r for r in records.values() if r.paused), None)
        if paused is not None:
            ctx.ledger.set_paused(inv, True, paused.paused_by or paused.who,
                                  paused.paused_reason)  # fmt: skip
        elif ctx.ledger.state(inv).paused:
            ctx.ledger.set_paused(inv, False, ctx.ledger.who, "adopted an unpaused fleet")
        return records


def set_pause(ctx: Context, paused: bool, reason: str | None) -> InventoryState:
    """Pause or resume rollouts, in this ledger and on every host's record (for every
    controller). Refused while this ledger is behind the fleet (adopt first)."""
    from ..fleet import run_parallel
    from ..fleetstate import Op

    inv = ctx.inventory.name
    word = "pause" if paused else "resume"
    with running(ctx, command_text(word, ctx.options), reason) as (run, _lock, ex):
        side = ex.side
        if side is not None:
            unreachable, _readings = ex.claim()
            check_fleet(ctx, ex, what=word)
            side.pause = (f"{run.who}@{run.where}", reason or "paused") if paused else None
            targets = [h for h in ex.hosts if h not in unreachable]

            def note(name: str) -> HostState:
                state = side.states.get(name)
                phase = state.record.phase if state and state.record else None
                record = side.record_for(name, word, phase)
                console = ex.backend.console(name)
                return console.state_call(Op.NOTE, record)  # type: ignore[attr-defined, no-any-return]

            ex.check_right()
            for name, outcome in run_parallel(targets, note).items():
                ok = outcome.error is None
                ex.emit(Kind.INFO if ok else Kind.WARNING,
                        f"fleet record {'paused' if paused else 'resumed'}" if ok
                        else f"could not write the fleet record: {outcome.error.detail}",  # type: ignore[union-attr]
                        host=name, ok=ok)  # fmt: skip
            if unreachable:
                ex.emit(Kind.WARNING, f"{word}: {len(unreachable)} host(s) unreachable keep "
                        f"their record: {', '.join(unreachable)}")  # fmt: skip
        return ctx.ledger.set_paused(inv, paused, ctx.ledger.who, reason if paused else None)


def clear_lease(ctx: Context, lease_id: str) -> list[str]:
    """Remove the fleet lease ``lease_id`` (exact id) from every host that holds it."""
    from ..fleet import run_parallel
    from ..fleetrecord import LEASE_ID_RE
    from ..fleetstate import Op

    if not LEASE_ID_RE.match(lease_id):
        raise UsageError(f"{lease_id!r} is not a fleet lease id (fl- and 12 hex digits)")
    cleared: list[str] = []
    with running(ctx, command_text("unlock", ctx.options), lease=False) as (_run, _lock, ex):
        failed = ex.connect_all()

        def clear(name: str) -> HostState:
            console = ex.backend.console(name)
            return console.state_call(Op.CLEAR, replace_id=lease_id)  # type: ignore[attr-defined, no-any-return]

        for name, outcome in run_parallel([h for h in ex.hosts if h not in failed], clear).items():
            value = outcome.value
            if value is not None and value.lease is not None and value.lease.status == "cleared":
                cleared.append(name)
                ex.emit(Kind.INFO, f"cleared the fleet lease {lease_id}", host=name, ok=True)
        if not cleared:
            raise UsageError(f"no reachable host holds the fleet lease {lease_id}",
                             hint="`invoke status` shows each host's lease")  # fmt: skip
    return cleared
