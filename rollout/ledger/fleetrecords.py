"""The ledger's side of the fleet's records (:mod:`rollout.fleetstate`): its identity, the
ledgers it continues, and the other ledgers' host records adopted here."""

from __future__ import annotations

from collections.abc import Mapping

from .core import LedgerCore


class FleetRecords(LedgerCore):
    """This ledger's id and what it knows of others' (a concern of
    :class:`rollout.ledger.Ledger`)."""

    # -- the fleet's records (rollout.fleetstate) -----------------------------------------

    @property
    def identity(self) -> str:
        """This ledger's id, written into every fleet record and lease it makes."""
        with self._mutex:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'ledger_id'").fetchone()
        return str(row[0])

    def continued_ledgers(self) -> frozenset[str]:
        """The ledgers whose history was copied into this one (`invoke ledger.copy`).

        A host record written by one of their runs that was copied here is this ledger's own
        history: it is known without `invoke adopt`. Their later runs are not.
        """
        with self._mutex:
            rows = self._db.execute(
                "SELECT key FROM meta WHERE key LIKE 'continues:%'"
            ).fetchall()
        return frozenset(str(key).split(":", 1)[1] for (key,) in rows)

    def has_run(self, run_id: str) -> bool:
        """Whether this ledger holds the run ``run_id`` (its own, or copied in)."""
        with self._mutex:
            row = self._db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone()
        return row is not None

    def known_generations(self, inventory: str) -> dict[str, int]:
        """Per host, the newest generation of another ledger's record adopted here."""
        with self._mutex:
            rows = self._db.execute(
                "SELECT host, generation FROM fleet_known WHERE inventory = ?", (inventory,)
            ).fetchall()
        return {str(host): int(gen) for host, gen in rows}

    def adopt(
        self, inventory: str, records: Mapping[str, tuple[int, str, str]], run_id: str | None
    ) -> None:
        """Record that the fleet's records (host -> generation, run, ledger) are known here."""
        with self._write() as conn:
            now = self.clock.wall()
            for host, (generation, their_run, their_ledger) in records.items():
                conn.execute(
                    "INSERT INTO fleet_known (inventory, host, generation, run_id, ledger, adopted)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (inventory, host) DO UPDATE SET"
                    " generation = excluded.generation, run_id = excluded.run_id,"
                    " ledger = excluded.ledger, adopted = excluded.adopted",
                    (inventory, host, generation, their_run, their_ledger, now),
                )
            self._add_event(
                conn, inventory, run_id, "fleet.adopted",
                {h: {"generation": g, "run": r, "ledger": lg}
                 for h, (g, r, lg) in records.items()},
            )  # fmt: skip
