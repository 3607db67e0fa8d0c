"""The soak loop on the fake backend with a fake clock: counting, drift, rollback, resume."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rollout.commands.context import Context
from rollout.commands.deploys import deploy
from rollout.commands.monitoring import monitor
from rollout.errors import Interrupted, RollbackIncomplete, RolledBack
from rollout.events import Collector, Kind
from rollout.models import Playbook
from rollout.testing import FakeBackend, clock_of, fake_context

REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    """Wall time that advances only when the soak waits."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.cancel_after: int | None = None
        self.waits = 0
        self.on_wait: list[object] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits += 1
        self.now += seconds
        for hook in list(self.on_wait):
            hook(self.waits)  # type: ignore[operator]
        return self.cancel_after is not None and self.waits >= self.cancel_after


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ctx(tmp_path: Path, playbook: Playbook, fleet: FakeBackend, clock: FakeClock) -> Context:
    return fake_context(tmp_path, playbook, fleet, clock=clock_of(clock), wait=clock.wait,
                        retry_deadline=1.0)  # fmt: skip


def soak_options(ctx: Context, **kw: object) -> None:
    ctx.options = dataclasses.replace(ctx.options, **kw)  # type: ignore[arg-type]


def test_healthy_soak_completes_after_required_time(ctx: Context, clock: FakeClock) -> None:
    """A healthy fleet completes a 30 s soak polled every 5 s, counted in the ledger."""
    deploy(ctx, 1)
    soak_options(ctx, soak=None, interval=5.0)
    ctx.ledger.set_phase("inv", 1, ctx.ledger.runs("inv")[0].id, soak_required=30.0)
    state = monitor(ctx)
    assert state.soak_complete and state.soak_counted == 30.0
    assert 6 <= clock.waits <= 8


def test_breach_rolls_back_to_previous_phase(
    ctx: Context, fleet: FakeBackend, playbook: Playbook
) -> None:
    """error_rate 7.5 on one host for failure_limit polls rolls every host back, verified."""
    deploy(ctx, 1)
    deploy(ctx, 2)
    fleet.fakes["h2"].metrics["error_rate"] = 7.5
    soak_options(ctx, interval=1.0)
    with pytest.raises(RolledBack, match="error_rate"):
        monitor(ctx)
    for fake in fleet.fakes.values():
        assert fake.flags == playbook.phase(1).state.as_dict()
    state = ctx.ledger.state("inv")
    assert state.phase == 1 and state.paused
    samples = [
        e for e in ctx.ledger.events(ctx.ledger.runs("inv")[0].id) if e.kind == Kind.SAMPLE.value
    ]
    assert len(samples) == playbook.health_for(2).failure_limit


def test_unreachable_console_rolls_back_after_inconclusive_limit(
    ctx: Context, fleet: FakeBackend, playbook: Playbook
) -> None:
    """A console that stops answering causes rollback after inconclusive_limit polls."""
    deploy(ctx, 1)
    deploy(ctx, 2)
    soak_options(ctx, interval=1.0)
    fleet.fakes["h3"].health_hangs = True
    with pytest.raises(RolledBack, match="could not be judged"):
        monitor(ctx)
    run = ctx.ledger.runs("inv")[0]
    samples = [e for e in ctx.ledger.events(run.id) if e.kind == Kind.SAMPLE.value]
    assert len(samples) == playbook.health_for(2).inconclusive_limit
    assert fleet.fakes["h3"].flags == playbook.phase(1).state.as_dict()


def test_dead_node_during_soak_is_an_incomplete_rollback(ctx: Context, fleet: FakeBackend) -> None:
    """A node that dies mid-soak forces a rollback that cannot verify it: never success."""
    deploy(ctx, 1)
    deploy(ctx, 2)
    soak_options(ctx, interval=1.0)
    fleet.fakes["h3"].node_up = False
    with pytest.raises(RollbackIncomplete, match="h3"):
        monitor(ctx)


def test_drift_is_repaired_and_not_counted(
    ctx: Context, fleet: FakeBackend, clock: FakeClock, playbook: Playbook
) -> None:
    """A node restarted mid-soak is re-applied and verified; that interval does not count."""
    deploy(ctx, 1)
    soak_options(ctx, interval=5.0)
    ctx.ledger.set_phase("inv", 1, ctx.ledger.runs("inv")[0].id, soak_required=20.0)

    def restart_h2(waits: int) -> None:
        if waits == 2:
            fleet.fakes["h2"].restart()

    clock.on_wait.append(restart_h2)
    state = monitor(ctx)
    assert state.soak_complete
    assert fleet.fakes["h2"].flags == playbook.phase(1).state.as_dict()
    collector = ctx.emit
    assert isinstance(collector, Collector)
    assert any(e.host == "h2" for e in collector.of(Kind.DRIFT))


def test_interrupt_leaves_phase_applied_and_resume_counts(
    ctx: Context, clock: FakeClock, playbook: Playbook, fleet: FakeBackend
) -> None:
    """Ctrl-C mid-soak keeps the phase; a resumed monitor continues the counted time."""
    deploy(ctx, 1)
    ctx.ledger.set_phase("inv", 1, ctx.ledger.runs("inv")[0].id, soak_required=40.0)
    soak_options(ctx, interval=5.0)
    clock.cancel_after = 3
    with pytest.raises(Interrupted, match="stays applied"):
        monitor(ctx)
    counted = ctx.ledger.state("inv").soak_counted
    assert 0 < counted < 40
    assert fleet.fakes["h1"].flags == playbook.phase(1).state.as_dict()
    clock.cancel_after = None
    state = monitor(ctx)
    assert state.soak_complete


def test_unobserved_gap_is_not_counted(ctx: Context, clock: FakeClock) -> None:
    """Time when nobody was watching (a dead monitor) does not count as healthy soak."""
    deploy(ctx, 1)
    ctx.ledger.set_phase("inv", 1, ctx.ledger.runs("inv")[0].id, soak_required=3600.0)
    clock.now += 3000  # an hour of nothing
    soak_options(ctx, interval=5.0)
    clock.cancel_after = 1
    with pytest.raises(Interrupted):
        monitor(ctx)
    assert ctx.ledger.state("inv").soak_counted < 10
