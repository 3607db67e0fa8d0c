"""Soak, automatic rollback and drift repair against real lab hosts."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from rollout.ledger import Ledger
from rollout.playbook import load_playbook
from rollout_lab import Lab, control
from rollout_lab.testing import clean_lab_fixture, lab_fixture  # noqa: F401

from .cli import CLI, PLAYBOOK, fast_playbook

pytestmark = pytest.mark.e2e
LAB_HOSTS = 3
STATES = {p: load_playbook(PLAYBOOK).phase(p).state.as_dict() for p in range(6)}
INTERVAL = 1.0
FAILURE_LIMIT = 2


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 60) -> list[str]:
    """Read the process's stdout until a line contains ``needle``."""
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} never appeared in:\n{''.join(seen)}")


@pytest.fixture
def setup(clean_lab: Lab, tmp_path: Path) -> tuple[CLI, Path]:
    playbook = fast_playbook(
        tmp_path / "fast.yml", failure_limit=FAILURE_LIMIT, inconclusive_limit=3
    )
    cli = CLI(clean_lab.inventory, tmp_path / "ledger.db")
    for phase in ("1", "2"):
        ran = cli("deploy", "--phase", phase, "--yes", "--no-wait", playbook=playbook)
        assert ran.code == 0, ran.stderr
    return cli, playbook


def test_breach_rolls_fleet_back_within_budget(setup: tuple[CLI, Path], clean_lab: Lab) -> None:
    """error_rate 7.5 on one host during phase 3's soak puts every host back at phase 2 fast."""
    cli, playbook = setup
    proc = cli.popen(
        "deploy",
        "--phase",
        "3",
        "--yes",
        "--soak",
        "120s",
        "--interval",
        f"{INTERVAL:g}s",
        playbook=playbook,
    )
    wait_for_line(proc, "healthy")
    injected = time.monotonic()
    control.set_metrics(clean_lab.hosts[1], error_rate=7.5)
    out, err = proc.communicate(timeout=120)
    elapsed = time.monotonic() - injected
    assert proc.returncode == 4, out + err
    assert elapsed <= INTERVAL * FAILURE_LIMIT + 10, elapsed
    for host in clean_lab.hosts:
        assert control.read_flags(host) == STATES[2], host.name
    assert "error_rate" in err and clean_lab.hosts[1].name in err
    ledger = Ledger(cli.ledger)
    run = ledger.runs(ledger.runs()[0].inventory)[0]
    breaches = [
        e
        for e in ledger.events(run.id)
        if e.kind == "sample" and e.data.get("data", {}).get("verdict") == "breach"
    ]
    assert len(breaches) == FAILURE_LIMIT
    assert breaches[0].data["data"]["values"][clean_lab.hosts[1].name]["error_rate"] == 7.5
    assert ledger.state(run.inventory).phase == 2


def test_silent_console_rolls_back_never_succeeds(setup: tuple[CLI, Path], clean_lab: Lab) -> None:
    """A console that stops answering mid-soak ends in rollback after the inconclusive limit."""
    cli, playbook = setup
    proc = cli.popen("monitor", "--soak", "120s", "--interval", "1s", playbook=playbook)
    wait_for_line(proc, "healthy")
    control.set_delay(clean_lab.hosts[2], 60)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 4, out + err
    assert "could not be judged" in err
    assert out.count("inconclusive") >= 3
    for host in clean_lab.hosts:
        assert control.read_flags(host) == STATES[1], host.name


def test_restarted_node_is_detected_and_reapplied(setup: tuple[CLI, Path], clean_lab: Lab) -> None:
    """A node restarted during the soak loses its flags; the monitor re-applies and verifies."""
    cli, playbook = setup
    proc = cli.popen("monitor", "--soak", "6s", "--interval", "1s", playbook=playbook)
    wait_for_line(proc, "healthy")
    control.restart_node(clean_lab.hosts[0])
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert "drifted from Phase 2" in out and "re-applied and verified" in out
    assert "soak of Phase 2" in out and "complete" in out
    for host in clean_lab.hosts:
        assert control.read_flags(host) == STATES[2], host.name
