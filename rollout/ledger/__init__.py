"""The durable journal: runs, events, intents, the current phase, the soak window and the lock.

Everything lives in one SQLite file (by default ``.rollout/ledger.db``, resolved by the
caller) in WAL mode with ``synchronous=FULL``. Every write is committed before the method
returns, so after a SIGKILL the file shows exactly what was in flight: an :class:`Intent` is
written *before* a remote change and settled *after* it; open intents of a dead run are the
evidence an operator (or ``invoke status``) needs. Read-decide-write steps (the lock, soak
counting, reaping) run inside ``BEGIN IMMEDIATE``, so concurrent processes serialise on the
database's write lock. The hot per-host writes (:meth:`Ledger.event`, :meth:`Ledger.intent`,
:meth:`Ledger.settle`) are *group-committed*: concurrent callers' writes share one transaction
(one fsync), each in its own savepoint, and every caller still returns only after its own row
is committed. See ``docs/ledger.md`` for the schema.

One :class:`Ledger` composes the concerns, each a module of this package: :mod:`.core` (the
connection, migrations and transactions, group commit included), :mod:`.journal` (runs, events,
intents, reaping), :mod:`.state` (phase, soak, pause, approvals, waves), :mod:`.fleetrecords`
(the ledger's identity and adopted host records) and :mod:`.locking` (the inventory lock; its
record is :mod:`rollout.lock`). :mod:`.records` holds the frozen values they return.
"""

from __future__ import annotations

from pathlib import Path

from ..clock import SYSTEM, Clock
from ..lock import LockRecord, Probe, process_start
from .core import MIGRATIONS, SCHEMA_VERSION, migrate
from .fleetrecords import FleetRecords
from .journal import Journal
from .locking import Locking
from .records import (
    Approval,
    EventRecord,
    Intent,
    InventoryState,
    RunRecord,
    RunStatus,
    WaveRecord,
)
from .state import StateRecords

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Approval",
    "EventRecord",
    "Intent",
    "InventoryState",
    "Ledger",
    "LockRecord",
    "RunRecord",
    "RunStatus",
    "WaveRecord",
    "migrate",
    "open_ledger",
]


class Ledger(Journal, StateRecords, FleetRecords, Locking):
    """The journal, phase, soak window and lock of every inventory, in one store.

    ``target`` is a SQLite file path or a ``postgresql://`` URI (see :func:`open_ledger`);
    everything above the :class:`~rollout.database.Database` seam is the same for both.
    """


def open_ledger(
    target: str | Path,
    *,
    clock: Clock = SYSTEM,
    who: str | None = None,
    where: str | None = None,
    pid: int | None = None,
    probe: Probe = process_start,
    group_commit: bool = True,
) -> Ledger:
    """The ledger ``target`` names: a ``postgresql://`` (or ``postgres://``) libpq URI for a
    team's shared server, anything else a SQLite file path. Every command opens it here."""
    return Ledger(
        target, clock=clock, who=who, where=where, pid=pid, probe=probe,
        group_commit=group_commit,
    )  # fmt: skip
