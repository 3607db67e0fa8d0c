"""Waves through the engine on the fake backend with a fake clock: the walk, the verdicts'
consequences, and the baseline that is never mistaken for drift."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollout.commands.context import Context
from rollout.commands.deploys import deploy
from rollout.commands.statusreport import status
from rollout.errors import Refused, RolledBack, WaveHeld
from rollout.models import Playbook
from rollout.playbook import load_playbook_text
from rollout.testing import FakeBackend, FakeHost, clock_of, fake_context

REPO = Path(__file__).resolve().parents[2]
NAMES = [f"h{i}" for i in range(1, 7)]


class Clock:
    """Time that moves only when the soak waits; hooks run at each wait."""

    def __init__(self) -> None:
        self.now = 2_000_000.0
        self.hooks: list[Any] = []
        self.waits = 0

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits += 1
        self.now += seconds
        for hook in self.hooks:
            hook(self.waits)
        return False


@pytest.fixture
def waves_playbook() -> Playbook:
    data = yaml.safe_load((REPO / "playbooks" / "otp_refactor.yml").read_text())
    data["health"]["interval"] = "5s"
    data["health"]["thresholds"]["error_rate"]["compare"] = {"allowed": 1.0, "min_samples": 5}
    del data["health"]["thresholds"]["average_response_time"]["compare"]
    data["phases"][0]["soak"] = "30s"
    data["phases"][0]["waves"] = [{"hosts": 1, "soak": "40s"}, {"hosts": "50%", "soak": "40s"}]
    return load_playbook_text(yaml.safe_dump(data, sort_keys=False), "waves.yml")


@pytest.fixture
def six(waves_playbook: Playbook) -> FakeBackend:
    return FakeBackend({n: FakeHost(n, waves_playbook.flags) for n in NAMES})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ctx(tmp_path: Path, waves_playbook: Playbook, six: FakeBackend, clock: Clock) -> Context:
    c = fake_context(tmp_path, waves_playbook, six, clock=clock_of(clock), wait=clock.wait,
                     retry_deadline=1.0)  # fmt: skip
    c.options = dataclasses.replace(c.options, wait=True)
    return c


def at_phase(six: FakeBackend, playbook: Playbook, number: int) -> list[str]:
    want = playbook.phase(number).state.as_dict()
    return [n for n, f in six.fakes.items() if f.flags == want]


def test_a_healthy_phase_walks_its_waves_in_one_deploy(
    ctx: Context, six: FakeBackend, waves_playbook: Playbook
) -> None:
    """deploy --phase 1 applies 1, then 3, then 6 hosts, each wave judged pass first."""
    deploy(ctx, 1)
    assert at_phase(six, waves_playbook, 1) == NAMES
    waves = ctx.ledger.waves("inv")
    assert [(w.index, w.canary, w.verdict) for w in waves] == [
        (1, ("h1",), "pass"), (2, ("h1", "h2", "h3"), "pass"), (3, tuple(NAMES), "pass"),
    ]  # fmt: skip
    assert ctx.ledger.state("inv").phase == 1 and ctx.ledger.state("inv").soak_complete


def test_a_worse_canary_alone_is_rolled_back(
    ctx: Context, six: FakeBackend, waves_playbook: Playbook
) -> None:
    """A canary at 4% errors against 0.5% fails wave 1: only h1 goes back; rollouts pause."""
    for fake in six.fakes.values():
        fake.metrics["error_rate"] = 0.5
    six.fakes["h1"].metrics["error_rate"] = 4.0
    with pytest.raises(RolledBack, match="Only the canary"):
        deploy(ctx, 1)
    assert at_phase(six, waves_playbook, 0) == NAMES
    assert [f.applies for f in six.fakes.values()] == [2, 0, 0, 0, 0, 0]
    state = ctx.ledger.state("inv")
    assert state.phase == 0 and state.paused


def test_a_fleet_wide_breach_rolls_nothing_back(
    ctx: Context, six: FakeBackend, waves_playbook: Playbook
) -> None:
    """Every host over the absolute threshold: wave 1 stops as fleet-wide, h1 keeps phase 1."""
    for fake in six.fakes.values():
        fake.metrics["error_rate"] = 7.5
    with pytest.raises(WaveHeld, match="fleet-wide"):
        deploy(ctx, 1)
    assert at_phase(six, waves_playbook, 1) == ["h1"]
    [wave] = ctx.ledger.waves("inv")
    assert wave.verdict == "fleet-wide" and ctx.ledger.state("inv").phase == 1
    assert not ctx.ledger.state("inv").paused


def test_a_baseline_host_breaching_alone_does_not_blame_the_phase(
    ctx: Context, six: FakeBackend, waves_playbook: Playbook
) -> None:
    """One baseline host over the threshold neither rolls back nor fails the wave."""
    six.fakes["h6"].metrics["error_rate"] = 7.5
    ctx.options = dataclasses.replace(ctx.options, wait=True)
    with pytest.raises(RolledBack):  # the final wave has no baseline: h6 breaches there
        deploy(ctx, 1)
    verdicts = [w.verdict for w in ctx.ledger.waves("inv")]
    assert verdicts == ["pass", "pass", "fail"]  # the final wave: absolute thresholds only


def test_a_drifted_baseline_host_goes_back_to_the_previous_phase(
    ctx: Context, six: FakeBackend, waves_playbook: Playbook, clock: Clock
) -> None:
    """A baseline host found at the new phase mid-wave is put back, never left forward."""
    phase1 = waves_playbook.phase(1).state.as_dict()

    def drift(waits: int) -> None:
        if waits == 2:
            six.fakes["h5"].flags = dict(phase1)

    clock.hooks.append(drift)
    ctx.options = dataclasses.replace(ctx.options, wait=False)
    deploy(ctx, 1)  # wave 1 only
    from rollout.commands.monitoring import monitor

    ctx.options = dataclasses.replace(ctx.options, wait=True)
    monitor(ctx)
    assert at_phase(six, waves_playbook, 1) == ["h1"]
    assert six.fakes["h5"].applies == 1  # the repair, back to phase 0


def test_status_does_not_call_a_waves_baseline_drift(
    ctx: Context, six: FakeBackend, waves_playbook: Playbook
) -> None:
    """During wave 1 the five baseline hosts at phase 0 are expected there, not drifted."""
    ctx.options = dataclasses.replace(ctx.options, wait=False)
    deploy(ctx, 1)
    report = status(ctx)
    assert report.recorded == 1 and report.wave is not None and report.wave.index == 1
    assert report.drifted == ()
    six.fakes["h1"].flags = dict(waves_playbook.phase(0).state.as_dict())
    assert status(ctx).drifted == ("h1",)


def test_deploy_again_goes_on_from_the_held_wave_after_approval(
    ctx: Context, six: FakeBackend, waves_playbook: Playbook
) -> None:
    """A held wave refuses the next one until approved; then deploy goes on from there."""
    for fake in six.fakes.values():
        fake.metrics["error_rate"] = 7.5
    with pytest.raises(WaveHeld):
        deploy(ctx, 1)
    with pytest.raises(WaveHeld):
        deploy(ctx, 1)
    for fake in six.fakes.values():
        fake.metrics["error_rate"] = 0.5
    ctx.ledger.approve("inv", 1, "tester", "incident over")
    deploy(ctx, 1)
    assert at_phase(six, waves_playbook, 1) == NAMES
    assert [w.verdict for w in ctx.ledger.waves("inv")] == ["fleet-wide", "pass", "pass"]


def test_the_next_phase_cannot_start_while_waves_are_under_way(
    ctx: Context, six: FakeBackend, waves_playbook: Playbook
) -> None:
    """Phase 2 is refused during phase 1's wave 1: its baseline would be left behind."""
    ctx.options = dataclasses.replace(ctx.options, wait=False)
    deploy(ctx, 1)
    with pytest.raises(Refused, match="wave 1/3 of phase 1 is under way"):
        deploy(ctx, 2)
    assert at_phase(six, waves_playbook, 1) == ["h1"]
    assert at_phase(six, waves_playbook, 0) == NAMES[1:]


def test_restart_is_refused_while_a_wave_has_a_baseline(
    ctx: Context, six: FakeBackend, waves_playbook: Playbook
) -> None:
    """A rolling restart re-applies the recorded phase: during a wave it would move the
    baseline forward, so it is refused and nothing changes."""
    from rollout.commands.maintenance import restart

    ctx.options = dataclasses.replace(ctx.options, wait=False)
    deploy(ctx, 1)
    with pytest.raises(Refused, match="baseline hosts must stay at phase 0"):
        restart(ctx)
    assert [f.restarts for f in six.fakes.values()] == [0] * 6
