"""What a backup is: its manifest's values, the restore's results, the two errors."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import HostOutcome, HostsUnreachable, RollbackIncomplete
from ..models import Observed

#: A backup id: the UTC time it was taken, with ``-N`` when that second was already taken.
ID_RE = re.compile(r"^\d{8}T\d{6}Z(?:-\d{1,3})?$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

FORMAT = 1
MANIFEST = "manifest.json"
ARCHIVE = "state.tar.gz"
#: Where backups live unless an option or ``$ROLLOUT_BACKUPS`` says otherwise (gitignored).
DEFAULT_ROOT = "backups"


class BackupIncomplete(HostsUnreachable):
    """Some hosts could not be backed up; the backup is kept, marked incomplete."""

    def __init__(self, message: str, backup: Backup, *, hint: str | None = None) -> None:
        results = [HostOutcome(h.host, h.ok, h.error) for h in backup.hosts]
        super().__init__(message, hint=hint, results=results)
        self.backup = backup


class RestoreIncomplete(RollbackIncomplete):
    """A restore did not verify on every host; ``report`` says what each host holds."""

    def __init__(self, message: str, report: RestoreReport, *, hint: str | None = None) -> None:
        results = [HostOutcome(r.host, r.ok, r.error) for r in report.results]
        super().__init__(message, hint=hint, results=results)
        self.report = report


# -- what a backup is ------------------------------------------------------------------------


@dataclass(frozen=True)
class HostArchive:
    """One host's state files as stored: the absolute paths archived and the archive file."""

    paths: tuple[str, ...]
    file: str  # relative to the backup directory: "<host>/state.tar.gz"
    sha256: str
    size: int


@dataclass(frozen=True)
class HostBackup:
    """One host's entry: what its node held, or why it could not be read."""

    host: str
    ok: bool
    node: str | None = None
    flags: Mapping[str, Observed] = field(default_factory=dict)
    archive: HostArchive | None = None
    error: str | None = None


@dataclass(frozen=True)
class BackupInfo:
    """A backup as listed: enough to choose one. ``problem`` when its manifest is unusable."""

    id: str
    inventory: str
    path: Path
    complete: bool
    taken_at: float | None = None
    recorded_phase: int | None = None
    who: str | None = None
    hosts: tuple[str, ...] = ()
    problem: str | None = None


@dataclass(frozen=True)
class Backup:
    """A backup as loaded from (or just written to) its directory."""

    id: str
    inventory: str
    path: Path  # the backup's directory
    playbook: str
    recorded_phase: int | None
    run: str
    who: str
    taken_at: float
    complete: bool
    hosts: tuple[HostBackup, ...]

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST

    def host(self, name: str) -> HostBackup:
        for entry in self.hosts:
            if entry.host == name:
                return entry
        raise KeyError(name)

    @property
    def info(self) -> BackupInfo:
        return BackupInfo(
            self.id,
            self.inventory,
            self.path,
            self.complete,
            self.taken_at,
            self.recorded_phase,
            self.who,
            tuple(h.host for h in self.hosts if h.ok),
        )


def backups_root(given: str | None = None) -> Path:
    """The backup root: ``given``, else ``$ROLLOUT_BACKUPS``, else ``backups/``."""
    return Path(given or os.environ.get("ROLLOUT_BACKUPS") or DEFAULT_ROOT)


def format_id(when: float) -> str:
    """The backup id for a wall-clock time: ``YYYYMMDDTHHMMSSZ`` in UTC."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))


@dataclass(frozen=True)
class StateCheck:
    """The restored state files compared with the archive's own contents."""

    files: int  # regular files in the archive
    differing: tuple[str, ...] = ()  # missing on the host, or different content
    extra: tuple[str, ...] = ()  # under the state paths on the host, not in the backup

    @property
    def ok(self) -> bool:
        return not self.differing


@dataclass(frozen=True)
class RestoreResult:
    """One host after a restore: its read-back and what could not be put back."""

    host: str
    ok: bool
    flags: Mapping[str, Observed] = field(default_factory=dict)
    mismatched: tuple[str, ...] = ()  # restorable flags whose read-back differs
    unrestorable: tuple[tuple[str, str], ...] = ()  # (flag, why) not applied: left as is
    differs: tuple[str, ...] = ()  # unrestorable flags whose read-back differs from the backup
    state: StateCheck | None = None
    error: str | None = None

    @property
    def exact(self) -> bool:
        """Every flag of the backup and the playbook reads back as the backup recorded it."""
        return self.ok and not self.differs


@dataclass(frozen=True)
class RestoreReport:
    backup: str
    results: tuple[RestoreResult, ...]
    phase: int | None  # the phase every host's read-back matches, when they all agree

    @property
    def failed(self) -> tuple[RestoreResult, ...]:
        return tuple(r for r in self.results if not r.ok)
