"""The controller itself fails: SIGKILLed at each step, started twice at once, or dead while
holding the lock. Re-running the same command always converges, and then changes nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from rollout.inventory import load_inventory
from rollout.ledger import Ledger
from rollout_lab import Lab
from rollout_lab.testing import lab_fixture  # noqa: F401

from ..e2e.cli import CLI
from . import faults
from .helpers import (
    Event,
    Watched,
    assert_consistent,
    deploy,
    fault_playbook,
    kind,
    ledger_events,
    restore,
)

pytestmark = pytest.mark.fault
LAB_HOSTS = 3
DEPLOY_2 = ("deploy", "--phase", "2", "--yes", "--no-wait")


@pytest.fixture
def setup(lab: Lab, tmp_path: Path) -> tuple[Lab, CLI, Path]:
    """The lab reset and deployed to phase 1 (recorded), with a fast playbook, on the rpc
    console path: the kill points are timed against an rpc apply (~0.7 s per host); an
    erl_call apply (milliseconds) would finish batch 2 before "mid-apply" fires."""
    restore(lab)
    playbook = fault_playbook(tmp_path / "fault.yml")
    cli = CLI(lab.inventory, tmp_path / "ledger.db", env={"ROLLOUT_CONSOLE": "rpc"})
    deploy(cli, 1, playbook)
    return lab, cli, playbook


def _after(seconds: float, action: Callable[[], None]) -> Callable[[Event], None]:
    def fire(_event: Event) -> None:
        timer = threading.Timer(seconds, action)
        timer.daemon = True
        timer.start()

    return fire


KILL_POINTS = {
    # lock taken and run journaled; no host contacted yet
    "at-start": (kind("run.start"), 0.0),
    # every host read, the plan made; nothing changed
    "after-preflight": (kind("plan"), 0.0),
    # h1 changed and verified; h2 and h3 being changed as the controller dies
    "mid-apply": (kind("batch", index=2), 0.15),
}


@pytest.mark.scenario("controller SIGKILLed, then the same command re-run")
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkilled_deploy_is_shown_then_converges(setup: tuple[Lab, CLI, Path], point: str) -> None:
    """SIGKILL `deploy --phase 2` at a step: status shows the interrupted run and any drift,
    re-running it converges every host to phase 2, and a further run changes nothing."""
    lab, cli, playbook = setup
    match, delay = KILL_POINTS[point]
    run = Watched(cli, *DEPLOY_2, playbook=playbook)
    run.when(match, _after(delay, run.kill) if delay else lambda _e: run.kill())
    killed = run.finish(timeout=60)
    assert killed.code == -9, killed.text
    assert not killed.of("run.finish")
    run_id = killed.of("run.start")[0]["data"]["run"]
    found = assert_consistent(lab, {1, 2})  # never a mixed state, whatever the kill hit
    if point == "mid-apply":
        assert found["h1"] == 2, found  # batch 1 was verified before batch 2 began
    elif point == "at-start":
        assert set(found.values()) == {1}, found  # killed before any host was contacted
    else:  # the kill lands within milliseconds of the plan: h1's change may have gone out
        assert found["h2"] == found["h3"] == 1, found

    status = cli("status", playbook=playbook)
    assert status.code == 0, status.stdout + status.stderr
    assert f"run {run_id}" in status.stdout and "was interrupted" in status.stdout
    drifted = sorted(name for name, phase in found.items() if phase != 1)
    for name in drifted:
        assert f"! {name}" in status.stdout  # a host the dead run changed shows as drifted
    if drifted:
        assert f"{len(drifted)} host(s) differ from phase 1" in status.stdout

    again = cli(*DEPLOY_2, playbook=playbook)
    assert again.code == 0, again.stdout + again.stderr
    assert f"run {run_id}" in again.stdout and "died without finishing" in again.stdout
    assert assert_consistent(lab, {2}) == {h.name: 2 for h in lab.hosts}

    idle = Watched(cli, *DEPLOY_2, playbook=playbook).finish(timeout=60)
    assert idle.code == 0, idle.text
    assert idle.of("plan")[0]["message"].endswith("0 of 3 host(s) to change")
    assert not idle.of("batch") and not idle.of("host.verify") and not idle.of("host.apply")


@pytest.mark.scenario("two runs started together")
def test_two_runs_at_once_one_proceeds_one_is_busy(
    setup: tuple[Lab, CLI, Path], tmp_path: Path
) -> None:
    """Two deploys of one inventory started together: exactly one runs, the other exits 3
    naming the holder (its lock, pid and command); the fleet ends at the winner's phase."""
    lab, cli, playbook = setup
    proxies = [faults.Proxy(h.port, delay=0.02) for h in lab.hosts]  # a slower, longer run
    try:
        inventory = faults.write_inventory(
            lab,
            tmp_path / "inventory.yml",
            ports={h.name: p.port for h, p in zip(lab.hosts, proxies, strict=True)},
            fleet=load_inventory(lab.inventory).name,  # the lab's identity: the same record
        )
        racing = CLI(inventory, cli.ledger)
        runs = [Watched(racing, *DEPLOY_2, playbook=playbook) for _ in range(2)]
        done = [r.finish(timeout=120) for r in runs]
    finally:
        for proxy in proxies:
            proxy.close()
    codes = sorted(d.code for d in done)
    assert codes == [0, 3], [d.text for d in done]
    winner, loser = (runs[0], runs[1]) if done[0].code == 0 else (runs[1], runs[0])
    lost = done[runs.index(loser)]
    won = done[runs.index(winner)]
    lock_id = won.of("run.start")[0]["data"]["lock"]
    assert f"pid {winner.pid}" in lost.stderr and lock_id in lost.stderr, lost.stderr
    assert "is locked" in lost.stderr and "invoke deploy --phase 2" in lost.stderr
    assert not lost.of("host.connect")  # the loser touched no host
    assert assert_consistent(lab, {2}) == {h.name: 2 for h in lab.hosts}


@pytest.mark.scenario("stale lock of a SIGKILLed run is taken over")
def test_stale_lock_is_detected_and_taken_over(setup: tuple[Lab, CLI, Path]) -> None:
    """A run SIGKILLed while holding the lock leaves it behind; status names the dead holder,
    the next run takes it over (same machine, pid gone) and the ledger records why."""
    lab, cli, playbook = setup
    run = Watched(cli, *DEPLOY_2, playbook=playbook)
    run.when(kind("run.start"), lambda _e: run.kill())
    killed = run.finish(timeout=60)
    assert killed.code == -9
    lock_id = killed.of("run.start")[0]["data"]["lock"]

    ledger = Ledger(cli.ledger)
    try:
        holder = ledger.holder(load_inventory(lab.inventory).name)  # the fleet identity
        assert holder is not None and holder.id == lock_id and holder.pid == run.pid
        assert ledger.holder_alive(holder) is False
    finally:
        ledger.close()
    status = cli("status", playbook=playbook)
    assert f"pid {run.pid}" in status.stdout and lock_id in status.stdout

    again = cli(*DEPLOY_2, playbook=playbook)
    assert again.code == 0, again.stdout + again.stderr
    takeovers = ledger_events(cli, "lock.takeover")
    assert len(takeovers) == 1, takeovers
    data = takeovers[0].data
    assert data["reason"] == "stale" and data["liveness"] == "gone"
    assert data["previous"]["id"] == lock_id and data["previous"]["pid"] == run.pid
    assert ledger_events(cli, "run.crashed"), "the dead run was not marked crashed"
    assert assert_consistent(lab, {2}) == {h.name: 2 for h in lab.hosts}


@pytest.mark.scenario("status is clean once a re-run converged after a crash")
def test_status_is_clean_after_the_converging_rerun(setup: tuple[Lab, CLI, Path]) -> None:
    """After a mid-apply SIGKILL and a re-run that verified every host, status warns of
    nothing: no drift, no interrupted run, no unsettled change."""
    lab, cli, playbook = setup
    match, delay = KILL_POINTS["mid-apply"]
    run = Watched(cli, *DEPLOY_2, playbook=playbook)
    run.when(match, _after(delay, run.kill))
    assert run.finish(timeout=60).code == -9
    assert cli(*DEPLOY_2, playbook=playbook).code == 0
    status = cli("status", playbook=playbook)
    assert status.code == 0, status.stdout + status.stderr
    assert "!" not in status.stdout, status.stdout
