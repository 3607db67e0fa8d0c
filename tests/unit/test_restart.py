"""Rolling restarts on the fake backend: batches, waiting for the console, re-apply, stop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rollout.clock import PartsClock
from rollout.errors import UsageError
from rollout.events import Collector, Kind
from rollout.executor import Executor
from rollout.ledger import Ledger
from rollout.models import Host, Playbook
from rollout.playbook import load_playbook
from rollout.restart import (
    RestartStatus,
    RestartStopped,
    emergency_restarter,
    restart_argv,
    rolling_restart,
)
from rollout.testing import FakeBackend, FakeHost
from rollout.transport.base import CommandResult

REPO = Path(__file__).resolve().parents[2]
NAMES = ("h1", "h2", "h3")


class Clock:
    """Monotonic time that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def restarts(fake: FakeHost, argv: tuple[str, ...]) -> CommandResult:
    """Any command restarts the fake node (flags back to defaults)."""
    fake.restart()
    return fake.result(argv, stdout="restarted")


@pytest.fixture
def playbook() -> Playbook:
    return load_playbook(REPO / "playbooks" / "otp_refactor.yml")


@pytest.fixture
def fleet(playbook: Playbook) -> FakeBackend:
    fakes = {n: FakeHost(n, playbook.flags, handler=restarts) for n in NAMES}
    for fake in fakes.values():
        fake.flags.update(playbook.phase(2).state.as_dict())
    return FakeBackend(fakes)


@pytest.fixture
def hosts() -> tuple[Host, ...]:
    return tuple(Host(n, "127.0.0.1", restart_command=f"/srv/{n}/restart.sh") for n in NAMES)


@pytest.fixture
def events() -> Collector:
    return Collector()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ex(
    tmp_path: Path, playbook: Playbook, fleet: FakeBackend, events: Collector, clock: Clock
) -> Iterator[Executor]:
    ledger = Ledger(tmp_path / "ledger.db")
    run = ledger.start_run("inv", "invoke restart", ())
    yield Executor(
        playbook=playbook,
        inventory_name="inv",
        hosts=list(NAMES),
        backend=fleet,
        ledger=ledger,
        run=run,
        emit=events,
        clock=PartsClock(monotonic=clock, sleep=clock.sleep),
    )
    ledger.close()


def order(events: Collector) -> list[tuple[str, str | None]]:
    """(what, host) for each restart command and each verification, in emitted order."""
    out: list[tuple[str, str | None]] = []
    for e in events.events:
        if e.kind is Kind.RESTART and e.message.startswith("restarting"):
            out.append(("restart", e.host))
        elif e.kind is Kind.VERIFY:
            out.append(("verify", e.host))
    return out


def test_one_at_a_time_reapplies_and_verifies_before_the_next(
    ex: Executor, fleet: FakeBackend, playbook: Playbook, hosts: tuple[Host, ...], events: Collector
) -> None:
    """Each host is restarted, re-applied and verified before the next one is restarted."""
    report = rolling_restart(ex, playbook.phase(2), hosts)
    assert order(events) == [
        ("restart", "h1"),
        ("verify", "h1"),
        ("restart", "h2"),
        ("verify", "h2"),
        ("restart", "h3"),
        ("verify", "h3"),
    ]
    assert report.verified == NAMES and report.untouched == () and report.failed == ()
    for fake in fleet.fakes.values():
        assert fake.restarts == 1
        assert fake.flags == playbook.phase(2).state.as_dict()
        assert fake.commands == [("sh", "-c", f"/srv/{fake.name}/restart.sh")]


def test_batches_restart_together(
    ex: Executor, playbook: Playbook, hosts: tuple[Host, ...], events: Collector
) -> None:
    """batch=2 restarts two hosts, verifies both, then the last one."""
    report = rolling_restart(ex, playbook.phase(2), hosts, batch=2)
    assert report.batches == (("h1", "h2"), ("h3",))
    seen = order(events)
    assert set(seen[:2]) == {("restart", "h1"), ("restart", "h2")}
    assert set(seen[2:4]) == {("verify", "h1"), ("verify", "h2")}
    assert seen[4:] == [("restart", "h3"), ("verify", "h3")]
    assert [h.batch for h in report.hosts] == [1, 1, 2]


def test_waits_for_the_console_with_backoff(
    ex: Executor, fleet: FakeBackend, playbook: Playbook, hosts: tuple[Host, ...], clock: Clock
) -> None:
    """A node that answers only after a few polls is waited for (0.5 s, doubling)."""

    def slow(fake: FakeHost, argv: tuple[str, ...]) -> CommandResult:
        fake.restart()
        fake.node_up = False
        return fake.result(argv)

    fleet.fakes["h1"].handler = slow

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.sleeps) == 3:
            fleet.fakes["h1"].node_up = True

    report = rolling_restart(
        ex, playbook.phase(2), hosts[:1], clock=PartsClock(monotonic=clock, sleep=sleep)
    )
    assert clock.sleeps == [0.5, 1.0, 2.0]
    assert report.hosts[0].status is RestartStatus.VERIFIED


def test_host_that_does_not_come_back_stops_the_restart(
    ex: Executor, fleet: FakeBackend, playbook: Playbook, hosts: tuple[Host, ...]
) -> None:
    """A node that never answers fails its batch; later hosts are not touched at all."""

    def dies(fake: FakeHost, argv: tuple[str, ...]) -> CommandResult:
        fake.restart()
        fake.node_up = False
        return fake.result(argv)

    fleet.fakes["h2"].handler = dies
    with pytest.raises(RestartStopped, match="STOPPED after batch 2 of 3") as caught:
        rolling_restart(ex, playbook.phase(2), hosts, wait_timeout=10)
    report = caught.value.report
    assert caught.value.exit_code == 5
    assert [h.status for h in report.hosts] == [
        RestartStatus.VERIFIED,
        RestartStatus.NO_ANSWER,
        RestartStatus.UNTOUCHED,
    ]
    assert report.restarted == ("h1", "h2") and report.untouched == ("h3",)
    assert fleet.fakes["h3"].commands == [] and fleet.fakes["h3"].restarts == 0
    assert "deploy --phase 2" in (caught.value.hint or "")


def test_failing_restart_command_stops_the_restart(
    ex: Executor, fleet: FakeBackend, playbook: Playbook, hosts: tuple[Host, ...]
) -> None:
    """A restart command exiting non-zero is a failure with its stderr; nothing else runs."""
    fleet.fakes["h1"].handler = lambda fake, argv: fake.result(argv, 1, stderr="unit not found")
    with pytest.raises(RestartStopped, match="h1: the restart command exited 1: unit not found"):
        rolling_restart(ex, playbook.phase(2), hosts)
    assert all(fleet.fakes[n].commands == [] for n in ("h2", "h3"))
    intents = ex.ledger.intents(ex.run.id)
    assert [(i.host, i.action, i.ok) for i in intents] == [("h1", "restart", False)]


def test_host_that_does_not_verify_stops_the_restart(
    ex: Executor, fleet: FakeBackend, playbook: Playbook, hosts: tuple[Host, ...]
) -> None:
    """A host that answers but whose re-applied flags do not read back fails the restart."""
    fleet.fakes["h1"].apply_ignored = True
    with pytest.raises(RestartStopped) as caught:
        rolling_restart(ex, playbook.phase(2), hosts)
    first = caught.value.report.hosts[0]
    assert first.status is RestartStatus.NOT_VERIFIED and "read back differs" in (first.error or "")
    assert caught.value.report.untouched == ("h2", "h3")


def test_without_a_recorded_phase_hosts_restart_without_reapply(
    ex: Executor, fleet: FakeBackend, hosts: tuple[Host, ...], events: Collector
) -> None:
    """No recorded phase: hosts restart (flags at defaults), and a warning says so."""
    report = rolling_restart(ex, None, hosts)
    assert [h.status for h in report.hosts] == [RestartStatus.RESTARTED] * 3
    assert all(f.applies == 0 and not any(f.flags.values()) for f in fleet.fakes.values())
    assert "without re-applying" in events.of(Kind.WARNING)[0].message


def test_restart_command_and_systemd_default() -> None:
    """restart_command runs under sh -c as given; else sudo systemctl with the chosen service."""
    assert restart_argv(Host("h", "x", restart_command="a && b 'c'")) == [
        "sh",
        "-c",
        "a && b 'c'",
    ]
    default = ["sudo", "-n", "systemctl", "restart", "foundation"]
    assert restart_argv(Host("h", "x")) == default
    assert restart_argv(Host("h", "x", service="svc@blue"))[-1] == "svc@blue"
    assert restart_argv(Host("h", "x", service="svc@blue"), "other")[-1] == "other"


@pytest.mark.parametrize(
    ("service", "batch"), [("foo;reboot", 1), ("-x", 1), ("$(id)", 1), (None, 0)]
)
def test_bad_service_or_batch_is_refused_before_any_command(
    ex: Executor,
    fleet: FakeBackend,
    playbook: Playbook,
    service: str | None,
    batch: int,
) -> None:
    """A service name that is not a unit name, or a batch below 1, is refused up front."""
    with pytest.raises(UsageError):
        rolling_restart(ex, playbook.phase(2), [Host("h1", "x")], service=service, batch=batch)
    assert fleet.fakes["h1"].commands == []


def test_emergency_restarter_restarts_all_at_once_and_returns_results(
    ex: Executor, fleet: FakeBackend, playbook: Playbook, hosts: tuple[Host, ...], events: Collector
) -> None:
    """The emergency hook restarts every named host in one batch; failures are results."""
    fleet.fakes["h3"].apply_ignored = True
    hook = emergency_restarter(hosts)
    report = hook(ex, playbook.phase(1), ["h1", "h3"])
    assert [(r.host, r.ok) for r in report.results] == [("h1", True), ("h3", False)]
    assert report.results[1].mismatched and fleet.fakes["h2"].restarts == 0
    assert [e.data["hosts"] for e in events.of(Kind.BATCH)] == [["h1", "h3"]]
