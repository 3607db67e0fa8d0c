"""The ledger's store: its connection and migrations, and the write paths every concern shares.

:class:`LedgerCore` opens the :class:`~rollout.database.Database` (SQLite or PostgreSQL) and
migrates it, and holds the transactions: :meth:`~LedgerCore._write` (one serialised write,
committed before return), :meth:`~LedgerCore._read` (a consistent snapshot) and
:meth:`~LedgerCore._grouped` (the group commit: concurrent callers' writes share one
transaction, each in its own savepoint, see :class:`_Ticket`), plus the helpers several
concerns write through (an event, a run by id). The concerns are its subclasses, composed
into :class:`rollout.ledger.Ledger`.
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

from .. import schema
from ..clock import SYSTEM, Clock
from ..database import Database, LedgerError, SQLiteDatabase, open_database
from ..errors import UsageError
from ..lock import Probe, process_start
from .records import _RUN_COLUMNS, EventRecord, RunRecord, _dump, _load, _run

_T = TypeVar("_T")
_Op = Callable[[Database], _T]
migrate = schema.migrate

#: The SQLite schema's migrations (PostgreSQL's are in :mod:`rollout.schema`).
MIGRATIONS = schema.SQLITE
SCHEMA_VERSION = schema.VERSION


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no $USER, as in some containers
        return f"uid{os.getuid()}"


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


class LedgerCore:
    """The store under every concern of :class:`rollout.ledger.Ledger`: the connection, who
    this process is (for runs and locks), and the transactions."""

    def __init__(
        self,
        target: str | Path,
        *,
        clock: Clock = SYSTEM,
        who: str | None = None,
        where: str | None = None,
        pid: int | None = None,
        probe: Probe = process_start,
        group_commit: bool = True,
    ) -> None:
        self.target = target  # as given (a URI may hold a password: never print it)
        self.clock = clock  # the wall time every record is stamped with
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

    def __enter__(self) -> Self:
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
        ts = self.clock.wall()
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

    def _run_exists(self, conn: Database, run_id: str) -> bool:
        return conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is not None
