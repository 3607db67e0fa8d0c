"""Copy one ledger's history into another: a SQLite file's into the team's PostgreSQL ledger.

What is copied: every run (its id kept) with its events and intents, inventory-level events
(unlocks, pauses, approvals), each inventory's phase/soak/pause row, the approvals and the
fleet records the source had adopted. The destination also records that it continues the
source: the hosts' records written by the copied runs are known to it without `invoke adopt`
(records of the source's later runs are not, until they are copied too). The
copy is idempotent: a run already in the destination is skipped with everything it owns, an
inventory row the destination already has is kept as it is there (the destination's state is
the newer truth), inventory-level events and approvals already present (same inventory, time,
kind, payload) are not duplicated. Locks are never copied; a source with a held lock (a run
in progress) is refused. The whole copy is one destination transaction: all or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from .database import Database
from .errors import UsageError
from .ledger import Ledger
from .lock import read_holder

_RUN = (
    "id, inventory, command, argv, who, origin, pid, pid_start, started, finished, status,"
    " reason, summary"
)
_INVENTORY = (
    "inventory, phase, phase_run_id, phase_changed, phase_epoch, soak_phase, soak_required,"
    " soak_counted, soak_updated, paused, paused_by, paused_reason, paused_at"
)


@dataclass(frozen=True)
class CopyReport:
    """What a copy did, for the operator (counts of rows added; skipped runs already there)."""

    source: str
    destination: str
    runs: int
    skipped_runs: int
    events: int
    intents: int
    inventories: int
    approvals: int

    def summary(self) -> str:
        return (
            f"copied {self.runs} run(s) ({self.events} events, {self.intents} intents),"
            f" {self.inventories} inventory record(s) and {self.approvals} approval(s)"
            f" from {self.source} to {self.destination}; {self.skipped_runs} run(s) were"
            " already there"
        )


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def copy_history(source: Ledger, destination: Ledger) -> CopyReport:
    """Copy ``source``'s history into ``destination`` (idempotent; run ids kept)."""
    if source.location == destination.location:
        raise UsageError(f"source and destination are the same ledger ({source.location})")
    src: Database = source._db
    with source._read():
        runs = src.execute(f"SELECT {_RUN} FROM runs ORDER BY started, {src.order_column}")
        run_rows = runs.fetchall()
        held = [
            lock
            for (inventory,) in src.execute("SELECT DISTINCT inventory FROM locks").fetchall()
            if (lock := read_holder(src, inventory)) is not None
        ]
        if held:
            raise UsageError(
                f"{source.location} has a run in progress (lock {held[0].id} on"
                f" {held[0].inventory!r}, {held[0].who}@{held[0].where}): copy a quiet ledger",
                hint="wait for it to finish (or `invoke unlock` a dead one), then copy again",
            )
        events = src.execute(
            "SELECT run_id, inventory, ts, kind, host, data FROM events ORDER BY id"
        ).fetchall()
        intents = src.execute(
            "SELECT run_id, host, action, target_phase, detail, started, finished, ok, result"
            " FROM intents ORDER BY id"
        ).fetchall()
        inventories = src.execute(f"SELECT {_INVENTORY} FROM inventories").fetchall()
        approvals = src.execute(
            "SELECT inventory, phase, epoch, who, note, ts FROM approvals ORDER BY id"
        ).fetchall()
        adopted = src.execute(
            "SELECT inventory, host, generation, run_id, ledger, adopted FROM fleet_known"
        ).fetchall()
        continues = [source.identity] + [
            key.split(":", 1)[1]
            for (key,) in src.execute(
                "SELECT key FROM meta WHERE key LIKE 'continues:%'"
            ).fetchall()
        ]
    counts = dict.fromkeys(("runs", "skipped", "events", "intents", "inv", "approvals"), 0)
    with destination._write() as dst:
        new_runs: set[str] = set()
        for row in run_rows:
            cur = dst.execute(
                f"INSERT INTO runs ({_RUN}) VALUES ({_marks(13)}) ON CONFLICT DO NOTHING", row
            )
            if cur.rowcount:
                new_runs.add(row[0])
        counts["runs"], counts["skipped"] = len(new_runs), len(run_rows) - len(new_runs)
        for ev in events:
            if ev[0] is None:  # inventory-level: copy unless the same entry is there
                if dst.execute(
                    "SELECT 1 FROM events WHERE run_id IS NULL AND inventory = ? AND ts = ?"
                    " AND kind = ? AND data = ?",
                    (ev[1], ev[2], ev[3], ev[5]),
                ).fetchone():
                    continue
            elif ev[0] not in new_runs:
                continue
            dst.execute(
                "INSERT INTO events (run_id, inventory, ts, kind, host, data)"
                f" VALUES ({_marks(6)})",
                ev,
            )
            counts["events"] += 1
        for it in intents:
            if it[0] in new_runs:
                dst.execute(
                    "INSERT INTO intents (run_id, host, action, target_phase, detail, started,"
                    f" finished, ok, result) VALUES ({_marks(9)})",
                    it,
                )
                counts["intents"] += 1
        for inv in inventories:
            cur = dst.execute(
                f"INSERT INTO inventories ({_INVENTORY}) VALUES ({_marks(13)})"
                " ON CONFLICT DO NOTHING",
                inv,
            )
            counts["inv"] += cur.rowcount
        for ap in approvals:
            if not dst.execute(
                "SELECT 1 FROM approvals WHERE inventory = ? AND phase = ? AND who = ? AND ts = ?",
                (ap[0], ap[1], ap[3], ap[5]),
            ).fetchone():
                dst.execute(
                    "INSERT INTO approvals (inventory, phase, epoch, who, note, ts)"
                    f" VALUES ({_marks(6)})",
                    ap,
                )
                counts["approvals"] += 1
        # The hosts' records written by the copied runs are this ledger's own history now
        # (fleetrecord.Knowledge); the records the source had adopted stay adopted.
        for ledger_id in continues:
            if ledger_id != destination.identity:
                dst.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (f"continues:{ledger_id}", source.location),
                )
        for row in adopted:
            dst.execute(
                "INSERT INTO fleet_known (inventory, host, generation, run_id, ledger, adopted)"
                f" VALUES ({_marks(6)}) ON CONFLICT (inventory, host) DO UPDATE SET"
                " generation = excluded.generation, run_id = excluded.run_id,"
                " ledger = excluded.ledger, adopted = excluded.adopted"
                " WHERE fleet_known.generation < excluded.generation",
                row,
            )
    return CopyReport(
        source.location, destination.location, counts["runs"], counts["skipped"],
        counts["events"], counts["intents"], counts["inv"], counts["approvals"],
    )  # fmt: skip
