"""The one injectable clock: a context's time parts come from it, and the fake moves only
when slept on."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rollout.clock import SYSTEM, PartsClock, with_parts
from rollout.commands.deploys import deploy
from rollout.commands.rollbacks import rollback
from rollout.errors import RollbackIncomplete
from rollout.models import Playbook
from rollout.testing import FakeBackend, FakeClock, fake_context


def test_system_clock_is_the_time_module() -> None:
    """The default clock reads time.time and time.monotonic and sleeps with time.sleep."""
    assert isinstance(SYSTEM, PartsClock)
    assert (SYSTEM.wall, SYSTEM.monotonic, SYSTEM.sleep) == (time.time, time.monotonic, time.sleep)


def test_fake_clock_moves_only_when_slept_on() -> None:
    """FakeClock's wall and monotonic time stand still until something sleeps, then both move."""
    clock = FakeClock(wall=100.0, monotonic=5.0)
    assert (clock.wall(), clock.monotonic()) == (100.0, 5.0)
    clock.sleep(2.5)
    assert (clock.wall(), clock.monotonic(), clock.sleeps) == (102.5, 7.5, [2.5])


def test_replacing_one_part_keeps_the_others(tmp_path: Path, playbook: Playbook,
                                             fleet: FakeBackend) -> None:  # fmt: skip
    """Replacing only a context clock's monotonic part (``with_parts``): its wall time and
    sleep still come from the clock it was given, and a deploy runs on it."""
    ctx = fake_context(tmp_path, playbook, fleet)
    fake = FakeClock(wall=42.0)
    ctx.clock = with_parts(fake, monotonic=lambda: 7.0)
    assert (ctx.clock.wall(), ctx.clock.monotonic(), fake.monotonic()) == (42.0, 7.0, 0.0)
    ctx.clock.sleep(1.0)
    assert fake.sleeps == [1.0] and ctx.clock.wall() == 43.0
    assert with_parts(fake, wall=lambda: 1.0).monotonic() == fake.monotonic()
    deploy(ctx, 1)
    assert ctx.ledger.state("inv").phase == 1


def test_a_context_clock_reaches_the_ledger_and_the_executor(
    tmp_path: Path, playbook: Playbook, fleet: FakeBackend
) -> None:
    """One FakeClock given to a context stamps the ledger's runs and paces the executor: a
    rollback whose host keeps failing sleeps on it between attempts until the retry deadline."""
    clock = FakeClock(wall=1_900_000_000.0)
    ctx = fake_context(tmp_path, playbook, fleet, clock=clock, retry_deadline=5.0)
    deploy(ctx, 1)
    deploy(ctx, 2)
    assert clock.sleeps == []
    fleet.fakes["h1"].apply_ignored = True  # answers :ok, changes nothing: verify fails
    with pytest.raises(RollbackIncomplete, match="h1"):
        rollback(ctx, 1)
    assert len(clock.sleeps) > 1 and sum(clock.sleeps) < 5.0  # stopped at the deadline
    assert clock.monotonic() == sum(clock.sleeps)
    assert {run.started for run in ctx.ledger.runs("inv", 10)} == {1_900_000_000.0}


def test_events_are_stamped_by_the_run_clock(
    tmp_path: Path, playbook: Playbook, fleet: FakeBackend
) -> None:
    """Every event a deploy emits (the run's, the executor's) carries the wall time of the
    context's clock, not the system's."""
    clock = FakeClock(wall=1_900_000_000.0)
    ctx = fake_context(tmp_path, playbook, fleet, clock=clock)
    deploy(ctx, 1)
    events = ctx.emit.events  # type: ignore[attr-defined]  # fake_context's Collector
    assert events and {event.ts for event in events} == {1_900_000_000.0}
