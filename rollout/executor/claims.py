"""The run's right to change hosts: its ledger lock and its fleet lease on every host.

:meth:`Claims.check_right` runs before every change (and at every soak poll): a run whose
lock was taken over or removed, or whose lease on a host is gone, stops. A claim takes this
run's lease on the hosts as it reads them, all or nothing (:meth:`Claims._settle_claims`:
a dead holder is replaced, a younger racing run yields, an older live one wins); takeovers
are announced once, and :meth:`Claims.release_lease` gives the leases back at the end.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..clock import utc
from ..consolecode import FlagReading
from ..errors import FleetBusy, LockBusy, RightLost
from ..events import Kind
from ..fleet import Outcome, run_parallel
from ..fleetrecord import HostState, new_lease_id, shown
from ..fleetstate import LeaseConflict, Op
from ..ledger import Ledger, LockRecord
from ..lock import Liveness, describe, pid_liveness
from .core import ExecutorCore

#: How long a claim keeps retrying hosts held by a racing run that yields to it (seconds).
RACE_WAIT = 10.0


class Claims(ExecutorCore):
    """The lock and lease checks, the claim and its release (a concern of the executor)."""

    def check_right(self, *, heartbeat: bool = False) -> None:
        """Raise RightLost unless this run still holds its ledger lock and fleet leases.

        Called before every change to a host (and, with ``heartbeat``, at every soak poll,
        which also refreshes the lock's heartbeat): a run whose lock was taken over, removed
        by `invoke unlock`, or whose lease on any host is gone, stops and changes nothing more.
        """
        lock = self.lock
        if lock is not None:
            try:
                if heartbeat:
                    self.ledger.heartbeat(lock)
                else:
                    holder = self.ledger.holder(lock.inventory)
                    if holder is None or holder.id != lock.id:
                        raise LockBusy(_lost_lock(self.ledger, lock, holder))
            except RightLost:
                raise
            except LockBusy as exc:
                raise RightLost(
                    f"this run ({self.run.id}) lost its lock {lock.id} and stopped changing "
                    f"hosts: {exc.message}",
                    hint="see who took it with `invoke status` and `invoke history`; "
                    "nothing more was changed by this run",
                ) from None
        side = self.side
        if side is not None and side.lost:
            host, state = next(iter(side.lost.items()))
            raise RightLost(
                f"this run ({self.run.id}) lost its fleet lease on {host} and stopped changing "
                f"hosts: {_holder_text(state)}",
                hint="`invoke status` shows who changed each host; nothing more was changed "
                "by this run",
            )

    def _begin_claim(self, force: bool) -> None:
        side = self.side
        if side is None or side.holder is None:
            return
        if side.lease_id is None:
            side.lease_id = new_lease_id()
        side.op_read = Op.TAKE
        if force:
            side.replace = {h: "*" for h in self.hosts}

    def _settle_claims(
        self, conflicts: Mapping[str, LeaseConflict]
    ) -> dict[str, Outcome[FlagReading]]:
        """Resolve hosts whose lease another run holds: all or nothing.

        A holder on this machine whose process is gone is replaced; a racing run whose claim
        is newer than ours (its start time, then its lease id) yields to us, so we retry its
        hosts for up to RACE_WAIT seconds while it gives them back; an older live holder
        wins, and this run takes nothing (what it took is released when it ends).
        """
        side = self.side
        out: dict[str, Outcome[FlagReading]] = {}
        if not conflicts or side is None or side.holder is None:
            if side is not None and side.holder is not None:
                side.op_read = Op.RENEW
            return out
        mine = (side.holder.claimed, side.lease_id or "")
        deadline = self.clock.monotonic() + RACE_WAIT
        pending = dict(conflicts)
        while pending:
            retry: list[str] = []
            for host, err in pending.items():
                lease = err.state.lease
                holder = lease.holder if lease else None
                if lease is None or holder is None or lease.id is None:
                    raise self._busy(host, err.state)
                alive = pid_liveness(holder.where, holder.pid, holder.pid_start,
                                     here=self.ledger.where, probe=self.ledger._probe)  # fmt: skip
                if alive in (Liveness.GONE, Liveness.REUSED):
                    side.replace[host] = lease.id  # a dead holder on this machine
                    retry.append(host)
                elif (holder.claimed, lease.id) > mine and self.clock.monotonic() < deadline:
                    retry.append(host)  # a racing run that yields to this one
                else:
                    raise self._busy(host, err.state)
            if any(h not in side.replace for h in retry):
                self.clock.sleep(0.3)
            outcomes = run_parallel(retry, lambda n: self.backend.console(n).read_flags())
            pending = {}
            for host, outcome in outcomes.items():
                if isinstance(outcome.error, LeaseConflict):
                    pending[host] = outcome.error
                else:
                    out[host] = outcome
        side.op_read = Op.RENEW
        return out

    def _busy(self, host: str, state: HostState) -> FleetBusy:
        return FleetBusy(
            f"{host}: {_holder_text(state)}; this run takes no lease and changes nothing",
            hint="wait for that run to finish (its lease is renewed while it runs), or, if it "
            "is dead, let its lease expire or clear it with `invoke unlock "
            f"{state.lease.id if state.lease else 'LEASE_ID'}`; `invoke rollback --emergency` "
            "takes over a live lease",
        )

    def _announce_takeovers(self) -> None:
        side = self.side
        if side is None:
            return
        for host in self.hosts:
            state = side.states.get(host)
            lease = state.lease if state else None
            if lease is None or lease.previous_id is None or lease.status != "taken":
                continue
            if (host, lease.previous_id) in self._announced:
                continue
            self._announced.add((host, lease.previous_id))
            prev = lease.previous
            who = prev.describe() if prev else "an unknown holder"
            expired = lease.previous_expires < lease.now
            how = (
                f"expired {lease.now - lease.previous_expires:.0f}s ago"
                if expired
                else "taken over"
            )
            self.emit(
                Kind.WARNING,
                f"took over the fleet lease {lease.previous_id} of {who} ({how})",
                host=host,
                previous_lease=lease.previous_id,
                previous_run=prev.run_id if prev else None,
                expired=expired,
            )
            self.ledger.event(self.run.id, "lease.takeover", {
                "host": host, "previous": lease.previous_id,
                "holder": prev.describe() if prev else None, "expired": expired,
            }, host=host)  # fmt: skip

    def release_lease(self) -> None:
        """Give back this run's lease on every host that holds it (at the end of the run);
        a host whose last apply gave it back already (op final) is not called again."""
        side = self.side
        if side is None or side.lease_id is None:
            return
        mine = [
            h
            for h, st in side.states.items()
            if st.lease is not None
            and st.lease.id == side.lease_id
            and st.lease.status in ("taken", "renewed")
        ]

        def give_back(name: str) -> HostState:
            return self.backend.console(name).state_call(Op.RELEASE)  # type: ignore[attr-defined, no-any-return]

        results = run_parallel(mine, give_back)
        for name, outcome in results.items():
            if outcome.error is not None:
                self.emit(
                    Kind.WARNING,
                    f"could not give back the fleet lease ({outcome.error.detail}); it expires "
                    f"within {side.ttl}s",
                    host=name,
                )
        side.forget_lease()


def _holder_text(state: HostState) -> str:
    """Who holds a host's lease now, with its run, command and expiry (shown as data)."""
    lease = state.lease
    if lease is None or lease.id is None:
        return "the lease was removed (`invoke unlock`) and nobody holds it"
    holder = lease.holder
    who = holder.describe() if holder else "an unknown holder"
    ledger = f", ledger {holder.ledger_path}" if holder and holder.ledger_path else ""
    left = lease.expires - lease.now
    when = utc(lease.expires) if lease.expires else "?"
    expiry = f"expires in {left:.0f}s ({when}, host clock)" if left >= 0 else "expired"
    return f"the fleet lease {shown(lease.id)} is held by {who}{ledger}; it {expiry}"


def _lost_lock(ledger: Ledger, lock: LockRecord, holder: LockRecord | None) -> str:
    if holder is None:
        return f"the lock {lock.id} was removed (`invoke unlock`)"
    now = ledger.clock.wall()  # the clock the ledger stamps heartbeats with
    return f"the lock was taken over: {describe(holder, ledger.lock_liveness(holder), now)}"
