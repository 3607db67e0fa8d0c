"""Controllers with their own ledgers fail around the fleet lease: killed while holding it,
partitioned from one host, racing for it. The hosts are read back straight from their nodes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from rollout_lab import Lab
from rollout_lab.testing import lab_fixture  # noqa: F401

from ..e2e.cli import CLI
from . import faults
from .helpers import (
    Watched,
    assert_consistent,
    fault_playbook,
    kind,
    lease_files,
    phases,
    restore,
)

pytestmark = pytest.mark.fault
LAB_HOSTS = 3
SOAK = ("--yes", "--soak", "60s", "--interval", "1s")


def _lenient(data: dict[str, Any]) -> None:
    data["health"]["inconclusive_limit"] = 30  # a partitioned host must not roll back here


@pytest.fixture
def setup(lab: Lab, tmp_path: Path) -> tuple[Lab, CLI, CLI, Path]:
    """The lab reset, two controllers with their own ledgers, a playbook whose lease lives 6s."""
    restore(lab)
    playbook = fault_playbook(tmp_path / "fault.yml", edit=_lenient, lease_ttl="6s")
    a = CLI(lab.inventory, tmp_path / "a" / "ledger.db")
    b = CLI(lab.inventory, tmp_path / "b" / "ledger.db")
    return lab, a, b, playbook


@pytest.mark.scenario("two controllers race for the same leases")
def test_racing_controllers_exactly_one_proceeds(setup: tuple[Lab, CLI, CLI, Path]) -> None:
    """Two deploys from two ledgers started together: exactly one soaks, the other exits 3
    and holds no host's lease afterwards; every host is at phase 1."""
    lab, a, b, playbook = setup
    runs = [Watched(c, "deploy", "--phase", "1", *SOAK, playbook=playbook) for c in (a, b)]
    loser = None
    deadline = time.monotonic() + 90
    while loser is None and time.monotonic() < deadline:
        for run in runs:
            if run.proc.poll() is not None:
                loser = run
        time.sleep(0.2)
    assert loser is not None, "neither run ended"
    winner = runs[1] if loser is runs[0] else runs[0]
    lost = loser.finish(timeout=30)
    assert lost.code == 3, lost.text
    winner.wait_for(kind("soak"), timeout=60)
    assert winner.proc.poll() is None, "both runs ended"
    run_start = winner.wait_for(kind("run.start"))
    leases = lease_files(lab)
    assert len(set(leases.values())) == 1 and None not in leases.values(), leases
    assert run_start["data"]["run"], run_start
    winner.proc.terminate()
    winner.finish(timeout=60)
    assert_consistent(lab, [1])
    assert set(phases(lab).values()) == {1}


@pytest.mark.scenario("a controller SIGKILLed while holding leases")
def test_killed_holder_re_run_takes_its_lease_back(setup: tuple[Lab, CLI, CLI, Path]) -> None:
    """A deploy SIGKILLed mid-soak: its lease is replaced at once from this machine, but another
    ledger is then refused (it is behind the fleet), changes nothing and keeps no lease; the
    dead controller's own re-run converges."""
    lab, a, b, playbook = setup
    run = Watched(a, "deploy", "--phase", "1", *SOAK, playbook=playbook)
    run.wait_for(kind("soak"))
    run.kill()
    run.finish(timeout=30)
    other = b("deploy", "--phase", "2", "--yes", "--no-wait", "--force", playbook=playbook)
    assert other.code == 3, other.stdout + other.stderr
    assert "took over the fleet lease" in other.stdout  # the dead holder's, on this machine
    assert "another controller" in other.stderr  # then: its ledger is behind the fleet
    assert set(phases(lab).values()) == {1}
    assert set(lease_files(lab).values()) == {None}  # and it gave every lease back
    again = a("deploy", "--phase", "2", "--yes", "--no-wait", playbook=playbook)
    assert again.code == 0, again.stdout + again.stderr
    assert set(phases(lab).values()) == {2}
    assert set(lease_files(lab).values()) == {None}


@pytest.mark.scenario("a partition between a lease holder and one host")
def test_partitioned_holder_stops_once_its_lease_was_taken(
    setup: tuple[Lab, CLI, CLI, Path], tmp_path: Path
) -> None:
    """A soaking holder cut off from h3 (a black-holed proxy) past its lease: another
    controller, which still reaches h3, takes h3's expired lease but not the fleet (exit 3,
    gives h3 back); once the link heals, the holder finds its lease gone and stops without
    changing anything; every host stays at phase 1."""
    lab, _a, b, _fast = setup
    # a poll stuck on h3 lasts health timeout + client grace (13 s): the lease must outlive it
    playbook = fault_playbook(tmp_path / "slow-lease.yml", edit=_lenient, lease_ttl="20s")
    dark = lab.hosts[2]
    with faults.Proxy(dark.port) as proxy:
        inventory = faults.write_inventory(lab, tmp_path / "via-proxy.yml",
                                           ports={dark.name: proxy.port})  # fmt: skip
        a = CLI(inventory, tmp_path / "a" / "ledger.db")
        run = Watched(a, "deploy", "--phase", "1", *SOAK, playbook=playbook)
        run.wait_for(kind("soak"))
        proxy.blackhole()
        time.sleep(24)  # h3's lease (20s) expires; h1 and h2 are renewed at every poll
        other = b("deploy", "--phase", "1", "--yes", "--no-wait", playbook=playbook)
        assert other.code == 3, other.stdout + other.stderr
        assert "took over the fleet lease" in other.stdout  # h3's, expired; then given back
        proxy.heal()
        done = run.finish(timeout=120)
    assert done.code == 3, done.text
    assert "lost its fleet lease on" in done.stderr and "stopped changing hosts" in done.stderr
    assert not [e for e in done.events if e.get("event") == "drift"], done.stdout
    assert set(phases(lab).values()) == {1}
    assert set(lease_files(lab).values()) == {None}
