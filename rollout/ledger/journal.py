"""The ledger's journal: runs, their events and intents, and reaping the runs that vanished.

An :class:`~rollout.ledger.records.Intent` is written *before* a remote change and settled
*after* it; open intents of a dead run are the evidence an operator (or ``invoke status``)
needs. :meth:`Journal.event`, :meth:`Journal.intent` and :meth:`Journal.settle` are the hot
per-host writes, group-committed (:meth:`~rollout.ledger.core.LedgerCore._grouped`).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace

from ..database import Database, LedgerUnavailable
from ..errors import UsageError
from ..lock import Liveness, pid_liveness, read_holder
from .core import LedgerCore
from .records import (
    _EVENT_COLUMNS,
    _INTENT_COLUMNS,
    _RUN_COLUMNS,
    EventRecord,
    Intent,
    RunRecord,
    RunStatus,
    _dump,
    _event,
    _intent,
    _load,
    _run,
)


class Journal(LedgerCore):
    """Runs, events and intents (a concern of :class:`rollout.ledger.Ledger`)."""

    def _inventory_of(self, conn: Database, run_id: str) -> str:
        """``run_id``'s inventory, cached since a run never changes it; UsageError if unknown."""
        inventory = self._inventories.get(run_id)
        if inventory is None:
            inventory = self._inventories[run_id] = self._get_run(conn, run_id).inventory
        return inventory

    # -- runs and events ------------------------------------------------------------------

    def start_run(
        self, inventory: str, command: str, argv: Sequence[str], reason: str | None = None
    ) -> RunRecord:
        """Record a new RUNNING run by this process; its id is short and unique."""
        pid_start = self._probe(self.pid) or None
        with self._write() as conn:
            now = self.clock.wall()
            stamp = time.strftime("%Y%m%d-%H%M", time.gmtime(now))
            while True:
                run_id = f"r-{stamp}-{secrets.token_hex(2)}"
                if not self._run_exists(conn, run_id):
                    break
            record = RunRecord(
                run_id, inventory, command, tuple(argv), self.who, self.where, self.pid,
                now, None, RunStatus.RUNNING, reason, None,
            )  # fmt: skip
            conn.execute(
                f"INSERT INTO runs ({_RUN_COLUMNS}, pid_start) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id, inventory, command, json.dumps(list(argv)), self.who, self.where,
                    self.pid, now, None, RunStatus.RUNNING.value, reason, None, pid_start,
                ),
            )  # fmt: skip
        self._inventories[run_id] = inventory
        return record

    def finish_run(self, run_id: str, status: RunStatus, summary: str | None = None) -> RunRecord:
        """Close a run with a final status.

        A run already finished cannot be finished again, except one ``reap`` guessed CRASHED
        (its process was on another host and merely looked gone).
        """
        if status is RunStatus.RUNNING:
            raise ValueError("finish_run needs a final status, not RUNNING")
        with self._write() as conn:
            run = self._get_run(conn, run_id)
            if run.status not in (RunStatus.RUNNING, RunStatus.CRASHED):
                raise UsageError(
                    f"run {run_id} already finished as {run.status.value}",
                    hint="see it with `invoke history`; start a new run for new work",
                )
            now = self.clock.wall()
            conn.execute(
                "UPDATE runs SET status = ?, finished = ?, summary = ? WHERE id = ?",
                (status.value, now, summary, run_id),
            )
        return replace(run, status=status, finished=now, summary=summary)

    def event(
        self,
        run_id: str,
        kind: str,
        data: Mapping[str, object] | None = None,
        host: str | None = None,
    ) -> EventRecord:
        """Append an event to ``run_id``'s journal (group-committed; durable on return)."""
        return self._grouped(
            lambda conn: self._add_event(
                conn, self._inventory_of(conn, run_id), run_id, kind, data, host
            )
        )

    def events(self, run_id: str) -> list[EventRecord]:
        """A run's events, oldest first."""
        with self._mutex:
            rows = self._db.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE run_id = ? ORDER BY id", (run_id,)
            ).fetchall()
        return [_event(row) for row in rows]

    def inventory_events(self, inventory: str, kind: str | None = None) -> list[EventRecord]:
        """Every event about ``inventory`` (runs' and inventory-level ones), oldest first."""
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE inventory = ?"
        args: tuple[str, ...] = (inventory,)
        if kind is not None:
            sql, args = sql + " AND kind = ?", (inventory, kind)
        with self._mutex:
            rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        return [_event(row) for row in rows]

    def newest_events(
        self, inventory: str, kind: str, *, since: float = 0.0, chunk: int = 64
    ) -> Iterator[EventRecord]:
        """``inventory``'s ``kind`` events at or after ``since``, newest first, read lazily.

        For the readers that only need the latest few (the soak's last round, the current
        run of breaches): they stop early, so their cost does not grow with the ledger's
        history. Read in chunks; the mutex is not held between them.
        """
        before: int | None = None
        while True:
            sql = (
                f"SELECT {_EVENT_COLUMNS} FROM events"
                " WHERE inventory = ? AND kind = ? AND ts >= ?"
            )
            args: tuple[object, ...] = (inventory, kind, since)
            if before is not None:
                sql, args = sql + " AND id < ?", (*args, before)
            with self._mutex:
                rows = self._db.execute(
                    sql + " ORDER BY id DESC LIMIT ?", (*args, chunk)
                ).fetchall()
            for row in rows:
                yield _event(row)
            if len(rows) < chunk:
                return
            before = int(rows[-1][0])

    def runs(self, inventory: str | None = None, limit: int = 20) -> list[RunRecord]:
        """Recent runs, newest first."""
        where, args = ("WHERE inventory = ?", (inventory, limit)) if inventory else ("", (limit,))
        with self._mutex:
            rows = self._db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs {where}"
                f" ORDER BY started DESC, {self._db.order_column} DESC LIMIT ?",
                args,
            ).fetchall()
        return [_run(row) for row in rows]

    def run(self, run_id: str) -> RunRecord:
        """One run by id; UsageError naming the id if there is none."""
        with self._mutex:
            return self._get_run(self._db, run_id)

    # -- intents --------------------------------------------------------------------------

    def intent(
        self,
        run_id: str,
        host: str,
        action: str,
        target_phase: int | None,
        detail: Mapping[str, object],
    ) -> Intent:
        """Announce a remote change; call BEFORE making it (it is durable on return), then
        :meth:`settle` after. Group-committed like :meth:`event`.

        Refused (:class:`LedgerUnavailable`) once the store was lost during this session
        (connection cut, file deleted): no new change may start that the ledger cannot
        vouch for, even if a reconnect succeeded meanwhile.
        """
        if self._db.lost is not None:
            raise LedgerUnavailable(
                f"{self._db.lost}; {action} on {host} is not started",
                hint="the hosts keep their last verified state; `invoke status` compares them"
                " with the ledger once it is back",
            )
        text = _dump(detail)
        return self._grouped(
            lambda conn: self._insert_intent(conn, run_id, host, action, target_phase, text)
        )

    def _insert_intent(
        self,
        conn: Database,
        run_id: str,
        host: str,
        action: str,
        target_phase: int | None,
        text: str,
    ) -> Intent:
        self._inventory_of(conn, run_id)
        now = self.clock.wall()
        row = conn.execute(
            "INSERT INTO intents (run_id, host, action, target_phase, detail, started)"
            " VALUES (?,?,?,?,?,?) RETURNING id",
            (run_id, host, action, target_phase, text, now),
        ).fetchone()
        return Intent(
            int(row[0]), run_id, host, action, target_phase, _load(text), now,
            None, None,
        )  # fmt: skip

    def settle(
        self, intent_id: int, ok: bool, detail: Mapping[str, object] | None = None
    ) -> Intent:
        """Record the outcome of an announced change (``detail`` goes to ``Intent.result``).

        Group-committed like :meth:`event`.
        """
        text = _dump(detail)
        return self._grouped(lambda conn: self._settle(conn, intent_id, ok, text))

    def _settle(self, conn: Database, intent_id: int, ok: bool, text: str) -> Intent:
        row = conn.execute(
            f"SELECT {_INTENT_COLUMNS} FROM intents WHERE id = ?", (intent_id,)
        ).fetchone()
        if row is None:
            raise UsageError(f"no intent #{intent_id} in the ledger {self.location}")
        intent = _intent(row)
        if intent.finished is not None:
            raise UsageError(
                f"intent #{intent_id} ({intent.action} on {intent.host}) was already settled"
                f" as {'ok' if intent.ok else 'failed'}",
                hint="announce a new intent for a new change",
            )
        now = self.clock.wall()
        conn.execute(
            "UPDATE intents SET finished = ?, ok = ?, result = ? WHERE id = ?",
            (now, int(ok), text, intent_id),
        )
        return replace(intent, finished=now, ok=ok, result=_load(text))

    def open_intents(self, inventory: str) -> list[Intent]:
        """Changes announced but never settled: what a crashed run may have left half-done."""
        with self._mutex:
            rows = self._db.execute(
                f"SELECT {', '.join('i.' + c for c in _INTENT_COLUMNS.split(', '))}"
                " FROM intents i JOIN runs r ON r.id = i.run_id"
                " WHERE r.inventory = ? AND i.finished IS NULL ORDER BY i.id",
                (inventory,),
            ).fetchall()
        return [_intent(row) for row in rows]

    def intents(self, run_id: str) -> list[Intent]:
        """A run's intents, settled or not, oldest first."""
        with self._mutex:
            rows = self._db.execute(
                f"SELECT {_INTENT_COLUMNS} FROM intents WHERE run_id = ? ORDER BY id", (run_id,)
            ).fetchall()
        return [_intent(row) for row in rows]

    # -- crashed runs ---------------------------------------------------------------------

    def _vanished(self, conn: Database, inventory: str) -> list[tuple[RunRecord, str]]:
        holder = read_holder(conn, inventory)
        rows = conn.execute(
            f"SELECT {_RUN_COLUMNS}, pid_start FROM runs WHERE inventory = ? AND status = ?"
            f" ORDER BY started, {self._db.order_column}",
            (inventory, RunStatus.RUNNING.value),
        ).fetchall()
        found = []
        for row in rows:
            run = _run(row)
            state = pid_liveness(run.where, run.pid, row[12], here=self.where, probe=self._probe)
            if state is Liveness.GONE:
                found.append((run, f"pid {run.pid} on {run.where} is gone"))
            elif state is Liveness.REUSED:
                found.append((run, f"pid {run.pid} on {run.where} now belongs to another process"))
            elif state is Liveness.UNKNOWN and (holder is None or holder.run_id != run.id):
                found.append((run, f"run on {run.where} holds no lock on {inventory!r}"))
            elif (
                state is Liveness.UNKNOWN
                and holder is not None
                and self._db.claimed(holder.id) is False
            ):
                found.append((run, f"run on {run.where} lost its database session"))
        return found

    def interrupted_runs(self, inventory: str) -> list[RunRecord]:
        """RUNNING runs whose process is gone (pid dead or reused here; no lock if elsewhere)."""
        with self._read() as conn:
            return [run for run, _ in self._vanished(conn, inventory)]

    def reap(self, inventory: str) -> list[RunRecord]:
        """Mark vanished runs CRASHED; their open intents stay open as evidence."""
        reaped = []
        with self._write() as conn:
            for run, why in self._vanished(conn, inventory):
                now = self.clock.wall()
                summary = run.summary or f"crashed: {why}"
                conn.execute(
                    "UPDATE runs SET status = ?, finished = ?, summary = ? WHERE id = ?",
                    (RunStatus.CRASHED.value, now, summary, run.id),
                )
                self._add_event(
                    conn, inventory, run.id, "run.crashed",
                    {"why": why, "reaped_by": f"{self.who}@{self.where}", "pid": run.pid},
                )  # fmt: skip
                reaped.append(replace(run, status=RunStatus.CRASHED, finished=now, summary=summary))
        return reaped
