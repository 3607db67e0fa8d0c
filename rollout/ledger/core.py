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
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from .. import schema
from ..database import (
    Database,
    LedgerError,
    LedgerUnavailable,
    SQLiteDatabase,
    open_database,
)
from ..errors import LockBusy, UsageError
from ..lock import (
    Liveness,
    LockHeld,
    LockRecord,
    Probe,
    Takeover,
    delete_holder,
    describe,
    insert_holder,
    liveness,
    pid_liveness,
    process_start,
    read_holder,
    touch_holder,
)

__all__ = [
    "SCHEMA_VERSION",
    "Approval",
    "EventRecord",
    "Intent",
    "InventoryState",
    "Ledger",
    "LockRecord",
    "RunRecord",
    "RunStatus",
    "migrate",
    "open_ledger",
]

_T = TypeVar("_T")
_Op = Callable[[Database], _T]
migrate = schema.migrate

#: The SQLite schema's migrations (PostgreSQL's are in :mod:`rollout.schema`).
MIGRATIONS = schema.SQLITE
SCHEMA_VERSION = schema.VERSION


class RunStatus(Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    INTERRUPTED = "interrupted"  # a signal stopped it after settling the current step
    CRASHED = "crashed"  # its process vanished without finishing (set by ``reap``)
    REFUSED = "refused"  # a gate, confirmation or the lock turned it away


@dataclass(frozen=True)
class RunRecord:
    """One invocation of a mutating command against one inventory."""

    id: str
    inventory: str
    command: str
    argv: tuple[str, ...]
    who: str
    where: str
    pid: int
    started: float
    finished: float | None
    status: RunStatus
    reason: str | None
    summary: str | None


@dataclass(frozen=True)
class EventRecord:
    """One journal entry. ``run_id`` is None for inventory-level events (unlock, pause...)."""

    id: int
    run_id: str | None
    ts: float
    kind: str
    host: str | None
    data: dict[str, object]
    inventory: str = ""


@dataclass(frozen=True)
class Intent:
    """A remote change announced before it was made; ``finished``/``ok`` once settled."""

    id: int
    run_id: str
    host: str
    action: str
    target_phase: int | None
    detail: dict[str, object]
    started: float
    finished: float | None
    ok: bool | None
    result: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class InventoryState:
    """The inventory's recorded phase, its soak window and whether it is paused."""

    inventory: str
    phase: int | None  # None: never deployed
    phase_run_id: str | None
    phase_changed: float | None
    soak_phase: int | None
    soak_required: float
    soak_counted: float
    soak_updated: float | None
    soak_complete: bool
    paused: bool
    paused_by: str | None
    paused_reason: str | None


@dataclass(frozen=True)
class Approval:
    """Someone's go-ahead for a phase; it counts until the inventory's phase next changes."""

    id: int
    inventory: str
    phase: int
    who: str
    note: str | None
    ts: float


@dataclass(frozen=True)
class WaveRecord:
    """One wave of a phase's rollout: the hosts it changed, the canary so far, its verdict."""

    id: int
    inventory: str
    run_id: str  # the run that applied it (and recorded the phase for it)
    phase: int
    from_phase: int  # where the baseline hosts are, and where a failed wave goes back to
    index: int  # 1-based
    total: int  # waves in this rollout of the phase, the final one included
    hosts: tuple[str, ...]  # changed by this wave
    canary: tuple[str, ...]  # every host changed in this phase so far (this wave's included)
    soak: float
    started: float
    finished: float | None
    verdict: str | None  # a canary.WaveVerdict value once judged
    judgement: dict[str, object] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.index >= self.total

    @property
    def title(self) -> str:
        return f"wave {self.index}/{self.total} of phase {self.phase}"


_WAVE_COLUMNS = (
    "id, inventory, run_id, phase, from_phase, idx, total, hosts, canary, soak, started,"
    " finished, verdict, judgement"
)


def _wave(row: Any) -> WaveRecord:
    def names(text: str) -> tuple[str, ...]:
        value = json.loads(text)
        return tuple(str(v) for v in value) if isinstance(value, list) else ()

    return WaveRecord(int(row[0]), row[1], row[2], int(row[3]), int(row[4]), int(row[5]),
                      int(row[6]), names(row[7]), names(row[8]), float(row[9]), float(row[10]),
                      row[11], row[12], _load(row[13]))  # fmt: skip


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no $USER, as in some containers
        return f"uid{os.getuid()}"


def _jsonable(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)  # a journal write must never fail a rollout over formatting


def _dump(data: Mapping[str, object] | None) -> str:
    return json.dumps(dict(data or {}), sort_keys=True, default=_jsonable)


def _load(text: str | None) -> dict[str, object]:
    return cast(dict[str, object], json.loads(text)) if text else {}


_RUN_COLUMNS = (
    "id, inventory, command, argv, who, origin, pid, started, finished, status, reason, summary"
)
_INTENT_COLUMNS = "id, run_id, host, action, target_phase, detail, started, finished, ok, result"
_EVENT_COLUMNS = "id, run_id, ts, kind, host, data, inventory"


def _run(row: Any) -> RunRecord:
    return RunRecord(
        id=row[0],
        inventory=row[1],
        command=row[2],
        argv=tuple(json.loads(row[3])),
        who=row[4],
        where=row[5],
        pid=row[6],
        started=row[7],
        finished=row[8],
        status=RunStatus(row[9]),
        reason=row[10],
        summary=row[11],
    )


def _intent(row: Any) -> Intent:
    return Intent(
        id=row[0],
        run_id=row[1],
        host=row[2],
        action=row[3],
        target_phase=row[4],
        detail=_load(row[5]),
        started=row[6],
        finished=row[7],
        ok=None if row[8] is None else bool(row[8]),
        result=_load(row[9]),
    )


def _event(row: Any) -> EventRecord:
    return EventRecord(row[0], row[1], row[2], row[3], row[4], _load(row[5]), row[6])


def _held_here(lock: Any) -> bool:
    """Whether the calling thread holds the RLock ``lock`` (CPython's ``RLock._is_owned``, which
    ``threading.Condition`` relies on; typeshed does not declare it)."""
    return bool(lock._is_owned())


class _Ticket(Generic[_T]):
    """One caller's queued write: the operation, then its outcome once its batch is done."""

    value: _T

    def __init__(self, op: _Op[_T]) -> None:
        self.op = op
        self.error: BaseException | None = None
        self.done = False

    def run(self, conn: Database) -> None:
        """Apply the operation in its own savepoint; if it raises, undo it and keep the error."""
        conn.execute("SAVEPOINT op")
        try:
            self.value = self.op(conn)
        except LedgerError:
            raise  # the transaction itself is in doubt: the whole batch fails
        except Exception as exc:
            conn.execute("ROLLBACK TO op")
            self.error = exc
        conn.execute("RELEASE op")

    def outcome(self) -> _T:
        if self.error is not None:
            raise self.error
        return self.value


class Ledger:
    """The journal, phase, soak window and lock of every inventory, in one store.

    ``target`` is a SQLite file path or a ``postgresql://`` URI (see :func:`open_ledger`);
    everything above the :class:`~rollout.database.Database` seam is the same for both.
    """

    def __init__(
        self,
        target: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        who: str | None = None,
        where: str | None = None,
        pid: int | None = None,
        probe: Probe = process_start,
        group_commit: bool = True,
    ) -> None:
        self.target = target  # as given (a URI may hold a password: never print it)
        self._clock = clock
        self._probe = probe
        self.who = who if who is not None else _default_user()
        self.where = where if where is not None else socket.gethostname()
        self.pid = pid if pid is not None else os.getpid()
        self._mutex = threading.RLock()  # the executor may journal from worker threads
        self._group_commit = group_commit  # False: event/intent/settle commit one by one
        self._turn = threading.Condition()  # guards the two fields below
        self._queue: list[_Ticket[Any]] = []  # writes waiting for the next batch
        self._leading = False  # a thread is committing a batch
        self._inventories: dict[str, str] = {}  # run id -> inventory (never changes)
        self._commits = 0  # transactions committed by _write (a test and bench observable)
        self._db = open_database(target)
        #: Where the ledger is, for messages: the file, or the URI without its password.
        self.location = self._db.location
        try:
            self.schema_version = migrate(self._db, self._db.migrations)
        except BaseException:
            self._db.close()
            raise

    @property
    def path(self) -> Path:
        """The SQLite file (UsageError for a PostgreSQL ledger, which has none)."""
        if not isinstance(self._db, SQLiteDatabase):
            raise UsageError(f"the ledger {self.location} is a database server, not a file")
        return self._db.path

    # -- plumbing -------------------------------------------------------------------------

    def close(self) -> None:
        with self._mutex:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Database]:
        """One write transaction, serialised against every other controller's, committed
        before the caller returns."""
        with self._mutex:
            self._db.begin(write=True)
            try:
                yield self._db
                self._db.commit()
                self._commits += 1
            except BaseException:
                self._db.rollback()
                raise

    @contextmanager
    def _read(self) -> Iterator[Database]:
        """A consistent snapshot across several SELECTs."""
        with self._mutex:
            self._db.begin(write=False)
            try:
                yield self._db
            finally:
                if self._db.in_transaction:
                    self._db.commit()

    def _grouped(self, op: _Op[_T]) -> _T:
        """Run ``op`` in a write committed before return, sharing the commit with other threads.

        The caller queues ``op``; the first waiter finding no leader takes the whole queue and
        commits it as one transaction (see :meth:`_lead`). A caller alone leads a batch of one.
        """
        if not self._group_commit or _held_here(self._mutex):  # re-entrant: never wait on us
            with self._write() as conn:
                return op(conn)
        ticket, batch = _Ticket(op), list[_Ticket[Any]]()
        with self._turn:
            self._queue.append(ticket)
            while self._leading and not ticket.done:
                self._turn.wait()
            if not ticket.done:  # nobody leads: take the queue (it holds our ticket)
                self._leading, batch, self._queue = True, self._queue, []
        if batch:
            self._lead(batch)
        return ticket.outcome()

    def _lead(self, batch: list[_Ticket[Any]]) -> None:
        """Commit ``batch`` in one transaction, each op in its own savepoint; wake the waiters.

        An op that raises is rolled back alone and its caller gets the error; if the
        transaction fails (BEGIN, COMMIT, a database error), every caller in it gets that error.
        """
        try:
            with self._write() as conn, conn.pipelined():
                for ticket in batch:
                    ticket.run(conn)
        except BaseException as exc:  # delivered to (and re-raised by) each caller
            for ticket in batch:
                ticket.error = exc
        finally:
            with self._turn:
                for ticket in batch:
                    ticket.done = True
                self._leading = False
                self._turn.notify_all()

    def _add_event(
        self,
        conn: Database,
        inventory: str,
        run_id: str | None,
        kind: str,
        data: Mapping[str, object] | None = None,
        host: str | None = None,
    ) -> EventRecord:
        ts = self._clock()
        text = _dump(data)
        row = conn.execute(
            "INSERT INTO events (run_id, inventory, ts, kind, host, data) VALUES (?,?,?,?,?,?)"
            " RETURNING id",
            (run_id, inventory, ts, kind, host, text),
        ).fetchone()
        return EventRecord(int(row[0]), run_id, ts, kind, host, _load(text), inventory)

    def _get_run(self, conn: Database, run_id: str) -> RunRecord:
        row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise UsageError(
                f"no run {run_id!r} in the ledger {self.location}",
                hint="list recent runs and their ids with `invoke history`",
            )
        return _run(row)

    def _inventory_of(self, conn: Database, run_id: str) -> str:
        """``run_id``'s inventory, cached since a run never changes it; UsageError if unknown."""
        inventory = self._inventories.get(run_id)
        if inventory is None:
            inventory = self._inventories[run_id] = self._get_run(conn, run_id).inventory
        return inventory

    def _run_exists(self, conn: Database, run_id: str) -> bool:
        return conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is not None

    # -- runs and events ------------------------------------------------------------------

    def start_run(
        self, inventory: str, command: str, argv: Sequence[str], reason: str | None = None
    ) -> RunRecord:
        """Record a new RUNNING run by this process; its id is short and unique."""
        pid_start = self._probe(self.pid) or None
        with self._write() as conn:
            now = self._clock()
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
            now = self._clock()
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
        now = self._clock()
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
        now = self._clock()
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
                now = self._clock()
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
        now = self._clock()
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
                (counted, self._clock(), inventory),
            )
            return self._state(conn, inventory)

    def set_paused(
        self, inventory: str, paused: bool, who: str, reason: str | None
    ) -> InventoryState:
        """Pause (or resume) rollouts of ``inventory``; recorded as an inventory event."""
        with self._write() as conn:
            self._ensure_inventory(conn, inventory)
            now = self._clock()
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
            now = self._clock()
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
            now = self._clock()
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
                (self._clock(), verdict, _dump(judgement), wave_id),
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
            now = self._clock()
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
        sleep: Callable[[float], None] = time.sleep,
    ) -> LockRecord:
        """Take ``inventory``'s lock, or raise :class:`LockHeld` (a ``LockBusy``).

        A dead holder on this host is replaced (the result's ``stale`` is True, and a
        ``lock.takeover`` event is journaled); a holder elsewhere only yields to ``unlock`` or
        ``takeover=True``. With ``wait > 0`` it polls every ``poll`` seconds until then.
        """
        if wait > 0 and poll <= 0:
            raise ValueError("poll must be > 0 when waiting for a lock")
        deadline = self._clock() + wait
        while True:
            try:
                return self._try_lock(inventory, command, run_id, takeover)
            except LockHeld as busy:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    if wait <= 0:
                        raise
                    raise LockHeld(
                        inventory, busy.holder, busy.liveness, self._clock(), waited=wait
                    ) from None
                sleep(min(poll, remaining))

    def _try_lock(
        self, inventory: str, command: str, run_id: str | None, takeover: bool
    ) -> LockRecord:
        pid_start = self._probe(self.pid) or None
        with self._write() as conn:
            if run_id is not None and self._get_run(conn, run_id).inventory != inventory:
                raise UsageError(f"run {run_id} is not a run against inventory {inventory!r}")
            now = self._clock()
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
            if touch_holder(conn, lock.inventory, lock.id, self._clock()):
                return
            now_holder = read_holder(conn, lock.inventory)
        taken = (
            f"taken over: {describe(now_holder, self.lock_liveness(now_holder), self._clock())}"
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
            now = self._clock()
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


def open_ledger(
    target: str | Path,
    *,
    clock: Callable[[], float] = time.time,
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
