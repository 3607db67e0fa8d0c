"""A first-class fake of the backend seam, for fast unit tests of the engine.

:class:`FakeBackend` holds simulated hosts whose flags behave like the service's
``Foundation.FeatureFlags`` (unknown flags answer ``{:error, :unknown_flag}``; a restart
resets flags to defaults). Faults are switched on per host. Nothing here touches SSH.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .clock import SYSTEM, Clock, PartsClock, with_parts
from .consolecode import ApplyResult, Change, FlagReading, HealthReading
from .errors import CommandTimeout, ConsoleError, TransportError
from .fleet import Outcome
from .models import FlagState, FlagValue, Observed, Playbook
from .transport.base import CommandResult

if TYPE_CHECKING:
    from .commands.context import Context

#: Answers a command run on a fake host (its argv as given to ``run``), in place of the
#: default "exit 0, no output". Tests use it to simulate tar, sha256sum or a restart script.
CommandHandler = Callable[["FakeHost", tuple[str, ...]], CommandResult]

DEFAULT_METRICS: dict[str, float | None] = {
    "error_rate": 0.5,
    "restart_frequency": 0.0,
    "message_delivery_success": 99.9,
    "state_recovery_success": 99.95,
    "average_response_time": 20.0,
}


@dataclass
class FakeHost:
    """One simulated release host."""

    name: str
    known: tuple[str, ...]
    flags: dict[str, FlagValue] = field(default_factory=dict)
    metrics: dict[str, float | None] = field(default_factory=lambda: dict(DEFAULT_METRICS))
    reachable: bool = True  # False: connect fails
    node_up: bool = True  # False: the console fails (nodedown)
    apply_times_out: bool = False  # the apply takes effect but its answer never comes
    apply_ignored: bool = False  # setters answer :ok but change nothing
    unknown: frozenset[str] = frozenset()  # flags this node does not know
    refuse_enable: frozenset[str] = frozenset()  # enabling these answers {:error, :not_ready}
    down_after: int | None = None  # the node goes down after this many applies
    health_hangs: bool = False  # the health call never answers (killed at its deadline)
    applies: int = 0
    commands: list[tuple[str, ...]] = field(default_factory=list)
    handler: CommandHandler | None = None  # answers run(); None: exit 0, no output
    files: dict[str, bytes] = field(default_factory=dict)  # absolute path -> content
    restarts: int = 0

    def __post_init__(self) -> None:
        if not self.flags:
            self.flags = {name: False for name in self.known}

    def restart(self) -> None:
        self.restarts += 1
        self.flags = {name: False for name in self.known}

    def result(
        self, argv: Sequence[str], status: int = 0, stdout: str = "", stderr: str = ""
    ) -> CommandResult:
        """A finished command's result on this host, for handlers to return."""
        return CommandResult(self.name, " ".join(argv), status, stdout, stderr, 0.0)


class FakeConsole:
    def __init__(self, host: FakeHost, allow: Sequence[str], metrics: Sequence[str]) -> None:
        self.fake = host
        self.allow = tuple(allow)
        self.metric_names = tuple(metrics)

    def _check(self) -> None:
        if not self.fake.reachable:
            raise TransportError(self.fake.name, "connection lost")
        if not self.fake.node_up:
            raise ConsoleError(self.fake.name, "remote console failed (exit 1): nodedown")

    def _reading(self) -> FlagReading:
        flags: dict[str, Observed] = {n: self.fake.flags.get(n) for n in self.allow}
        return FlagReading(self.fake.name, f"foundation_{self.fake.name}@fake", flags)

    def read_flags(self) -> FlagReading:
        self._check()
        return self._reading()

    def apply(self, state: FlagState, change: Change | None = None) -> ApplyResult:
        self._check()
        self.fake.applies += 1
        errors: dict[str, str] = {}
        for name, value in state:
            if name in self.fake.unknown:
                errors[name] = "{:error, :unknown_flag}"
                continue
            if name in self.fake.refuse_enable and value is not False:
                errors[name] = "{:error, :not_ready}"
                continue
            if not self.fake.apply_ignored:
                self.fake.flags[name] = value
        if self.fake.down_after is not None and self.fake.applies >= self.fake.down_after:
            self.fake.node_up = False
        if self.fake.apply_times_out:
            raise CommandTimeout(self.fake.name, "the remote console did not answer")
        return ApplyResult(self._reading(), errors)

    def health(self) -> HealthReading:
        self._check()
        if self.fake.health_hangs:
            raise CommandTimeout(self.fake.name, "the remote console did not answer")
        values = {m: self.fake.metrics.get(m) for m in self.metric_names}
        raw = {m: repr(v) for m, v in values.items()}
        return HealthReading(self._reading(), values, raw)


class FakeBackend:
    """Implements :class:`rollout.backend.Backend` over :class:`FakeHost` objects."""

    def __init__(self, hosts: Mapping[str, FakeHost], metrics: Sequence[str] = ()) -> None:
        self.fakes = dict(hosts)
        self.metrics = tuple(metrics) or tuple(DEFAULT_METRICS)
        self.connected: set[str] = set()
        self.resets: list[str] = []
        self.closed = False

    def connect(self, names: Sequence[str]) -> dict[str, Outcome[None]]:
        out: dict[str, Outcome[None]] = {}
        for name in names:
            if self.fakes[name].reachable:
                self.connected.add(name)
                out[name] = Outcome(name)
            else:
                out[name] = Outcome(name, error=TransportError(name, "cannot reach host"))
        return out

    def console(self, name: str) -> FakeConsole:
        fake = self.fakes[name]
        if not fake.reachable:
            raise TransportError(name, "cannot reach host")
        return FakeConsole(fake, fake.known, self.metrics)

    def run(self, name: str, argv: Sequence[str], *, timeout: float) -> CommandResult:
        fake = self.fakes[name]
        if not fake.reachable:
            raise TransportError(name, "cannot reach host")
        fake.commands.append(tuple(argv))
        if fake.handler is not None:
            return fake.handler(fake, tuple(argv))
        return CommandResult(name, " ".join(argv), 0, "", "", 0.0)

    def console_path(self, name: str) -> None:
        return None  # a fake host has no console path

    def reset(self, name: str) -> None:
        self.resets.append(name)

    def close(self) -> None:
        self.closed = True


class FakeClock:
    """A :class:`~rollout.clock.Clock` whose time moves only when the code under test sleeps
    (or the test calls :meth:`advance`); both its wall and monotonic time move together."""

    def __init__(self, wall: float = 1_800_000_000.0, monotonic: float = 0.0) -> None:
        self.wall_now = wall
        self.mono_now = monotonic
        self.sleeps: list[float] = []

    def wall(self) -> float:
        return self.wall_now

    def monotonic(self) -> float:
        return self.mono_now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.wall_now += seconds
        self.mono_now += seconds


def _no_sleep(_seconds: float) -> None:
    pass


def clock_of(now: Callable[[], float]) -> Clock:
    """A :class:`~rollout.clock.Clock` reading ``now`` for both its wall and monotonic time,
    whose sleep returns at once: time moves only when the test moves ``now``."""
    return PartsClock(now, now, _no_sleep)


def fake_fleet(names: Sequence[str], flags: Sequence[str]) -> FakeBackend:
    return FakeBackend({n: FakeHost(n, tuple(flags)) for n in names})


def fake_context(
    root: Path,
    playbook: Playbook,
    backend: FakeBackend,
    *,
    clock: Clock | None = None,
    wait: Callable[[float], bool] | None = None,
    **options: Any,
) -> Context:
    """A command :class:`~rollout.commands.context.Context` over ``backend``, with a real
    ledger file under ``root``; ``options`` override :class:`~rollout.commands.context.Options`.
    ``clock`` is the context's and the ledger's (default: the system's time, with no
    sleeping; see :func:`clock_of`)."""
    from .commands.context import Context, Options
    from .events import Collector
    from .ledger import open_ledger
    from .models import Host, Inventory

    names = tuple(backend.fakes)
    hosts = tuple(Host(n, "127.0.0.1") for n in names)
    inventory = Inventory(str(root / "inv.yml"), "inv", hosts, {"all": frozenset(names)})
    defaults: dict[str, Any] = {"yes": True, "wait": False, "skip_checks": True,
                                "retry_deadline": 3.0}  # fmt: skip
    path = root / "ledger.db"
    ledger = open_ledger(path, clock=clock or SYSTEM)
    ctx = Context(Options(**{**defaults, **options}), playbook, inventory, hosts, ledger,
                  Collector(), lambda _h, _p: backend,
                  clock=clock or with_parts(SYSTEM, sleep=_no_sleep))  # fmt: skip
    if wait is not None:
        ctx.cancel.wait = wait  # type: ignore[method-assign,assignment]
    return ctx
