"""Hosts that drop off the network before or during a deploy: the run never hangs, ends
non-zero, and leaves every host holding some phase's full state (read back from the nodes)."""

from __future__ import annotations

from collections.abc import Iterator
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
    Watched,
    assert_consistent,
    fault_playbook,
    kind,
    phases,
    restore,
    undo_faults,
)

pytestmark = pytest.mark.fault
LAB_HOSTS = 3
#: The stdin of a console call is one chunk of this size or more (the encoded Elixir body).
REQUEST_BYTES = 1000


@pytest.fixture
def lab3(lab: Lab) -> Iterator[Lab]:
    """The module's lab, every fault undone before and after the test."""
    restore(lab)
    yield lab
    undo_faults(lab)


@pytest.fixture
def playbook(tmp_path: Path) -> Path:
    return fault_playbook(tmp_path / "fault.yml")


def changes_made(events: list[dict[str, object]]) -> list[dict[str, object]]:
    return [e for e in events if e.get("event") in ("batch", "host.apply", "host.verify")]


@pytest.mark.scenario("unreachable at pre-flight: sshd stopped")
def test_sshd_down_at_preflight_changes_nothing(lab3: Lab, tmp_path: Path, playbook: Path) -> None:
    """With one sshd stopped, deploy fails pre-flight (exit 5) naming it; no host changes."""
    down = lab3.hosts[1]
    control.stop_sshd(down)
    cli = CLI(lab3.inventory, tmp_path / "ledger.db")
    run = Watched(cli, "deploy", "--phase", "1", "--yes", "--no-wait", playbook=playbook)
    done = run.finish(timeout=60)
    assert done.code == 5, done.text
    assert down.name in done.stderr and "nothing was changed" in done.stderr
    assert not changes_made(done.events), done.stdout
    assert phases(lab3) == {h.name: 0 for h in lab3.hosts}


@pytest.mark.scenario("unreachable at pre-flight: packets dropped (nftables)")
def test_dropped_port_at_preflight_times_out(lab3: Lab, tmp_path: Path, playbook: Path) -> None:
    """A host whose packets vanish (no refusal) fails pre-flight within the connect deadline."""
    if not faults.nft_available():
        pytest.skip("nftables needs root and nf_tables")
    dark = lab3.hosts[2]
    cli = CLI(lab3.inventory, tmp_path / "ledger.db")
    with faults.Firewall() as firewall:
        firewall.drop(dark.port)
        run = Watched(cli, "deploy", "--phase", "1", "--yes", "--no-wait", playbook=playbook)
        done = run.finish(timeout=60)
    assert done.code == 5, done.text
    assert dark.name in done.stderr and "timed out" in done.stderr
    assert done.seconds < CONNECT_TIMEOUT + 25, done.seconds
    assert not changes_made(done.events), done.stdout
    assert phases(lab3) == {h.name: 0 for h in lab3.hosts}


@pytest.mark.scenario("partition mid-apply (blackhole after the request landed)")
def test_partition_mid_apply_settles_by_read_back(
    lab3: Lab, tmp_path: Path, playbook: Path
) -> None:
    """h1 goes dark right after its apply reached it: the run gives up within its deadlines,
    undoes h1 once the network heals, exits 7, and no host is left in a mixed state."""
    first = lab3.hosts[0]
    seen: dict[str, dict[str, int | None]] = {}
    with faults.Proxy(first.port) as proxy:
        inventory = faults.write_inventory(
            lab3, tmp_path / "inv.yml", ports={first.name: proxy.port}
        )
        cli = CLI(inventory, tmp_path / "ledger.db")
        run = Watched(cli, "deploy", "--phase", "1", "--yes", "--no-wait", playbook=playbook)
        run.when(kind("batch", index=1), lambda _e: proxy.arm(REQUEST_BYTES, proxy.blackhole))

        def heal(_event: object) -> None:
            seen["during"] = phases(lab3)  # read straight from the nodes while h1 is dark
            proxy.heal()

        run.when(kind("undo"), heal)
        done = run.finish(timeout=120)
    assert done.code == 7, done.text
    # the apply landed on h1 before the partition: its outcome was unknown to the tool
    assert seen["during"] == {"h1": 1, "h2": 0, "h3": 0}, seen
    failed = [e for e in done.of("host.verify") if e.get("ok") is False]
    assert failed and failed[0]["host"] == first.name
    assert "outcome is unknown" in str(failed[0]["message"])
    # one client deadline, one connect deadline, then the undo: nowhere near a hang
    assert done.seconds < COMMAND_TIMEOUT + CLIENT_GRACE + CONNECT_TIMEOUT + 30, done.seconds
    assert assert_consistent(lab3, {0}) == {"h1": 0, "h2": 0, "h3": 0}


@pytest.mark.scenario("connection reset mid-apply")
def test_connection_reset_mid_apply_is_settled_by_read_back(
    lab3: Lab, tmp_path: Path, playbook: Path
) -> None:
    """The connection to h1 is reset while its apply runs: the tool reconnects, reads h1 back,
    finds the change made and verified, and the deploy completes (exit 0)."""
    first = lab3.hosts[0]
    with faults.Proxy(first.port) as proxy:
        inventory = faults.write_inventory(
            lab3, tmp_path / "inv.yml", ports={first.name: proxy.port}
        )
        cli = CLI(inventory, tmp_path / "ledger.db")
        run = Watched(cli, "deploy", "--phase", "1", "--yes", "--no-wait", playbook=playbook)
        run.when(kind("batch", index=1), lambda _e: proxy.arm(REQUEST_BYTES, proxy.sever))
        done = run.finish(timeout=120)
        reconnects = proxy.accepted
    assert done.code == 0, done.text
    assert reconnects >= 2  # the first connection was cut; the read-back came over a new one
    assert all(e.get("ok") for e in done.of("host.verify")), done.stdout
    assert assert_consistent(lab3, {1}) == {"h1": 1, "h2": 1, "h3": 1}


@pytest.mark.scenario("sshd killed mid-phase")
def test_sshd_killed_mid_phase_is_undone(lab3: Lab, tmp_path: Path, playbook: Path) -> None:
    """h2's sshd (listener and sessions) is SIGKILLed as batch 2 starts and comes back while
    the undo retries: the batch fails (exit 7) and every host is put back and verified.

    On the rpc console path: the kill is timed against batch 2's apply (~0.7 s a host on rpc);
    an erl_call apply takes milliseconds, so the kill could land after h2 was already
    verified (seen once in a CI run: the deploy succeeded, exit 0)."""
    victim = lab3.hosts[1]
    cli = CLI(lab3.inventory, tmp_path / "ledger.db", env={"ROLLOUT_CONSOLE": "rpc"})
    run = Watched(cli, "deploy", "--phase", "1", "--yes", "--no-wait", playbook=playbook)
    killed: list[int] = []
    run.when(kind("batch", index=2), lambda _e: killed.extend(faults.kill_sshd(victim)))
    run.when(kind("rollback"), lambda _e: control.start_sshd(victim))  # "retrying ..."
    done = run.finish(timeout=120)
    assert killed, "no sshd process was killed"
    assert done.code == 7, done.text
    failed = [e for e in done.of("host.verify") if e.get("ok") is False]
    assert failed and failed[0]["host"] == victim.name
    undo = done.of("undo")[0]
    assert undo["data"]["hosts"] == ["h3", "h2", "h1"]  # reverse order of change
    assert assert_consistent(lab3, {0}) == {"h1": 0, "h2": 0, "h3": 0}
