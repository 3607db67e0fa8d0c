"""Before any change: connect to every host, read it, take this run's lease on it.

:meth:`Preflight.preflight` (deploy) reads each host as soon as its own connection is up and
stops the run before a change if any host fails, or if the playbook declares a flag the
service does not know; :meth:`Preflight.claim` (rollback, monitor, advance) goes on without
the unreachable hosts. Both take the fleet lease through :class:`~.claims.Claims`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..consolecode import FlagReading
from ..errors import (
    HostError,
    HostOutcome,
    HostsUnreachable,
    InputError,
    PlaybookError,
    SourceLocation,
)
from ..events import Kind
from ..flagvalues import event_flags
from ..fleet import Outcome, each, run_parallel
from ..fleetstate import LeaseConflict, Op
from ..models import Observed
from .claims import Claims
from .results import _describe_match


@dataclass(frozen=True)
class _Preflight:
    """One host's pre-flight: the connection's error, or the read's outcome."""

    connect_error: HostError | None
    read: Outcome[FlagReading] | None
    bad_input: InputError | None = None  # the operator's to fix (known_hosts): stops the run


class Preflight(Claims):
    """Connecting, reading and claiming the hosts (a concern of the executor)."""

    def connect_all(self, names: Sequence[str] | None = None) -> dict[str, HostError]:
        """Connect to hosts; return the ones that failed (and emit a line per host)."""
        names = list(names or self.hosts)
        results = self.backend.connect(names)
        failed: dict[str, HostError] = {}
        for name in names:
            error = results[name].error
            self._connected(name, error)
            if error is not None:
                failed[name] = error
        return failed

    def _connected(self, name: str, error: HostError | None) -> None:
        if error is not None:
            self.emit(Kind.CONNECT, error.detail, host=name, ok=False, hint=error.hint)
        else:
            self.emit(Kind.CONNECT, "connected", host=name, ok=True)

    def _emit_read(self, name: str, outcome: Outcome[FlagReading]) -> None:
        if outcome.error is not None:
            self.forget_if_broken(name, outcome.error)
            self.emit(
                Kind.READ, outcome.error.detail, host=name, ok=False, **self._console_data(name)
            )
        else:
            assert outcome.value is not None
            flags = outcome.value.flags
            match = self.playbook.match(flags)
            self.emit(
                Kind.READ,
                _describe_match(match),
                host=name,
                ok=True,
                flags=event_flags(flags),
                matches=match,
                **self._console_data(name),
            )

    def _connect_and_read(self, name: str) -> _Preflight:
        """Connect to one host and read it as soon as its own connection is up."""
        try:
            error = self.backend.connect([name])[name].error
        except InputError as exc:
            return _Preflight(None, None, exc)
        if error is not None:
            return _Preflight(error, None)
        try:
            return _Preflight(None, Outcome(name, value=self.backend.console(name).read_flags()))
        except HostError as exc:
            return _Preflight(None, Outcome(name, error=exc))

    def preflight(self, *, force: bool = False) -> dict[str, Mapping[str, Observed]]:
        """Connect to and read every host; any failure stops the run before a change.

        Each host is read as soon as its own connection is up, so the slowest handshake does
        not hold back every other host's read; the events come out as before (every
        connection, then every read). The read also takes this run's fleet lease on the
        host (all or nothing: see :meth:`_settle_claims`).
        """
        self._begin_claim(force)
        done = run_parallel(self.hosts, self._connect_and_read)
        for outcome in done.values():
            if outcome.value is not None and outcome.value.bad_input is not None:
                raise outcome.value.bad_input
        failed: dict[str, HostError] = {}
        for name in self.hosts:
            step = done[name].value
            error = done[name].error or (step.connect_error if step else None)
            self._connected(name, error)
            if error is not None:
                failed[name] = error
        reads: dict[str, Outcome[FlagReading]] = {}
        conflicts: dict[str, LeaseConflict] = {}
        for name in self.hosts:
            step = done[name].value
            if name in failed or step is None or step.read is None:
                continue
            if isinstance(step.read.error, LeaseConflict):
                conflicts[name] = step.read.error
            else:
                reads[name] = step.read
        self._announce_takeovers()
        reads.update(self._settle_claims(conflicts))
        readings: dict[str, Mapping[str, Observed]] = {}
        for name in self.hosts:
            if name not in reads:
                continue
            self._emit_read(name, reads[name])
            if reads[name].error is not None:
                failed[name] = reads[name].error  # type: ignore[assignment]
            else:
                value = reads[name].value
                assert value is not None
                readings[name] = value.flags
        self._announce_takeovers()
        if failed:
            lines = "; ".join(f"{h}: {e.detail}" for h, e in failed.items())
            raise HostsUnreachable(
                f"pre-flight failed on {len(failed)} of {len(self.hosts)} host(s), "
                f"nothing was changed: {lines}",
                hint="fix the hosts, or leave them out with --limit, then re-run",
                results=[HostOutcome(h, h not in failed, failed[h].detail if h in failed else None,
                                     h in failed and h not in reads) for h in self.hosts],
            )  # fmt: skip
        self._refuse_unknown_flags(readings)
        return readings

    def claim(self, *, force: bool = False) -> tuple[dict[str, HostError], dict[str, FlagReading]]:
        """Connect, read and lease every reachable host (rollback, monitor, advance).

        Unreachable hosts come back as errors (the caller goes on without them); a host held
        by another live run ends the claim (FleetBusy), unless ``force`` (an emergency).
        """
        self._begin_claim(force)
        outcomes = each(self.hosts, lambda n: self.backend.console(n).read_flags(),
                        connect=self.connect_all)  # fmt: skip
        unreachable = {n: o.error for n, o in outcomes.items() if o.unreachable and o.error}
        reachable = [h for h in self.hosts if h not in unreachable]
        conflicts: dict[str, LeaseConflict] = {}
        for name, outcome in outcomes.items():
            if isinstance(outcome.error, LeaseConflict):
                conflicts[name] = outcome.error
        self._announce_takeovers()
        outcomes.update(self._settle_claims(conflicts))
        readings: dict[str, FlagReading] = {}
        for name in reachable:
            outcome = outcomes[name]
            if outcome.error is not None:
                # a host that answers SSH but not its console stays in the run (a rollback
                # still tries it, and reports it); the script took its lease before the console
                self.forget_if_broken(name, outcome.error)
                self.emit(Kind.READ, outcome.error.detail, host=name, ok=False,
                          **self._console_data(name))  # fmt: skip
            elif outcome.value is not None:
                readings[name] = outcome.value
        self._announce_takeovers()
        if self.side is not None:
            self.side.op_read = Op.RENEW if self.side.lease_id else Op.PEEK
        return unreachable, readings

    def _refuse_unknown_flags(self, readings: Mapping[str, Mapping[str, Observed]]) -> None:
        """A declared flag that a node answers ``absent`` is one its service does not know:
        every change would fail on it and no undo could verify, so stop before any change."""
        unknown: dict[str, list[str]] = {}
        for name in self.hosts:
            flags = readings.get(name, {})
            for flag in self.playbook.flags:
                if flags.get(flag) is None:
                    unknown.setdefault(flag, []).append(name)
        if not unknown:
            return
        first = next(iter(unknown))
        lines = self.playbook.flag_lines
        shown = "; ".join(
            f"`{flag}` (line {lines.get(flag, '?')}) on {', '.join(hosts)}"
            for flag, hosts in unknown.items()
        )
        self.emit(Kind.WARNING, f"flags the service does not know: {shown}",
                  unknown={f: h for f, h in unknown.items()})  # fmt: skip
        raise PlaybookError(
            f"the playbook declares flag(s) the service does not know (read back absent): "
            f"{shown}; nothing was changed",
            location=SourceLocation(self.playbook.path, lines.get(first), f"flags.{first}"),
            hint="deploy a release of the service that defines those flags, or remove them "
            "from the playbook's flags: and phases",
        )
