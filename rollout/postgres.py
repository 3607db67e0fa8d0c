"""The ledger on a PostgreSQL server shared by a team's controllers (psycopg 3, libpq URIs).

The target is a libpq URI (``postgresql://USER@HOST:PORT/DBNAME?...``); the password comes from
the URI, ``PGPASSWORD`` or ``~/.pgpass``, exactly as libpq finds it, and is never shown:
:attr:`PostgresDatabase.location` is the URI without it.

Write transactions serialise on a transaction-level advisory lock (``pg_advisory_xact_lock``),
so every read-decide-write step of the ledger (the lock, soak counting, reaping) runs alone
across all controllers, as ``BEGIN IMMEDIATE`` does on SQLite; ``lock_timeout`` bounds the wait.

**Lock liveness across machines.** The inventory lock is a row (its primary key makes "one
holder" a database fact, as on SQLite), and its holder additionally keeps a *session-level*
advisory lock keyed by the lock's id on its connection. The server releases that key the
moment the holder's connection ends (process killed, machine gone once TCP keepalives give
up), so any controller anywhere can tell a live holder from a dead one by asking the server
(``pg_locks``) instead of guessing from a pid on a machine it cannot see. Keying by the lock
id (not the inventory) lets an emergency takeover hold its own key while the old holder still
has its connection. See docs/ledger.md for why this beats a lease with heartbeats.

**A lost connection** is never silently replaced: :attr:`lost` records it, the operation in
flight fails with :class:`LedgerUnavailable`, and the ledger refuses new intents (so no new
host change starts). Later calls reconnect once each, so closing records (settling a change,
finishing the run) land if the server is back; the reconnected session no longer holds the
lock's key, so the lock's heartbeat reports it lost.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import conninfo, pq

from . import schema
from .database import (
    BUSY_TIMEOUT,
    Cursor,
    Database,
    LedgerError,
    LedgerFileError,
    LedgerUnavailable,
)

#: Key of the transaction-level advisory lock every write transaction takes ("Rollout\0").
WRITE_KEY = 0x526F6C6C6F757400
#: High 16 bits of the session-level advisory keys that prove a lock holder alive ("Ro").
CLAIM_BASE = 0x526F << 48
CONNECT_TIMEOUT = 10  # seconds, for the first connection and for each reconnect
#: Session settings: bounded waits, and TCP keepalives so the server notices a vanished
#: controller within about 25 s (and frees its lock key), not after the OS's two hours.
SESSION = (
    f"SET lock_timeout = '{int(BUSY_TIMEOUT * 1000)}ms'",
    "SET tcp_keepalives_idle = 10",
    "SET tcp_keepalives_interval = 5",
    "SET tcp_keepalives_count = 3",
)


def redact(uri: str) -> str:
    """``uri`` for people: user, host, port and database, never the password."""
    try:
        parts = conninfo.conninfo_to_dict(uri)
    except psycopg.ProgrammingError:
        return "postgresql://<unparsable URI>"
    user = f"{parts['user']}@" if parts.get("user") else ""
    host = str(parts.get("host") or "")
    if host.startswith("/"):  # a Unix socket directory
        port = f"&port={parts['port']}" if parts.get("port") else ""
        return f"postgresql://{user}/{parts.get('dbname', '')}?host={host}{port}"
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{host}{port}/{parts.get('dbname', '')}"


def claim_key(lock_id: str) -> int:
    """The advisory key of ``lock_id`` (``lk-`` + 12 hex digits: 48 bits)."""
    try:
        return CLAIM_BASE | (int(lock_id.removeprefix("lk-"), 16) & ((1 << 48) - 1))
    except ValueError:
        return CLAIM_BASE | (hash(lock_id) & ((1 << 48) - 1))


class PostgresDatabase(Database):
    """One autocommit connection; transactions are explicit ``BEGIN``/``COMMIT``."""

    order_column = "seq"
    migrations = schema.POSTGRES

    def __init__(self, uri: str) -> None:
        self._uri = uri
        self.location = redact(uri)
        self._sql: dict[str, str] = {}
        self.lost: str | None = None
        try:
            self._conn = self._connect()
        except psycopg.Error as exc:
            raise LedgerFileError(
                f"cannot connect to the ledger database {self.location}: {_reason(exc)}",
                hint=(
                    "check the URI, that the server runs and accepts this host (pg_hba.conf),"
                    " and the password (URI, PGPASSWORD or ~/.pgpass)"
                ),
            ) from None

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(
            self._uri, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
            application_name="rollout", keepalives=1, keepalives_idle=10,
            keepalives_interval=5, keepalives_count=3,
        )  # fmt: skip
        for statement in SESSION:
            conn.execute(statement)
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        self._backend_pid = int(row[0]) if row else 0  # a new session, a new pid
        return conn

    def _failed(self, exc: psycopg.Error) -> LedgerError:
        if self._conn.broken or self._conn.closed:
            if self.lost is None:
                self.lost = f"lost the connection to the ledger database {self.location}"
            return LedgerUnavailable(
                f"{self.lost}: {_reason(exc)}; no further host is changed",
                hint=(
                    "the hosts keep the last verified state; once the database is back, "
                    "`invoke status` compares them with the ledger"
                ),
            )
        if isinstance(exc, psycopg.errors.LockNotAvailable):
            return LedgerError(
                f"the ledger database {self.location} stayed busy for {BUSY_TIMEOUT:g}s",
                hint="retry; if it persists, look for a stuck session in pg_stat_activity",
            )
        return LedgerError(
            f"the ledger database {self.location} failed: {_reason(exc)}",
            hint="check the server's log and this role's privileges on the database",
        )

    def _live(self) -> psycopg.Connection[Any]:
        """The connection, reconnected once if it was lost (the loss stays recorded)."""
        if not (self._conn.broken or self._conn.closed):
            return self._conn
        try:
            self._conn = self._connect()
        except psycopg.Error as exc:
            raise LedgerUnavailable(
                f"{self.lost or 'lost the ledger database'}; reconnecting failed: {_reason(exc)}",
                hint=(
                    "no further host is changed; once the database is back, `invoke status`"
                    " compares the hosts with the ledger"
                ),
            ) from None
        return self._conn

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        text = self._sql.get(sql)
        if text is None:
            text = self._sql[sql] = sql.replace("%", "%%").replace("?", "%s")
        conn = self._live()
        try:
            return conn.execute(text, params)
        except psycopg.Error as exc:
            raise self._failed(exc) from exc

    def begin(self, *, write: bool) -> None:
        if write:  # one round trip: a parameterless query may hold two statements
            self.execute(f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_KEY:d})")
        else:
            self.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        try:
            if self.in_transaction:
                self._conn.execute("ROLLBACK")
        except psycopg.Error:
            pass

    @property
    def in_transaction(self) -> bool:
        if self._conn.broken or self._conn.closed:
            return False
        return self._conn.info.transaction_status != pq.TransactionStatus.IDLE

    def close(self) -> None:
        self._conn.close()

    @contextlib.contextmanager
    def pipelined(self) -> Iterator[object]:
        """Pipeline mode: a batch's savepoints and releases ride along with its statements,
        so a group commit costs about one round trip per write instead of three."""
        conn = self._live()
        try:
            with conn.pipeline() as pipeline:
                yield pipeline
        except psycopg.Error as exc:
            raise self._failed(exc) from exc

    # -- lock holders' liveness --------------------------------------------------------------

    def claim(self, lock_id: str) -> None:
        self.execute("SELECT pg_advisory_lock(?)", (claim_key(lock_id),))

    def unclaim(self, lock_id: str) -> None:
        if self._conn.broken or self._conn.closed:
            return  # the server dropped the key with the connection
        with contextlib.suppress(psycopg.Error):
            self._conn.execute("SELECT pg_advisory_unlock(%s)", (claim_key(lock_id),))

    _HOLDERS = (
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND classid::bigint = ? AND objid::bigint = ?"
    )

    def _holders(self, lock_id: str) -> list[int]:
        key = claim_key(lock_id)
        rows = self.execute(self._HOLDERS, (key >> 32, key & 0xFFFFFFFF)).fetchall()
        return [int(row[0]) for row in rows]

    def claimed(self, lock_id: str) -> bool | None:
        return bool(self._holders(lock_id))

    def holds(self, lock_id: str) -> bool:
        if self._conn.broken or self._conn.closed:
            return False
        holders = self._holders(lock_id)  # may reconnect: then the pid is the new session's
        return self._backend_pid in holders


def _reason(exc: psycopg.Error) -> str:
    """The server's or libpq's message, first line only (no URI, hence no password)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
