"""Issue 11's probes, as fault scenarios against the lab: cancels of every kind, fleets that
share a file name, rollbacks that would move hosts forward, flags the service does not know,
hostile input files and a host that floods its output with secrets. Each checks every host's
flags read straight from its node and the ledger's record, not only the exit code."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollout.inventory import load_inventory
from rollout.ledger import Ledger, RunStatus
from rollout_lab import Lab, control
from rollout_lab.testing import lab_fixture  # noqa: F401

from ..e2e.cli import CLI
from . import faults
from .endurance import figure
from .helpers import (
    Watched,
    assert_consistent,
    deploy,
    fault_playbook,
    kind,
    phases,
    restore,
)

pytestmark = pytest.mark.fault
LAB_HOSTS = 3


@pytest.fixture
def setup(lab: Lab, tmp_path: Path) -> Iterator[tuple[Lab, CLI, Path]]:
    """The lab reset (every host at phase 0, healthy), a fast playbook and a fresh ledger."""
    restore(lab)
    playbook = fault_playbook(tmp_path / "fault.yml")
    yield lab, CLI(lab.inventory, tmp_path / "ledger.db"), playbook
    for host in lab.hosts:
        control.reset_metrics(host)


def record(cli: CLI, inventory: Path | None = None) -> tuple[int | None, bool, RunStatus]:
    """The ledger's recorded phase, pause and last run's status for the CLI's inventory."""
    name = load_inventory(inventory or cli.inventory).name
    ledger = Ledger(cli.ledger)
    try:
        state = ledger.state(name)
        return state.phase, state.paused, ledger.runs(name, 1)[0].status
    finally:
        ledger.close()


def signals(pid: int, *names: signal.Signals) -> None:
    for signum in names:
        os.kill(pid, signum)
        time.sleep(0.05)


# -- cancels ----------------------------------------------------------------------------------


@pytest.mark.scenario("SIGINT then SIGTERM during an automatic rollback")
def test_cancel_during_an_automatic_rollback_is_recorded_and_paused(
    setup: tuple[Lab, CLI, Path],
) -> None:
    """A CI runner's cancel (SIGINT, then SIGTERM) during an automatic rollback: every host is
    back at phase 0, the ledger records 0 and paused, the next `advance` changes nothing, and
    the printed `invoke rollback --to 0` finishes cleanly."""
    lab, cli, playbook = setup
    control.set_metrics(lab.hosts[1], error_rate=7.5)
    run = Watched(cli, "deploy", "--phase", "1", "--yes", "--soak", "60s", "--interval", "1s",
                  playbook=playbook)  # fmt: skip
    run.when(kind("rollback"), lambda _e: signals(run.pid, signal.SIGINT, signal.SIGTERM))
    done = run.finish(timeout=120)
    assert done.code == 130, done.text
    assert "invoke rollback --to 0" in done.stderr, done.stderr
    assert assert_consistent(lab, {0}) == {h.name: 0 for h in lab.hosts}
    phase, paused, status = record(cli)
    assert (phase, paused, status) == (0, True, RunStatus.INTERRUPTED)
    control.reset_metrics(lab.hosts[1])
    advanced = cli("advance", "--json", playbook=playbook)
    assert advanced.code == 0 and '"outcome": "paused"' in advanced.stdout, advanced.stdout
    assert phases(lab) == {h.name: 0 for h in lab.hosts}
    finish = cli("rollback", "--to", "0", "--reason", "finish", playbook=playbook)
    assert finish.code == 0, finish.stdout + finish.stderr
    assert record(cli)[0] == 0


@pytest.mark.scenario("SIGINT then SIGTERM during an emergency rollback")
def test_cancel_during_an_emergency_is_recorded_and_paused(setup: tuple[Lab, CLI, Path]) -> None:
    """Two signals while `rollback --emergency` (phase 2 -> 1) converges: the hosts are at 1,
    the ledger records 1 and paused, and the hint's command converges and succeeds."""
    lab, cli, playbook = setup
    deploy(cli, 1, playbook)
    deploy(cli, 2, playbook)
    run = Watched(cli, "rollback", "--emergency", "--reason", "probe", playbook=playbook)
    run.when(kind("host.verify", phase=1),
             lambda _e: signals(run.pid, signal.SIGINT, signal.SIGTERM))  # fmt: skip
    done = run.finish(timeout=120)
    assert done.code in (0, 130), done.text  # the signals may land after the last host
    assert assert_consistent(lab, {1}) == {h.name: 1 for h in lab.hosts}
    phase, paused, _status = record(cli)
    assert (phase, paused) == (1, True)
    if done.code == 130:
        assert "invoke rollback --emergency --to 1" in done.stderr, done.stderr
    again = cli("rollback", "--emergency", "--to", "1", "--reason", "finish", playbook=playbook)
    assert again.code == 0, again.stdout + again.stderr


@pytest.mark.scenario("SIGHUP or SIGQUIT during a soak")
@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGQUIT], ids=["SIGHUP", "SIGQUIT"])
def test_hangup_or_quit_during_a_soak_settles_and_records(
    setup: tuple[Lab, CLI, Path], signum: signal.Signals
) -> None:
    """A closed terminal (SIGHUP) or Ctrl-\\ (SIGQUIT) during a soak is a cancel, not a hard
    kill: exit 130, the phase stays applied and recorded, the run is recorded INTERRUPTED."""
    lab, cli, playbook = setup
    run = Watched(cli, "deploy", "--phase", "1", "--yes", "--soak", "60s", "--interval", "1s",
                  playbook=playbook)  # fmt: skip
    run.when(kind("sample"), lambda _e: os.kill(run.pid, signum))
    done = run.finish(timeout=60)
    assert done.code == 130, done.text
    assert assert_consistent(lab, {1}) == {h.name: 1 for h in lab.hosts}
    assert record(cli) == (1, False, RunStatus.INTERRUPTED)


# -- identity and direction -------------------------------------------------------------------


@pytest.mark.scenario("two fleets whose inventories share a file name")
def test_same_stem_inventories_are_two_fleets(lab: Lab, tmp_path: Path) -> None:
    """eu/prod.yml (h1, h2) deployed to phase 2, then `rollback` of us/prod.yml (h3, never
    deployed) on the same ledger: refused; h3 stays at 0, eu's record and hosts stay at 2."""
    restore(lab)
    playbook = fault_playbook(tmp_path / "fault.yml")
    (tmp_path / "tasks.py").write_text("")  # the project root the identity is relative to
    (tmp_path / "eu").mkdir()
    (tmp_path / "us").mkdir()
    eu = faults.write_inventory(lab, tmp_path / "eu" / "prod.yml", hosts=["h1", "h2"])
    us = faults.write_inventory(lab, tmp_path / "us" / "prod.yml", hosts=["h3"])
    ledger = tmp_path / "ledger.db"
    eu_cli, us_cli = CLI(eu, ledger), CLI(us, ledger)
    deploy(eu_cli, 1, playbook)
    deploy(eu_cli, 2, playbook)
    ran = us_cli("rollback", "--reason", "probe", playbook=playbook)
    assert ran.code == 2 and "no earlier phase" in ran.stderr, ran.stdout + ran.stderr
    assert phases(lab) == {"h1": 2, "h2": 2, "h3": 0}
    assert record(eu_cli, eu)[0] == 2
    assert Ledger(ledger).state("us/prod.yml").phase is None


@pytest.mark.scenario("emergency rollback ahead of the fleet, or to a phase that does not exist")
def test_emergency_only_goes_back(setup: tuple[Lab, CLI, Path]) -> None:
    """`rollback --emergency --to 4` on a fleet at phase 1 is refused (exit 8) and `--to 99` is
    a usage error (exit 2, no traceback); every host stays at 1, the record at 1, not paused."""
    lab, cli, playbook = setup
    deploy(cli, 1, playbook)
    ahead = cli("rollback", "--emergency", "--to", "4", "--reason", "x", playbook=playbook)
    assert ahead.code == 8 and "only goes back" in ahead.stderr, ahead.stdout + ahead.stderr
    missing = cli("rollback", "--emergency", "--to", "99", "--reason", "x", playbook=playbook)
    assert missing.code == 2 and "does not exist" in missing.stderr, missing.stderr
    assert "Traceback" not in missing.stderr
    assert phases(lab) == {h.name: 1 for h in lab.hosts}
    phase, paused, _ = record(cli)
    assert (phase, paused) == (1, False)


@pytest.mark.scenario("a flag the service does not know")
def test_unknown_flag_is_refused_at_preflight(setup: tuple[Lab, CLI, Path], tmp_path: Path) -> None:
    """A playbook declaring a flag no node knows is refused at pre-flight (exit 2, naming the
    flag, the hosts and the playbook line) within seconds, before any host changes."""
    lab, cli, _playbook = setup

    def extra_flag(data: dict[str, object]) -> None:
        flags = data["flags"]
        assert isinstance(flags, dict)
        flags["no_such_flag"] = False

    playbook = fault_playbook(tmp_path / "unknown.yml", edit=extra_flag)
    line = next(i for i, t in enumerate(playbook.read_text().splitlines(), 1)
                if t.strip().startswith("no_such_flag:"))  # fmt: skip
    started = time.monotonic()
    ran = cli("deploy", "--phase", "1", "--yes", "--no-wait", playbook=playbook)
    assert ran.code == 2, ran.stdout + ran.stderr
    assert time.monotonic() - started < 30
    assert f"{playbook}:{line}" in ran.stderr and "`no_such_flag`" in ran.stderr
    assert "h1, h2, h3" in ran.stderr
    assert phases(lab) == {h.name: 0 for h in lab.hosts}
    assert record(cli)[0] is None


# -- inputs and output ------------------------------------------------------------------------


@pytest.mark.scenario("a FIFO as the playbook or the inventory")
def test_fifo_inputs_are_refused_at_once(setup: tuple[Lab, CLI, Path], tmp_path: Path) -> None:
    """A FIFO given as the playbook, or /dev/zero as the inventory, is exit 2 within seconds
    (never a hang or a memory blow-up); no host changes."""
    lab, cli, _playbook = setup
    fifo = tmp_path / "fifo.yml"
    os.mkfifo(fifo)
    started = time.monotonic()
    ran = cli("status", playbook=fifo, timeout=30)
    assert ran.code == 2 and "FIFO" in ran.stderr, ran.stderr
    zero = CLI(Path("/dev/zero"), cli.ledger)("status", timeout=30)
    assert zero.code == 2 and "character device" in zero.stderr, zero.stderr
    assert time.monotonic() - started < 30
    assert phases(lab) == {h.name: 0 for h in lab.hosts}


NOISY = """#!/bin/sh
# a release script that echoes its environment (set -x in env.sh) and floods its output
env >&2
head -c {size} /dev/zero | tr '\\0' 'x' >&2
echo >&2
env >&2
exit 1
"""


@pytest.mark.scenario("a failing host prints its cookie and 20 MB of output")
def test_host_output_is_capped_and_redacted(
    setup: tuple[Lab, CLI, Path], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """h2's release script prints its environment (the cookie) and 20 MB, then fails: status
    and deploy exit 5, nothing changes; the cookie is in no output, --json line or ledger byte;
    the output, the ledger and the controller's memory stay small."""
    lab, _cli, playbook = setup
    where = Path(tempfile.mkdtemp(prefix="rollout-fault-noisy-", dir="/tmp"))
    where.chmod(0o777)  # the lab user keeps the host's fleet record beside release_bin
    try:
        script = where / "foundation"
        script.write_text(NOISY.format(size=20_000_000))
        script.chmod(0o755)
        cookie = faults.cookie(lab.hosts[1])
        inventory = faults.write_inventory(lab, tmp_path / "noisy.yml", host_vars={
            "h2": {"release_bin": str(script), "release_env": {"RELEASE_COOKIE": cookie}},
        })  # fmt: skip
        ledger = tmp_path / "ledger.db"
        cli = CLI(inventory, ledger)
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        runs = [cli("status", "--json", playbook=playbook),
                cli("deploy", "--phase", "1", "--yes", "--no-wait", playbook=playbook),
                cli("deploy", "--phase", "1", "--yes", "--no-wait", "--json",
                    playbook=playbook)]  # fmt: skip
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        for ran in runs:
            assert ran.code == 5, ran.stdout[-2000:] + ran.stderr[-2000:]
            text = ran.stdout + ran.stderr
            assert cookie not in text
            assert len(text.encode()) < 200_000, len(text.encode())
        assert "<redacted>" in "".join(r.stdout + r.stderr for r in runs)
        stored = b"".join(p.read_bytes() for p in tmp_path.glob("ledger.db*"))
        assert cookie.encode() not in stored
        assert len(stored) < 5_000_000, len(stored)
        assert max(before, peak_kib) < 400_000, peak_kib  # KiB: the controller never held 20 MB x N
        assert phases(lab) == {h.name: 0 for h in lab.hosts}
        assert Ledger(ledger).state(load_inventory(inventory).name).phase is None
        largest = max(len((r.stdout + r.stderr).encode()) for r in runs)
        figure(request, f"20 MB from a host: largest run output {largest} B, ledger "
               f"{len(stored)} B, controller peak RSS {peak_kib // 1024} MiB")  # fmt: skip
    finally:
        shutil.rmtree(where, ignore_errors=True)
