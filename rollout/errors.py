"""Every error the engine raises, rooted at :class:`RolloutError`.

Each error carries the data an operator needs (file and line, host, command) and a
``hint`` saying what to do next. ``tasks.py`` maps ``exit_code`` to the process exit
status, so the codes below are part of the public interface (README, "Exit codes")::

    RolloutError                      1  unexpected
    ├── InputError                    2  bad input; nothing on any host was touched
    │   ├── PlaybookError                  file, line, key
    │   ├── InventoryError                 file, line, key
    │   ├── TemplateError                  template name, missing variable
    │   └── UsageError                     a CLI option or combination
    ├── LockBusy                      3  another run holds the inventory's lock
    │   ├── FleetBusy                      another controller's run holds the fleet lease
    │   ├── FleetChanged                   another controller changed the fleet (stale ledger)
    │   └── RightLost                      this run lost its lock or lease: it stopped
    ├── RolledBack                    4  a breach or failure put the fleet back; verified
    ├── HostsUnreachable              5  some hosts could not be reached or verified
    ├── RollbackIncomplete            6  a rollback did not converge every host
    ├── DeployFailed                  7  a change failed or its read-back differs
    ├── Refused                       8  a confirmation, gate or --force is missing
    │   └── WaveHeld                       a wave's verdict waits for a person (approve)
    ├── Interrupted                 130  SIGINT/SIGTERM; the current step was settled
    └── HostError                        one host's failure; collected, never exits alone
        ├── TransportError                 connection, auth or channel failure
        │   ├── HostKeyError               unknown or changed host key (fail closed)
        │   └── CommandTimeout             a remote command outlived its deadline
        └── ConsoleError                   the remote console failed or printed garbage

HostsUnreachable, RollbackIncomplete and DeployFailed span hosts: each carries ``results``,
one :class:`HostOutcome` a host it is about, as data (the ``--json`` error line lists them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Stable process exit codes; documented in README.md."""

    OK = 0
    UNEXPECTED = 1
    BAD_INPUT = 2
    BUSY = 3
    ROLLED_BACK = 4
    UNREACHABLE = 5
    ROLLBACK_INCOMPLETE = 6
    DEPLOY_FAILED = 7
    REFUSED = 8
    INTERRUPTED = 130


class RolloutError(Exception):
    """Root of every error the engine raises on purpose."""

    exit_code: ExitCode = ExitCode.UNEXPECTED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  next: {self.hint}"
        return self.message


@dataclass(frozen=True)
class SourceLocation:
    """Where in an input file a problem sits."""

    file: str
    line: int | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where} ({self.key})" if self.key else where


class InputError(RolloutError):
    """Bad input detected before any host was touched."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(
        self, message: str, *, location: SourceLocation | None = None, hint: str | None = None
    ) -> None:
        text = f"{location}: {message}" if location else message
        super().__init__(text, hint=hint)
        self.location = location


class PlaybookError(InputError):
    """A playbook file is malformed or inconsistent."""


class InventoryError(InputError):
    """An inventory file, group_vars/host_vars file or host pattern is wrong."""


class TemplateError(InputError):
    """A template is missing or references an undefined variable."""


class UsageError(InputError):
    """A command-line option or combination is wrong."""


class LockBusy(RolloutError):
    """Another run holds the inventory's lock."""

    exit_code = ExitCode.BUSY


class FleetBusy(LockBusy):
    """A host's fleet lease is held by another live run; this run took none (or gave back)."""


class FleetChanged(LockBusy):
    """The hosts' records show a change this ledger does not know; nothing was changed."""

    def __init__(self, message: str, *, hint: str | None = None, paused: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.paused = paused


class RightLost(LockBusy):
    """This run's ledger lock or fleet lease was taken over or removed: it stops changing
    hosts at once (raised through parallel waves, never collected as a host's failure)."""


class RolledBack(RolloutError):
    """The fleet was put back to an earlier phase, and that was verified."""

    exit_code = ExitCode.ROLLED_BACK


@dataclass(frozen=True)
class HostOutcome:
    """One host's part in an error that spans hosts: did it end well, and if not, why."""

    host: str
    ok: bool
    error: str | None = None
    unreachable: bool = False

    def to_json(self) -> dict[str, object]:
        return {"host": self.host, "ok": self.ok, "error": self.error,
                "unreachable": self.unreachable}  # fmt: skip


class SpansHosts(RolloutError):
    """An error about several hosts; ``results`` holds each host's outcome as data."""

    def __init__(
        self, message: str, *, hint: str | None = None, results: Iterable[HostOutcome] = ()
    ) -> None:
        super().__init__(message, hint=hint)
        self.results = tuple(results)


class HostsUnreachable(SpansHosts):
    """Some hosts could not be reached; the rest were handled."""

    exit_code = ExitCode.UNREACHABLE


class RollbackIncomplete(SpansHosts):
    """A rollback could not converge and verify every host."""

    exit_code = ExitCode.ROLLBACK_INCOMPLETE


class DeployFailed(SpansHosts):
    """A change failed on some hosts or its read-back differs from the target."""

    exit_code = ExitCode.DEPLOY_FAILED


class Refused(RolloutError):
    """The run needs a confirmation, a gate or ``--force`` it does not have."""

    exit_code = ExitCode.REFUSED


class WaveHeld(Refused):
    """A wave was judged marginal, inconclusive or fleet-wide: nothing rolled back, and the
    next wave waits for `invoke approve` (or a rollback)."""


class Interrupted(RolloutError):
    """The run was interrupted by a signal after settling its current step."""

    exit_code = ExitCode.INTERRUPTED


class HostError(RolloutError):
    """A failure on one host; collected into per-host results."""

    def __init__(self, host: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{host}: {message}", hint=hint)
        self.host = host
        self.detail = message


class TransportError(HostError):
    """SSH connection, authentication or channel failure."""


class HostKeyError(TransportError):
    """The host's key is unknown or differs from the pinned one."""


class CommandTimeout(TransportError):
    """A remote command outlived its deadline; its effect is unknown until read back."""


class ConsoleError(HostError):
    """The release's remote console failed or printed something unexpected."""
