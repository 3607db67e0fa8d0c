"""Endurance: many deploy/rollback cycles through the phases, some with a fault injected.

Real releases (the BEAM holds the flags), a seeded random sequence of cycles. Each cycle
deploys a later phase and rolls back to an earlier one; in some, one fault hits one command: a
host's sshd killed, its node stopped (its flags reset on restart), a partition (nftables drops
the host's port), or the controller itself SIGKILLed mid-run. After every command the hosts are
read back from their nodes: each holds some phase's full state (never a mix), and a command
that succeeded left every host at its target, recorded. At the end, after one repairing run,
every host is at the recorded phase, every run has an outcome, no intent is open and no lock
is left. ``ROLLOUT_ENDURANCE=full`` runs 100 cycles; ``ROLLOUT_ENDURANCE_SEED`` replays one.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from rollout.ledger import Ledger, RunStatus
from rollout_lab import Lab, LabHost, control
from rollout_lab.testing import clean_lab_fixture, lab_fixture  # noqa: F401

from ..e2e.cli import CLI, Ran
from . import faults
from .endurance import figure, size
from .helpers import Watched, assert_consistent, fault_playbook, kind, lease_files, phases

pytestmark = pytest.mark.fault
LAB_HOSTS = 3
CYCLES = size(6, 100)
SEED = int(os.environ.get("ROLLOUT_ENDURANCE_SEED") or 20261201)
FAULT_RATE = 0.4
FAULTS = ("sshd killed", "node stopped", "partition", "controller killed")
ALL_PHASES = tuple(range(6))


@contextmanager
def _fault(name: str, host: LabHost) -> Iterator[None]:
    """Inject ``name`` on ``host`` for the duration of the block, then undo it."""
    if name == "sshd killed":
        control.stop_sshd(host)
        try:
            yield
        finally:
            control.start_sshd(host)
    elif name == "node stopped":
        control.stop_node(host)
        try:
            yield
        finally:
            control.start_node(host)  # a restarted node: every flag back to its default
    elif name == "partition":
        with faults.Firewall() as fw:
            fw.drop(host.port)
            yield
    else:
        yield


def _run(cli: CLI, args: tuple[str, ...], playbook: Path, kill: bool) -> int:
    """Run one command; with ``kill``, SIGKILL the controller once it verified a host."""
    if not kill:
        ran: Ran = cli(*args, playbook=playbook, timeout=300)
        return ran.code
    run = Watched(cli, *args, playbook=playbook)
    run.when(kind("host.verify"), lambda _e: run.kill())
    return run.finish(timeout=300).code


def _no_backup_gates(data: dict[str, Any]) -> None:
    for phase in data["phases"]:  # the backup gate has tests of its own
        phase.get("gates", {}).pop("backup", None)


def _recorded(cli: CLI) -> int | None:
    with Ledger(cli.ledger) as led:
        runs = led.runs(limit=1)
        return led.state(runs[0].inventory).phase if runs else None


@pytest.mark.scenario("endurance: deploy/rollback cycles with random faults")
def test_cycles_with_random_faults(
    clean_lab: Lab, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """After many cycles with faults, hosts, ledger and history agree, and nothing is left open."""
    if not faults.nft_available():
        pytest.skip("nftables is not usable here")
    rng = random.Random(SEED)
    playbook = fault_playbook(tmp_path / "cycles.yml", edit=_no_backup_gates)
    cli = CLI(clean_lab.inventory, tmp_path / "ledger.db")
    injected: Counter[str] = Counter()
    codes: Counter[int] = Counter()
    started = time.monotonic()
    for cycle in range(CYCLES):
        top = rng.randint(1, 5)  # deploy one phase at a time up to here, then roll back
        for step in ("deploy",) * 5 + ("rollback",):
            current = _recorded(cli) or 0
            if step == "deploy":
                if current >= top:
                    continue
                target = current + 1
                args: tuple[str, ...] = ("deploy", "--phase", str(target), "--yes", "--no-wait")
            elif current == 0:
                continue
            else:
                target = rng.randint(0, current - 1)
                args = ("rollback", "--to", str(target), "--reason", f"cycle {cycle}", "--yes")
            fault = rng.choice(FAULTS) if rng.random() < FAULT_RATE else None
            host = rng.choice(clean_lab.hosts)
            with _fault(fault or "", host):
                code = _run(cli, (*args, "--give-up-after", "10s"), playbook,
                            kill=fault == "controller killed")  # fmt: skip
            codes[code] += 1
            if fault:
                injected[fault] += 1
            where = f"cycle {cycle}, {' '.join(args[:3])}, fault {fault} on {host.name}"
            found = assert_consistent(clean_lab, ALL_PHASES)  # never a mix of two phases
            if code == 0:
                assert set(found.values()) == {target}, f"{where}: exit 0 but hosts {found}"
                assert _recorded(cli) == target, f"{where}: exit 0 but the ledger disagrees"
            else:
                assert code in (5, 6, 7, -9), f"{where}: unexpected exit {code}"
    # One repairing run on a healed fleet: the recorded phase (or the baseline) everywhere.
    restore_faults(clean_lab)
    recorded = _recorded(cli) or 0
    if recorded:
        final = cli("deploy", "--phase", str(recorded), "--yes", "--no-wait", playbook=playbook)
    else:
        final = cli("rollback", "--to", "0", "--reason", "end of cycles", "--yes",
                    playbook=playbook)  # fmt: skip
    assert final.code == 0, final.stdout[-2000:] + final.stderr[-2000:]
    assert set(phases(clean_lab).values()) == {recorded}
    with Ledger(cli.ledger) as led:
        inv = led.runs(limit=1)[0].inventory
        runs = led.runs(inv, limit=10 * CYCLES + 10)
        assert led.state(inv).phase == recorded
        assert all(r.status is not RunStatus.RUNNING for r in runs), "a run has no outcome"
        assert led.open_intents(inv) == [], "an intent was left open"
        assert led.holder(inv) is None, "a lock was left behind"
    leases = lease_files(clean_lab)
    assert set(leases.values()) == {None}, f"a lease was left on a host: {leases}"
    figure(
        request,
        f"{CYCLES} cycles (seed {SEED}) in {time.monotonic() - started:.0f}s; faults "
        f"{dict(injected)}; exit codes {dict(sorted(codes.items()))}; {len(runs)} runs, all "
        f"with an outcome; final phase {recorded} on every host; no lease left",
    )


def restore_faults(lab: Lab) -> None:
    """Every sshd and node running (nodes keep their flags: no reset)."""
    for host in lab.hosts:
        if control.sshd_pid(host) is None:
            control.start_sshd(host)
        if control.node_pid(host) is None:
            control.start_node(host)
