"""The one clock a run is given: wall time, monotonic time and sleeping, injected together.

A command's :class:`~rollout.commands.context.Context` holds one :class:`Clock` and hands
it to what it drives: the executor (retry deadlines, lease races), the soak, restarts, checks,
notifications, backups, the fleet records it writes. The ledger holds one too (its record
timestamps and lock waits; :data:`SYSTEM` when a command opens it), and so can the report
page. Each takes ``clock: Clock = SYSTEM`` and reads ``clock.wall()``,
``clock.monotonic()`` and ``clock.sleep()``; whoever emits an event
(:class:`rollout.events.Event`) stamps its ``ts`` with ``clock.wall()``. Only the SSH
transport's per-read deadlines (they bound real sockets) read :mod:`time` directly.

Wall time is what records and other processes share (epoch seconds); monotonic time
measures durations inside this process, so a stepped wall clock neither shortens nor
stretches them. The real one is :data:`SYSTEM`; tests use ``rollout.testing.FakeClock``.
:func:`utc` writes a wall time for people (a lock's start, a fleet record's change).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    """Where the engine's time comes from."""

    def wall(self) -> float:
        """Seconds since the epoch (``time.time``): timestamps others read."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never steps (``time.monotonic``): durations in this run."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (``time.sleep``)."""
        ...


@dataclass(frozen=True)
class PartsClock:
    """A :class:`Clock` made of three functions: the system's unless given."""

    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


#: The system's clock.
SYSTEM: Clock = PartsClock()


def with_parts(
    clock: Clock,
    *,
    wall: Callable[[], float] | None = None,
    monotonic: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> Clock:
    """``clock`` with some of its parts replaced (the rest still read from ``clock``)."""
    return PartsClock(wall or clock.wall, monotonic or clock.monotonic, sleep or clock.sleep)


def utc(ts: float) -> str:
    """A timestamp for people: ``2026-11-23T04:12:07Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
