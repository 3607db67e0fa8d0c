"""Taking, keeping and breaking an inventory's lock through the ledger.

The lock's record and the SQL that reads and writes it are :mod:`rollout.lock`; here the
ledger decides in one write transaction whether a holder is alive, replaces a dead one,
journals takeovers and unlocks, and proves a holder still holds it (:meth:`Locking.heartbeat`).
"""

from __future__ import annotations

import secrets
from dataclasses import replace

from ..database import Database, LedgerUnavailable
from ..errors import LockBusy, UsageError
from ..lock import (
    Liveness,
    LockHeld,
    LockRecord,
    Takeover,
    delete_holder,
    describe,
    insert_holder,
    liveness,
    read_holder,
    touch_holder,
)
from .core import LedgerCore


class Locking(LedgerCore):
    """The inventory lock (a concern of :class:`rollout.ledger.Ledger`)."""

    # -- the lock -------------------------------------------------------------------------

    def lock_liveness(self, lock: LockRecord) -> Liveness:
        """Whether ``lock``'s holder still runs, as far as this host and the store can tell.

        On this host the pid decides (gone or reused: dead). Where the store keeps the
        holder's session (PostgreSQL), a session the server has dropped is ENDED and a live
        one on another host is ALIVE; on SQLite another host's holder stays UNKNOWN.
        """
        with self._mutex:
            state = liveness(lock, here=self.where, probe=self._probe)
            if state in (Liveness.GONE, Liveness.REUSED):
                return state
            claimed = self._db.claimed(lock.id)
        if claimed is False:
            return Liveness.ENDED
        if claimed is True:
            return Liveness.ALIVE
        return state

    def holder_alive(self, lock: LockRecord) -> bool | None:
        """True/False for a holder on this host (pid and start time), None for another host."""
        return self.lock_liveness(lock).alive

    def holder(self, inventory: str) -> LockRecord | None:
        """Who holds ``inventory``'s lock now, if anyone."""
        with self._mutex:
            return read_holder(self._db, inventory)

    def acquire_lock(
        self,
        inventory: str,
        command: str,
        run_id: str | None = None,
        *,
        wait: float = 0.0,
        poll: float = 0.2,
        takeover: bool = False,
    ) -> LockRecord:
        """Take ``inventory``'s lock, or raise :class:`LockHeld` (a ``LockBusy``).

        A dead holder on this host is replaced (the result's ``stale`` is True, and a
        ``lock.takeover`` event is journaled); a holder elsewhere only yields to ``unlock`` or
        ``takeover=True``. With ``wait > 0`` it polls every ``poll`` seconds until then
        (the ledger's clock: its wall time and its sleep).
        """
        if wait > 0 and poll <= 0:
            raise ValueError("poll must be > 0 when waiting for a lock")
        deadline = self.clock.wall() + wait
        while True:
            try:
                return self._try_lock(inventory, command, run_id, takeover)
            except LockHeld as busy:
                remaining = deadline - self.clock.wall()
                if remaining <= 0:
                    if wait <= 0:
                        raise
                    raise LockHeld(
                        inventory, busy.holder, busy.liveness, self.clock.wall(), waited=wait
                    ) from None
                self.clock.sleep(min(poll, remaining))

    def _try_lock(
        self, inventory: str, command: str, run_id: str | None, takeover: bool
    ) -> LockRecord:
        pid_start = self._probe(self.pid) or None
        with self._write() as conn:
            if run_id is not None and self._get_run(conn, run_id).inventory != inventory:
                raise UsageError(f"run {run_id} is not a run against inventory {inventory!r}")
            now = self.clock.wall()
            mine = LockRecord(
                "lk-" + secrets.token_hex(6), inventory, run_id, self.who, self.where, self.pid,
                pid_start, command, now, now,
            )  # fmt: skip
            held = read_holder(conn, inventory)
            if held is None:
                insert_holder(conn, mine)
                conn.claim(mine.id)
                return mine
            state = self.lock_liveness(held)
            if takeover:
                why = Takeover.FORCED
            elif state in (Liveness.GONE, Liveness.REUSED, Liveness.ENDED):
                why = Takeover.STALE
            else:
                raise LockHeld(inventory, held, state, now)
            delete_holder(conn, inventory, held.id)
            insert_holder(conn, mine)
            conn.claim(mine.id)
            data: dict[str, object] = {
                "reason": why.value,
                "liveness": state.value,
                "lock": mine.id,
                "previous": held.as_data(),
                "by": f"{self.who}@{self.where}",
            }
            self._add_event(conn, inventory, run_id, "lock.takeover", data)
            self._note_lost(conn, held, data)
            return replace(mine, takeover=why, previous=held)

    def _note_lost(
        self, conn: Database, held: LockRecord, data: dict[str, object]
    ) -> None:
        """Tell the previous holder's run (if journaled) that it lost the lock."""
        if held.run_id is not None and self._run_exists(conn, held.run_id):
            self._add_event(conn, held.inventory, held.run_id, "lock.lost", data)

    def release_lock(self, lock: LockRecord) -> None:
        """Give the lock back; a no-op if it was taken over or unlocked meanwhile."""
        try:
            with self._write() as conn:
                delete_holder(conn, lock.inventory, lock.id)
        finally:
            self._db.unclaim(lock.id)

    def heartbeat(self, lock: LockRecord) -> None:
        """Show the lock's holder is alive; raises LockBusy if the lock was taken over or
        unlocked, and LedgerUnavailable (not "busy": nobody else holds it) if the ledger itself
        went away (the database connection that proved the holder alive, or the file)."""
        with self._write() as conn:
            if not conn.holds(lock.id):
                raise LedgerUnavailable(
                    f"{conn.lost or f'the ledger {self.location} no longer sees this session'}"
                    f"; the lock {lock.id} on inventory {lock.inventory!r} cannot be proved held,"
                    " so no further host is changed",
                    hint="the hosts keep the last verified state; once the ledger is back, "
                    "`invoke status` compares them with the ledger",
                )
            if touch_holder(conn, lock.inventory, lock.id, self.clock.wall()):
                return
            now_holder = read_holder(conn, lock.inventory)
        taken = (
            f"taken over: {describe(now_holder, self.lock_liveness(now_holder), self.clock.wall())}"
            if now_holder
            else "unlocked and is free"
        )
        raise LockBusy(
            f"lost the lock {lock.id} on inventory {lock.inventory!r}; it was {taken}",
            hint="stop changing hosts; see who took it with `invoke history`",
        )

    def unlock(self, inventory: str, lock_id: str) -> LockRecord:
        """Break ``inventory``'s lock; needs the holder's exact id. Returns the removed holder."""
        with self._write() as conn:
            held = read_holder(conn, inventory)
            now = self.clock.wall()
            if held is None:
                raise UsageError(f"inventory {inventory!r} is not locked", hint="nothing to unlock")
            if held.id != lock_id:
                raise UsageError(
                    f"inventory {inventory!r} is not locked by {lock_id}; it is locked by"
                    f" {describe(held, self.lock_liveness(held), now)}",
                    hint=f"check the holder; to break it anyway: invoke unlock {held.id}",
                )
            delete_holder(conn, inventory, held.id)
            data: dict[str, object] = {
                "liveness": self.lock_liveness(held).value,
                "previous": held.as_data(),
                "by": f"{self.who}@{self.where}",
            }
            self._add_event(conn, inventory, None, "lock.unlocked", data)
            self._note_lost(conn, held, data)
        return held
