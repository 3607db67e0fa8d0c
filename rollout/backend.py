"""The backend seam the executor drives: per-host consoles and commands over open sessions.

:class:`SSHBackend` is the real one (a :class:`~rollout.fleet.Fleet` of SSH sessions and a
:class:`~rollout.console.RemoteConsole` per host). Tests use ``rollout.testing.FakeBackend``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .console import RemoteConsole
from .consolecode import ApplyResult, Change, FlagReading, HealthReading
from .erlcall import ConsolePaths, PathChoice
from .errors import TransportError
from .fleet import Fleet, Outcome
from .fleetstate import FleetSide
from .models import ConsoleMode, FlagState, Host, Playbook
from .output import MAX_COMMAND_OUTPUT_BYTES
from .transport.base import CommandResult, Session, Transport


class HostConsole(Protocol):
    """The remote console of one host."""

    def read_flags(self) -> FlagReading: ...

    def apply(self, state: FlagState, change: Change | None = None) -> ApplyResult: ...

    def health(self) -> HealthReading: ...


class Backend(Protocol):
    def connect(self, names: Sequence[str]) -> dict[str, Outcome[None]]:
        """Open sessions; a host that failed comes back as an error outcome."""
        ...

    def console(self, name: str) -> HostConsole: ...

    def run(self, name: str, argv: Sequence[str], *, timeout: float) -> CommandResult: ...

    def console_path(self, name: str) -> PathChoice | None:
        """The console path this run chose for ``name`` (None before its first call)."""
        ...

    def reset(self, name: str) -> None:
        """Drop a host's session so the next use reconnects (after a transport failure)."""
        ...

    def close(self) -> None: ...


class SSHBackend:
    """Real hosts over SSH."""

    def __init__(
        self,
        hosts: Sequence[Host],
        transport: Transport,
        playbook: Playbook,
        console: ConsoleMode | None = None,
    ) -> None:
        self.fleet = Fleet(hosts, transport)
        #: each host's console path, probed once per run (``console``: ROLLOUT_CONSOLE)
        self.paths = ConsolePaths(console)
        self.allow = playbook.flags
        self.metrics = tuple(t.metric for t in playbook.health.thresholds)
        for phase in playbook.phases:
            if phase.health:
                extra = (t.metric for t in phase.health.thresholds if t.metric not in self.metrics)
                self.metrics += tuple(extra)
        self.timeout = playbook.policy.command_timeout
        self.health_timeout = playbook.source.timeout
        #: this run's side of the hosts' records and leases (set by ``commands.running``)
        self.side: FleetSide | None = None

    def connect(self, names: Sequence[str]) -> dict[str, Outcome[None]]:
        results = self.fleet.connect(names)
        return {n: Outcome(n, error=o.error) for n, o in results.items()}

    def _session(self, name: str) -> Session:
        if name not in self.fleet.sessions:
            outcome = self.fleet.connect([name])[name]
            if outcome.error is not None:
                raise outcome.error
        return self.fleet.sessions[name]

    def console(self, name: str) -> HostConsole:
        return RemoteConsole(
            self._session(name),
            allow=self.allow,
            metrics=self.metrics,
            timeout=self.timeout,
            health_timeout=self.health_timeout,
            side=self.side,
            paths=self.paths,
        )

    def console_path(self, name: str) -> PathChoice | None:
        return self.paths.get(name)

    def run(self, name: str, argv: Sequence[str], *, timeout: float) -> CommandResult:
        try:
            return self._session(name).run(
                argv, timeout=timeout, max_output=MAX_COMMAND_OUTPUT_BYTES
            )
        except TransportError:
            self.reset(name)
            raise

    def reset(self, name: str) -> None:
        self.fleet.drop(name)

    def close(self) -> None:
        self.fleet.close()
