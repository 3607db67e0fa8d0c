"""The one-run-per-inventory lock: what a lock is, and whether its holder still lives.

The lock is a row in the ledger's ``locks`` table (one row per inventory, so the primary key
makes "exactly one holder" a database fact). :class:`~rollout.ledger.Ledger` takes and breaks it
inside serialised write transactions; this module holds the record, the row mapping, the
liveness probe and the error an operator sees when the inventory is busy.

On the holder's own host a pid is dead when ``/proc/PID`` is gone (or a zombie), and *reused*
when its start time (``/proc/PID/stat`` field 22) differs from the one recorded at acquisition.
On a SQLite ledger a holder on another host is :attr:`Liveness.UNKNOWN` and is never broken
automatically. On a PostgreSQL ledger the holder's database session proves it alive from
anywhere (see :mod:`rollout.postgres`): :attr:`Liveness.ALIVE` while it lasts,
:attr:`Liveness.ENDED` once the server has dropped it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from .clock import utc
from .database import Cursor
from .errors import LockBusy

#: Returns a process's start time (opaque, comparable for equality) or None if it is not running.
Probe = Callable[[int], str | None]


class Takeover(Enum):
    """Why an acquisition replaced an existing holder."""

    STALE = "stale"  # the holder was on this host and provably dead (pid gone or reused)
    FORCED = "forced"  # ``takeover=True``: emergency rollback breaks any holder


class Liveness(Enum):
    """What can be known about a lock holder's process from here."""

    ALIVE = "alive"
    GONE = "gone"  # no such pid on this host (or a zombie)
    REUSED = "reused"  # the pid runs, but started at another time: a different process
    UNKNOWN = "unknown"  # the holder is on another host (and the store cannot tell)
    ENDED = "ended"  # the holder's database session is gone: it died or lost the database

    @property
    def alive(self) -> bool | None:
        """True/False when decidable on this host, None for another host."""
        if self is Liveness.ALIVE:
            return True
        if self is Liveness.UNKNOWN:
            return None
        return False


@dataclass(frozen=True)
class LockRecord:
    """One holder of an inventory's lock.

    ``takeover`` and ``previous`` are set only on the record :meth:`Ledger.acquire_lock`
    returns, when it replaced an earlier holder (the caller should warn about a stale one).
    """

    id: str
    inventory: str
    run_id: str | None
    who: str
    where: str
    pid: int
    pid_start: str | None
    command: str
    started: float
    heartbeat: float
    takeover: Takeover | None = None
    previous: LockRecord | None = None

    @property
    def stale(self) -> bool:
        """True if acquiring this lock replaced a dead holder on this host."""
        return self.takeover is Takeover.STALE

    def as_data(self) -> dict[str, object]:
        """The holder as a JSON-ready mapping (for journal events)."""
        return {
            "id": self.id,
            "inventory": self.inventory,
            "run_id": self.run_id,
            "who": self.who,
            "where": self.where,
            "pid": self.pid,
            "pid_start": self.pid_start,
            "command": self.command,
            "started": self.started,
            "heartbeat": self.heartbeat,
        }


def process_start(pid: int) -> str | None:
    """The start time of running process ``pid`` (``/proc`` field 22), or None if none runs.

    Zombies count as gone. Without ``/proc`` the start time is unknown (``""``): only the pid
    is checked, so pid reuse goes undetected there.
    """
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return None
    except OSError:
        return _kill_probe(pid)
    # Field 2 (comm) is parenthesised and may itself hold spaces or parentheses.
    fields = raw[raw.rindex(")") + 2 :].split()
    if not fields or fields[0] in ("Z", "X"):  # field 3: state
        return None
    return fields[19]  # field 22: starttime, in clock ticks since boot


def _kill_probe(pid: int) -> str | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # it exists, owned by someone else
        pass
    return ""


def liveness(lock: LockRecord, *, here: str, probe: Probe) -> Liveness:
    """Whether ``lock``'s holder still runs, judged from host ``here``."""
    return pid_liveness(lock.where, lock.pid, lock.pid_start, here=here, probe=probe)


def pid_liveness(
    where: str, pid: int, pid_start: str | None, *, here: str, probe: Probe
) -> Liveness:
    """Whether process ``pid`` (started at ``pid_start``) on host ``where`` still runs."""
    if where != here:
        return Liveness.UNKNOWN
    current = probe(pid)
    if current is None:
        return Liveness.GONE
    if pid_start and current and current != pid_start:
        return Liveness.REUSED
    return Liveness.ALIVE


def describe(lock: LockRecord, state: Liveness, now: float) -> str:
    """One line naming the holder: id, who, where, pid, command, since when, and liveness."""
    run = f", run {lock.run_id}" if lock.run_id else ""
    if state is Liveness.ALIVE:
        verdict = "holder is alive"
    elif state is Liveness.GONE:
        verdict = f"holder is dead (pid {lock.pid} is gone)"
    elif state is Liveness.REUSED:
        verdict = f"holder is dead (pid {lock.pid} now belongs to another process)"
    elif state is Liveness.ENDED:
        verdict = "holder is dead (its database session ended: killed, or cut off)"
    else:
        verdict = f"holder is on another host ({lock.where}); cannot tell whether it is alive"
    return (
        f"{lock.id} held by {lock.who}@{lock.where} (pid {lock.pid}) for `{lock.command}`{run}"
        f" since {utc(lock.started)}, last heartbeat {max(0.0, now - lock.heartbeat):.0f}s ago;"
        f" {verdict}"
    )


class LockHeld(LockBusy):
    """The inventory's lock is held by another run; carries the holder and its liveness."""

    def __init__(
        self,
        inventory: str,
        holder: LockRecord,
        state: Liveness,
        now: float,
        *,
        waited: float = 0.0,
    ) -> None:
        after = f" (still held after waiting {waited:g}s)" if waited > 0 else ""
        super().__init__(
            f"inventory {inventory!r} is locked{after}: {describe(holder, state, now)}",
            hint=f"wait for it to finish, or if it is dead: invoke unlock {holder.id}",
        )
        self.inventory = inventory
        self.holder = holder
        self.liveness = state


# Row mapping. The ``locks`` table itself is created by the ledger's schema migrations.


class Executes(Protocol):
    """Anything that runs a ``?``-placeholder statement (a :class:`~rollout.database.Database`)."""

    def execute(self, sql: str, params: Sequence[object] = ...) -> Cursor: ...


_COLUMNS = "id, inventory, run_id, who, origin, pid, pid_start, command, started, heartbeat"


def read_holder(conn: Executes, inventory: str) -> LockRecord | None:
    """The current holder of ``inventory``'s lock, or None."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM locks WHERE inventory = ?", (inventory,)).fetchone()
    if row is None:
        return None
    return LockRecord(
        id=row[0],
        inventory=row[1],
        run_id=row[2],
        who=row[3],
        where=row[4],
        pid=row[5],
        pid_start=row[6],
        command=row[7],
        started=row[8],
        heartbeat=row[9],
    )


def insert_holder(conn: Executes, lock: LockRecord) -> None:
    """Record ``lock`` as the holder; fails (IntegrityError) if the inventory is held."""
    conn.execute(
        f"INSERT INTO locks ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            lock.id,
            lock.inventory,
            lock.run_id,
            lock.who,
            lock.where,
            lock.pid,
            lock.pid_start,
            lock.command,
            lock.started,
            lock.heartbeat,
        ),
    )


def delete_holder(conn: Executes, inventory: str, lock_id: str) -> bool:
    """Remove the holder if its id is still ``lock_id``; True if a row went."""
    cur = conn.execute("DELETE FROM locks WHERE inventory = ? AND id = ?", (inventory, lock_id))
    return cur.rowcount > 0


def touch_holder(conn: Executes, inventory: str, lock_id: str, now: float) -> bool:
    """Refresh the heartbeat if ``lock_id`` still holds; True if it does."""
    cur = conn.execute(
        "UPDATE locks SET heartbeat = ? WHERE inventory = ? AND id = ?", (now, inventory, lock_id)
    )
    return cur.rowcount > 0
