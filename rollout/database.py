"""The ledger's storage seam: one small interface, a SQLite file and a PostgreSQL server.

:class:`~rollout.ledger.Ledger` holds all of the ledger's logic and speaks SQL through a
:class:`Database`; the two implementations differ only where the engines do: how a write
transaction serialises against other controllers, how an open file or connection is checked,
how a lock holder's liveness is proven, and the DDL of their schemas. Statements use ``?``
placeholders and SQL both engines accept (``ON CONFLICT DO NOTHING``, ``RETURNING``).
:func:`open_database` picks the implementation from the target's form: a
``postgresql://``/``postgres://`` URI (libpq) or a file path (SQLite).

Errors, all rooted at the project's one root::

    RolloutError
    ├── InputError
    │   └── LedgerFileError     the file given is a directory, empty, corrupt, not a ledger
    └── LedgerError             a statement failed (disk full, permissions, a bug)
        └── LedgerUnavailable   the file was deleted or replaced, or the connection was lost
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import stat
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from . import schema
from .errors import InputError, RolloutError

BUSY_TIMEOUT = 10.0  # seconds a writer waits for another controller's transaction

#: URI schemes that name a PostgreSQL ledger (libpq's own spellings).
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class LedgerError(RolloutError):
    """A ledger statement failed; the hint says what to check."""


class LedgerUnavailable(LedgerError):
    """The ledger went away during the run: file deleted or replaced, connection lost."""


class LedgerFileError(InputError):
    """The path given as the ledger cannot be one (a directory, empty, corrupt); exit 2."""


class Cursor(Protocol):
    """What a statement returns: rows (for SELECT or RETURNING) and the rows it changed."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Database(ABC):
    """One connection to a ledger store, used under the ledger's mutex (never concurrently)."""

    #: Where the ledger is, for messages: a path, or a URI without its password.
    location: str
    #: A column of ``runs`` that orders rows by insertion (``rowid``, or a sequence).
    order_column: str
    #: The schema's migrations on this store (see :mod:`rollout.schema`).
    migrations: schema.Migrations
    #: Why the connection (or file) was lost during this session, once it was; else None.
    lost: str | None = None

    @abstractmethod
    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        """Run one statement (``?`` placeholders); driver errors become :class:`LedgerError`."""

    @abstractmethod
    def begin(self, *, write: bool) -> None:
        """Open a transaction; ``write`` ones are serialised against every other writer."""

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def rollback(self) -> None:
        """Roll back the open transaction; never raises (the connection may be gone)."""

    @property
    @abstractmethod
    def in_transaction(self) -> bool: ...

    @abstractmethod
    def close(self) -> None: ...

    def pipelined(self) -> AbstractContextManager[object]:
        """Within this block, statements whose results nobody fetched yet may be sent without
        waiting for the server (PostgreSQL's pipeline mode; a no-op for SQLite). Errors may
        surface at a later fetch or at the block's end, as :class:`LedgerError`."""
        return contextlib.nullcontext()

    # -- lock holders' liveness --------------------------------------------------------------

    def claim(self, lock_id: str) -> None:  # noqa: B027  (a no-op unless overridden)
        """Bind ``lock_id``'s liveness to this connection (PostgreSQL); a no-op for SQLite."""

    def unclaim(self, lock_id: str) -> None:  # noqa: B027  (a no-op unless overridden)
        """Undo :meth:`claim` (after a release, or when a takeover took the lock away)."""

    def claimed(self, lock_id: str) -> bool | None:
        """Whether a live connection still holds ``lock_id``'s claim; None when undecidable."""
        return None

    def holds(self, lock_id: str) -> bool:
        """Whether *this* connection holds ``lock_id``'s claim (True where there are none)."""
        return True


class SQLiteDatabase(Database):
    """A ledger file on this machine: WAL, ``synchronous=FULL``, created 0600.

    The file is checked before it is used (a directory, a 0-byte file, a corrupt or foreign
    file are :class:`LedgerFileError`) and its identity (device, inode) is checked again
    before every write: a file deleted or replaced under a running controller is
    :class:`LedgerUnavailable`, never a silent write into an unlinked inode.
    """

    order_column = "rowid"
    migrations = schema.SQLITE

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.location = str(self.path.resolve())  # the same text from any working directory
        created = self._prepare()
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._unusable(exc) from exc
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            if not created:
                verdict = self._conn.execute("PRAGMA quick_check").fetchone()
                if verdict is None or verdict[0] != "ok":
                    raise sqlite3.DatabaseError(f"integrity check: {verdict and verdict[0]}")
        except sqlite3.Error as exc:
            self._conn.close()
            raise self._unusable(exc) from exc
        info = os.stat(self.path)
        self._identity: tuple[int, int] | None = (info.st_dev, info.st_ino)

    @classmethod
    def wrap(cls, conn: sqlite3.Connection, location: str = "<connection>") -> SQLiteDatabase:
        """A Database over an already open connection (autocommit mode), without file checks."""
        self = cls.__new__(cls)
        self._conn, self.location, self.path, self._identity = conn, location, Path(location), None
        return self

    def _prepare(self) -> bool:
        """Refuse a path that cannot be a ledger; create a new file 0600. True if created."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            try:
                self._create()
            except (OSError, sqlite3.Error) as exc:
                raise LedgerFileError(
                    f"cannot create the ledger {self.path}: {exc}",
                    hint=f"check that {self.path.parent} is a writable directory",
                ) from exc
            return True
        if stat.S_ISDIR(info.st_mode):
            raise LedgerFileError(
                f"the ledger {self.path} is a directory, not a ledger file",
                hint=f"pass a file path, e.g. --ledger {self.path / 'ledger.db'}",
            )
        if not stat.S_ISREG(info.st_mode):
            raise LedgerFileError(
                f"the ledger {self.path} is not a regular file",
                hint="pass the path of a ledger file (or of a new one to create)",
            )
        if info.st_size == 0:
            raise LedgerFileError(
                f"the ledger {self.path} is empty (0 bytes): it holds no history and no schema,"
                " so it is not a ledger (truncated, or created by something else)",
                hint=f"restore it from a backup; to start a new, empty ledger: rm {self.path}",
            )
        if info.st_mode & 0o077 and info.st_uid == os.geteuid():
            for suffix in ("", "-wal", "-shm"):  # tighten a ledger an older tool left readable
                with contextlib.suppress(FileNotFoundError):
                    os.chmod(f"{self.path}{suffix}", 0o600)
        return False

    def _create(self) -> None:
        """Make a new ledger file, 0600, complete with its schema, under its final name at once.

        It is built under a temporary name and hard-linked into place, so no controller ever
        sees a half-made (0-byte) ledger, and a concurrent creator's file simply wins.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, scratch = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        os.close(fd)  # mkstemp creates it 0600; SQLite gives -wal and -shm the same mode
        try:
            conn = sqlite3.connect(scratch, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                schema.migrate(SQLiteDatabase.wrap(conn, scratch), schema.SQLITE)
            finally:
                conn.close()
            with contextlib.suppress(FileExistsError):  # someone else's new ledger won
                os.link(scratch, self.path)
        finally:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(scratch + suffix)

    def _unusable(self, exc: sqlite3.Error) -> LedgerFileError:
        return LedgerFileError(
            f"the ledger {self.path} is not a readable SQLite ledger: {exc}",
            hint=(
                f"restore {self.path} from a backup (or move it aside to start a new ledger);"
                " it must be a local file, not on NFS"
            ),
        )

    def _check(self) -> None:
        """The path still names the file this connection has open."""
        if self._identity is None:
            return
        try:
            info = os.stat(self.path)
            same = (info.st_dev, info.st_ino) == self._identity
        except FileNotFoundError:
            self.lost = f"the ledger file {self.path} was deleted during this run"
        else:
            if same:
                return
            self.lost = f"the ledger file {self.path} was replaced by another file during this run"
        raise LedgerUnavailable(
            f"{self.lost}; nothing more is recorded, and no further host is changed",
            hint=(
                "find who removed it; `invoke status` reads the hosts' real state, restore the"
                " ledger from a backup before the next deploy"
            ),
        )

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        try:
            return self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise LedgerError(
                f"the ledger {self.path} failed: {exc}",
                hint=f"check free disk space and the permissions of {self.path.parent}",
            ) from exc

    def begin(self, *, write: bool) -> None:
        if not write:
            self._conn.execute("BEGIN")
            return
        self._check()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise LedgerError(
                f"the ledger {self.path} stayed busy for {BUSY_TIMEOUT:g}s: {exc}",
                hint=f"retry; if it persists, find the process holding it (fuser {self.path})",
            ) from exc

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def close(self) -> None:
        self._conn.close()


_URI_PASSWORD = re.compile(r"(postgres(?:ql)?://[^:/@\s]*):[^@\s]*@")
_PARAM_PASSWORD = re.compile(r"((?:^|[?&\s])password=)[^&\s]*")


def redact_argv(argv: Sequence[str]) -> tuple[str, ...]:
    """``argv`` with the password of any PostgreSQL URI (``user:PW@`` or ``password=PW``)
    replaced by ``***``: command lines are recorded in the ledger and shown in lock errors."""
    return tuple(
        _PARAM_PASSWORD.sub(r"\1***", _URI_PASSWORD.sub(r"\1:***@", arg))
        if "postgres" in arg or "password=" in arg
        else arg
        for arg in argv
    )


def is_postgres(target: str | Path) -> bool:
    """Whether ``target`` names a PostgreSQL ledger (a libpq URI) rather than a file."""
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


def open_database(target: str | Path) -> Database:
    """The store ``target`` names: a ``postgresql://`` URI, else a SQLite file path."""
    if is_postgres(target):
        from .postgres import PostgresDatabase  # psycopg is imported only when needed

        return PostgresDatabase(str(target))
    return SQLiteDatabase(target)
