"""An inventory's recorded state: its phase, soak window, pause, approvals and waves.

Read-decide-write steps (soak counting, a wave and its phase) run in one write transaction
(``BEGIN IMMEDIATE`` on SQLite), so concurrent controllers serialise on the store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from ..database import Database
from ..errors import UsageError
from .core import LedgerCore
from .records import _WAVE_COLUMNS, Approval, InventoryState, WaveRecord, _dump, _wave


class StateRecords(LedgerCore):
    """Phase, soak, pause, approvals and waves (a concern of :class:`rollout.ledger.Ledger`)."""

    # -- phase, soak, pause, approvals ----------------------------------------------------

    _STATE_COLUMNS = (
        "phase, phase_run_id, phase_changed, soak_phase, soak_required, soak_counted,"
        " soak_updated, paused, paused_by, paused_reason"
    )

    def _state(self, conn: Database, inventory: str) -> InventoryState:
        row = conn.execute(
            f"SELECT {self._STATE_COLUMNS} FROM inventories WHERE inventory = ?", (inventory,)
        ).fetchone()
        if row is None:
            return InventoryState(
                inventory, None, None, None, None, 0.0, 0.0, None, False, False, None, None
            )
        return InventoryState(
            inventory=inventory,
            phase=row[0],
            phase_run_id=row[1],
            phase_changed=row[2],
            soak_phase=row[3],
            soak_required=row[4],
            soak_counted=row[5],
            soak_updated=row[6],
            soak_complete=row[3] is not None and row[5] >= row[4],
            paused=bool(row[7]),
            paused_by=row[8],
            paused_reason=row[9],
        )

    def _ensure_inventory(self, conn: Database, inventory: str) -> None:
        conn.execute(
            "INSERT INTO inventories (inventory) VALUES (?) ON CONFLICT DO NOTHING", (inventory,)
        )

    def state(self, inventory: str) -> InventoryState:
        """The recorded phase, soak window and pause of ``inventory`` (defaults if unknown)."""
        with self._mutex:
            return self._state(self._db, inventory)

    def set_phase(
        self, inventory: str, phase: int, run_id: str, *, soak_required: float
    ) -> InventoryState:
        """Record that the fleet is at ``phase`` and restart the soak window at zero."""
        if phase < 0 or soak_required < 0:
            raise ValueError(f"phase ({phase}) and soak_required ({soak_required}) must be >= 0")
        with self._write() as conn:
            run = self._get_run(conn, run_id)
            if run.inventory != inventory:
                raise UsageError(
                    f"run {run_id} belongs to inventory {run.inventory!r}, not {inventory!r}"
                )
            self._set_phase(conn, inventory, phase, run_id, soak_required)
            return self._state(conn, inventory)

    def _set_phase(
        self, conn: Database, inventory: str, phase: int, run_id: str, soak_required: float,
        wave: int | None = None,
    ) -> None:  # fmt: skip
        before = self._state(conn, inventory)
        self._ensure_inventory(conn, inventory)
        now = self.clock.wall()
        conn.execute(
            "UPDATE inventories SET phase = ?, phase_run_id = ?, phase_changed = ?,"
            " phase_epoch = phase_epoch + 1, soak_phase = ?, soak_required = ?,"
            " soak_counted = 0, soak_updated = ? WHERE inventory = ?",
            (phase, run_id, now, phase, float(soak_required), now, inventory),
        )
        data: dict[str, object] = {"from": before.phase, "to": phase,
                                   "soak_required": soak_required}  # fmt: skip
        if wave is not None:
            data["wave"] = wave
        self._add_event(conn, inventory, run_id, "phase.set", data)

    def set_soak_required(self, inventory: str, seconds: float, run_id: str) -> InventoryState:
        """Change how long the current phase must soak (``--soak``); counted time is kept."""
        if seconds < 0:
            raise ValueError(f"soak seconds must be >= 0, got {seconds}")
        with self._write() as conn:
            before = self._state(conn, inventory)
            if before.soak_phase is None:
                raise UsageError(f"inventory {inventory!r} has no deployed phase to soak")
            conn.execute(
                "UPDATE inventories SET soak_required = ?,"
                " soak_counted = CASE WHEN soak_counted < ? THEN soak_counted ELSE ? END"
                " WHERE inventory = ?",
                (float(seconds), float(seconds), float(seconds), inventory),
            )
            self._add_event(
                conn, inventory, run_id, "soak.required",
                {"from": before.soak_required, "to": seconds},
            )  # fmt: skip
            return self._state(conn, inventory)

    def count_soak(
        self, inventory: str, seconds: float, *, phase: int | None = None
    ) -> InventoryState:
        """Add healthy soak seconds, clamped to the requirement; complete once reached.

        Pass ``phase`` to refuse counting if another run changed the phase meanwhile.
        """
        if seconds < 0:
            raise ValueError(f"soak seconds must be >= 0, got {seconds}")
        with self._write() as conn:
            state = self._state(conn, inventory)
            if state.soak_phase is None:
                raise UsageError(
                    f"inventory {inventory!r} has no deployed phase to soak",
                    hint="deploy a phase first: invoke deploy --phase 1",
                )
            if phase is not None and phase != state.soak_phase:
                raise UsageError(
                    f"inventory {inventory!r} is soaking phase {state.soak_phase}, not {phase}"
                    f" (changed by run {state.phase_run_id})",
                    hint="see what changed with `invoke history`",
                )
            counted = min(state.soak_required, state.soak_counted + seconds)
            conn.execute(
                "UPDATE inventories SET soak_counted = ?, soak_updated = ? WHERE inventory = ?",
                (counted, self.clock.wall(), inventory),
            )
            return self._state(conn, inventory)

    def set_paused(
        self, inventory: str, paused: bool, who: str, reason: str | None
    ) -> InventoryState:
        """Pause (or resume) rollouts of ``inventory``; recorded as an inventory event."""
        with self._write() as conn:
            self._ensure_inventory(conn, inventory)
            now = self.clock.wall()
            conn.execute(
                "UPDATE inventories SET paused = ?, paused_by = ?, paused_reason = ?,"
                " paused_at = ? WHERE inventory = ?",
                (int(paused), who if paused else None, reason if paused else None,
                 now if paused else None, inventory),
            )  # fmt: skip
            kind = "inventory.paused" if paused else "inventory.resumed"
            self._add_event(conn, inventory, None, kind, {"who": who, "reason": reason})
            return self._state(conn, inventory)

    def approve(self, inventory: str, phase: int, who: str, note: str | None) -> None:
        """Record ``who``'s approval of ``phase``; it lapses at the next phase change."""
        with self._write() as conn:
            self._ensure_inventory(conn, inventory)
            now = self.clock.wall()
            conn.execute(
                "INSERT INTO approvals (inventory, phase, epoch, who, note, ts)"
                " SELECT inventory, ?, phase_epoch, ?, ?, ? FROM inventories WHERE inventory = ?",
                (phase, who, note, now, inventory),
            )
            self._add_event(
                conn, inventory, None, "phase.approved", {"phase": phase, "who": who, "note": note}
            )

    def approvals(self, inventory: str, phase: int) -> list[Approval]:
        """Approvals of ``phase`` recorded since the inventory's latest phase change."""
        with self._mutex:
            rows = self._db.execute(
                "SELECT a.id, a.inventory, a.phase, a.who, a.note, a.ts FROM approvals a"
                " JOIN inventories i ON i.inventory = a.inventory AND i.phase_epoch = a.epoch"
                " WHERE a.inventory = ? AND a.phase = ? ORDER BY a.id",
                (inventory, phase),
            ).fetchall()
        return [Approval(*row) for row in rows]

    # -- waves (rollout.waves) ------------------------------------------------------------

    def start_wave(
        self,
        inventory: str,
        run_id: str,
        *,
        phase: int,
        from_phase: int,
        index: int,
        total: int,
        hosts: Sequence[str],
        canary: Sequence[str],
        soak: float,
    ) -> WaveRecord:
        """Record that ``run_id`` applied wave ``index`` of ``phase`` (verified), and, in the
        same transaction, that the inventory is at ``phase`` with this wave's soak to serve:
        no crash can leave the phase recorded without the wave that says which hosts have it."""
        with self._write() as conn:
            run = self._get_run(conn, run_id)
            if run.inventory != inventory:
                raise UsageError(
                    f"run {run_id} belongs to inventory {run.inventory!r}, not {inventory!r}"
                )
            self._set_phase(conn, inventory, phase, run_id, soak, wave=index)
            now = self.clock.wall()
            row = conn.execute(
                "INSERT INTO waves (inventory, run_id, phase, from_phase, idx, total, hosts,"
                " canary, soak, started) VALUES (?,?,?,?,?,?,?,?,?,?) RETURNING id",
                (inventory, run_id, phase, from_phase, index, total, json.dumps(list(hosts)),
                 json.dumps(list(canary)), float(soak), now),
            ).fetchone()  # fmt: skip
            self._add_event(conn, inventory, run_id, "wave.started",
                            {"phase": phase, "wave": index, "total": total,
                             "hosts": list(hosts)})  # fmt: skip
            return self._get_wave(conn, int(row[0]))

    def finish_wave(
        self, wave_id: int, verdict: str, judgement: Mapping[str, object] | None = None
    ) -> WaveRecord:
        """Record a wave's verdict and the judgement behind it (once: a verdict is final)."""
        with self._write() as conn:
            conn.execute(
                "UPDATE waves SET finished = ?, verdict = ?, judgement = ?"
                " WHERE id = ? AND verdict IS NULL",
                (self.clock.wall(), verdict, _dump(judgement), wave_id),
            )
            return self._get_wave(conn, wave_id)

    def _get_wave(self, conn: Database, wave_id: int) -> WaveRecord:
        row = conn.execute(f"SELECT {_WAVE_COLUMNS} FROM waves WHERE id = ?", (wave_id,))
        return _wave(row.fetchone())

    def waves(self, inventory: str, *, run_id: str | None = None) -> list[WaveRecord]:
        """The inventory's waves, oldest first (only those ``run_id`` applied, if given)."""
        query = f"SELECT {_WAVE_COLUMNS} FROM waves WHERE inventory = ?"
        params: tuple[object, ...] = (inventory,)
        if run_id is not None:
            query += " AND run_id = ?"
            params = (inventory, run_id)
        with self._mutex:
            rows = self._db.execute(query + " ORDER BY id", params).fetchall()
        return [_wave(row) for row in rows]

    def run_waves(self, run_id: str) -> list[WaveRecord]:
        """The waves a run applied or judged (its own, and those whose soak it finished)."""
        with self._mutex:
            rows = self._db.execute(
                f"SELECT {_WAVE_COLUMNS} FROM waves WHERE run_id = ? ORDER BY id", (run_id,)
            ).fetchall()
        return [_wave(row) for row in rows]

    def latest_wave(self, inventory: str) -> WaveRecord | None:
        with self._mutex:
            row = self._db.execute(
                f"SELECT {_WAVE_COLUMNS} FROM waves WHERE inventory = ? ORDER BY id DESC LIMIT 1",
                (inventory,),
            ).fetchone()
        return None if row is None else _wave(row)
