"""Hosts that stop answering and stay that way for the whole run: a frozen sshd, a frozen node,
a node that is down when a rollback needs it. Each run ends within its deadlines, reports the
host, never exits 0, and every host ends holding some phase's full state.

A persistent fault costs a run its full retry deadline (60 s of undo or rollback retries), so
the three scenarios run at the same time, each on its own two hosts, inventory and ledger;
the tests then check one result each.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rollout_lab import Lab, control
from rollout_lab.testing import lab_fixture  # noqa: F401

from ..e2e.cli import CLI
from . import faults
from .helpers import (
    CLIENT_GRACE,
    COMMAND_TIMEOUT,
    CONNECT_TIMEOUT,
    RETRY_DEADLINE,
    Finished,
    Watched,
    assert_consistent,
    deploy,
    fault_playbook,
    kind,
    phases,
    restore,
    undo_faults,
)

pytestmark = pytest.mark.fault
LAB_HOSTS = 6
#: A run with one host stuck for good: a first attempt, the retry deadline, a last attempt.
STUCK_BOUND = 2 * (COMMAND_TIMEOUT + CLIENT_GRACE + CONNECT_TIMEOUT) + RETRY_DEADLINE + 30


@dataclass
class Stuck:
    """One scenario's hosts, CLI and finished run."""

    cli: CLI
    playbook: Path
    names: tuple[str, str]
    done: Finished | None = None

    @property
    def result(self) -> Finished:
        assert self.done is not None
        return self.done


@pytest.fixture(scope="module")
def stuck(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Stuck]]:
    """Start the three stuck-host runs together and wait for all of them."""
    restore(lab)
    tmp = tmp_path_factory.mktemp("stuck")
    playbook = fault_playbook(tmp / "fault.yml")
    h1, h2, h3, h4, h5, h6 = lab.hosts

    def scenario(name: str, first: str, second: str) -> Stuck:
        inventory = faults.write_inventory(lab, tmp / f"{name}.yml", hosts=[first, second])
        return Stuck(CLI(inventory, tmp / f"{name}.db"), playbook, (first, second))

    runs = {
        "sshd": scenario("sshd", h1.name, h2.name),
        "node": scenario("node", h3.name, h4.name),
        "rollback": scenario("rollback", h5.name, h6.name),
    }
    for phase in (1, 2):
        deploy(runs["rollback"].cli, phase, playbook)
    control.stop_node(h6)
    try:
        watched = {
            "sshd": Watched(runs["sshd"].cli, "deploy", "--phase", "1", "--yes", "--no-wait",
                            playbook=playbook),
            "node": Watched(runs["node"].cli, "deploy", "--phase", "1", "--yes", "--no-wait",
                            playbook=playbook),
            "rollback": Watched(runs["rollback"].cli, "rollback", "--reason", "fault suite",
                                playbook=playbook),
        }  # fmt: skip
        # frozen once the plan is made: h1 is changed in batch 1, h2 / h4 get stuck in batch 2
        watched["sshd"].when(kind("plan"), lambda _e: faults.freeze_sshd(h2))
        watched["node"].when(kind("plan"), lambda _e: control.signal_node(h4, signal.SIGSTOP))
        for name, run in watched.items():
            runs[name].done = run.finish(timeout=STUCK_BOUND + 60)
        yield runs
    finally:
        undo_faults(lab)
        if control.node_pid(h6) is None:
            control.start_node(h6)


def failed_hosts(done: Finished) -> set[str]:
    return {str(e["host"]) for e in done.of("host.verify") if e.get("ok") is False}


def status_matches_read_back(lab: Lab, run: Stuck) -> None:
    """`invoke status` exits 0 and shows every host at the phase its node really holds."""
    ran = run.cli("status", "--json", playbook=run.playbook)
    assert ran.code == 0, ran.stdout + ran.stderr
    shown = {h["host"]: h["matches"] for h in ran.events()[-1]["hosts"]}
    assert shown == phases(lab, [lab.host(n) for n in run.names])


@pytest.mark.scenario("frozen peer: sshd SIGSTOPped mid-run")
def test_frozen_sshd_ends_within_deadlines(lab: Lab, stuck: dict[str, Stuck]) -> None:
    """h2's sshd (listener and sessions) frozen after the plan: the deploy ends within its
    deadlines reporting h2 (exit 6: the undo could not reach it), h1 is put back, and after
    SIGCONT status shows the truth."""
    run = stuck["sshd"]
    done = run.result
    assert done.code == 6, done.text
    assert done.seconds < STUCK_BOUND, done.seconds
    assert failed_hosts(done) == {"h2"} and "h2" in done.stderr
    assert assert_consistent(lab, {0, 1}, [lab.host(n) for n in run.names]) == {"h1": 0, "h2": 0}
    faults.thaw_sshd(lab.host("h2"))
    status_matches_read_back(lab, run)


@pytest.mark.scenario("frozen peer: node SIGSTOPped mid-run")
def test_frozen_node_ends_within_deadlines(lab: Lab, stuck: dict[str, Stuck]) -> None:
    """h4's node frozen after the plan: every console call to it is killed on the host at its
    deadline; the deploy ends reporting h4 (exit 6), h3 is put back, status shows the truth."""
    run = stuck["node"]
    done = run.result
    assert done.code == 6, done.text
    assert done.seconds < STUCK_BOUND, done.seconds
    assert failed_hosts(done) == {"h4"} and "h4" in done.stderr
    assert "did not answer within" in done.stderr
    control.signal_node(lab.host("h4"), signal.SIGCONT)
    found = assert_consistent(lab, {0, 1}, [lab.host(n) for n in run.names])
    assert found["h3"] == 0, found
    status_matches_read_back(lab, run)


@pytest.mark.scenario("rollback failing on one host, then converging")
def test_rollback_with_a_dead_node_is_incomplete_then_converges(
    lab: Lab, stuck: dict[str, Stuck]
) -> None:
    """Rollback 2 -> 1 with h6's node down: h5 verified at phase 1, h6 reported, exit 6 (never
    0); once h6 runs again (at its defaults), re-running the rollback converges (exit 0)."""
    run = stuck["rollback"]
    done = run.result
    assert done.code in (5, 6), done.text
    assert done.seconds < STUCK_BOUND, done.seconds
    verified = {str(e["host"]) for e in done.of("host.verify") if e.get("ok")}
    assert "h5" in verified and failed_hosts(done) == {"h6"}
    assert "h6" in done.stderr and "INCOMPLETE" in done.stderr
    assert phases(lab, [lab.host("h5")]) == {"h5": 1}
    control.start_node(lab.host("h6"))  # a restarted node holds its defaults: phase 0
    again = run.cli("rollback", "--reason", "fault suite, again", playbook=run.playbook)
    assert again.code == 0, again.stdout + again.stderr
    assert assert_consistent(lab, {1}, [lab.host(n) for n in run.names]) == {"h5": 1, "h6": 1}
