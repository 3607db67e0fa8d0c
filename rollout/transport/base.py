"""The transport seam: run one command on one host, with stdin and a deadline.

Only ``rollout.transport.ssh`` imports paramiko or fabric. Everything above this seam sees
:class:`Session` and :class:`CommandResult`, so unit tests can plug in a scripted fake.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..models import Host
from ..output import MAX_OUTPUT_BYTES, TAIL_BYTES, clip_tail

#: Seconds the remote ``timeout`` waits after TERM before it sends KILL.
KILL_AFTER = 5
#: Extra seconds the client waits beyond the remote deadline before abandoning the channel.
CLIENT_GRACE = 10.0


@dataclass(frozen=True)
class CommandResult:
    """What one remote command did. ``exit_status`` is None when its outcome is unknown."""

    host: str
    command: str
    exit_status: int | None
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.timed_out

    def tail(self, lines: int = 6) -> str:
        """The last lines of stderr (or stdout), for error messages; at most TAIL_BYTES."""
        text = self.stderr.strip() or self.stdout.strip()
        return clip_tail("\n".join(text[-4 * TAIL_BYTES :].splitlines()[-lines:]))


class Session(Protocol):
    """One open connection to one host, reused for every command of a run."""

    host: Host

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float = 60.0,
        max_output: int = MAX_OUTPUT_BYTES,
    ) -> CommandResult:
        """Run ``argv`` (quoted once here) with ``stdin``; killed on the host after ``timeout``;
        each stream kept to ``max_output`` bytes and redacted (:mod:`rollout.output`)."""
        ...

    def close(self) -> None: ...


class Transport(Protocol):
    """Opens sessions. Raises :class:`rollout.errors.TransportError` (or a subclass)."""

    def connect(self, host: Host) -> Session: ...


#: Called with (host name, fingerprint, known_hosts path) when a new key is pinned.
PinCallback = Callable[[str, str, str], None]


def remote_command(argv: Sequence[str], timeout: float) -> str:
    """The command line sent to the host: ``argv`` under coreutils ``timeout``, quoted once.

    The remote ``timeout`` kills the command on the host when the deadline passes, so a
    command the client gave up on does not keep running there.
    """
    seconds = max(1, int(timeout + 0.999))
    return shlex.join(["timeout", "-k", str(KILL_AFTER), str(seconds), *argv])


#: Exit statuses of coreutils ``timeout`` meaning the deadline passed on the host.
REMOTE_TIMEOUT_STATUSES = frozenset({124, 137})
