"""Several controllers, each with its own ledger, on one lab fleet: the hosts' record and lease."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from rollout.playbook import load_playbook
from rollout_lab import Lab, control
from rollout_lab.testing import clean_lab_fixture, lab_fixture  # noqa: F401

from .cli import CLI, PLAYBOOK, fast_playbook

pytestmark = pytest.mark.e2e
LAB_HOSTS = 3
STATES = {p: load_playbook(PLAYBOOK).phase(p).state.as_dict() for p in range(6)}


def phases(lab: Lab) -> list[int | None]:
    """Each host's phase, read straight from its node (not through the tool)."""
    out: list[int | None] = []
    for host in lab.hosts:
        flags = control.read_flags(host)
        matching = [p for p, s in STATES.items() if all(flags.get(k) == v for k, v in s.items())]
        out.append(matching[0] if matching else None)
    return out


def wait_for(proc: subprocess.Popen[str], needle: str, timeout: float = 60) -> str:
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return "".join(seen)
    raise AssertionError(f"{needle!r} never appeared in:\n{''.join(seen)}")


@pytest.fixture
def team(clean_lab: Lab, tmp_path: Path) -> tuple[CLI, CLI, CLI, Path]:
    """Three controllers (pipeline, operator, onlooker), each with its own ledger."""
    playbook = fast_playbook(tmp_path / "fast.yml")
    data = playbook.read_text().replace(
        "command_timeout: 20s", "command_timeout: 20s\n  lease_ttl: 6s"
    )
    playbook.write_text(data)
    ctl = [
        CLI(clean_lab.inventory, tmp_path / name / "ledger.db") for name in ("ci", "op", "third")
    ]
    return ctl[0], ctl[1], ctl[2], playbook


def test_emergency_is_not_undone_by_another_controllers_advance_or_monitor(
    team: tuple[CLI, CLI, CLI, Path], clean_lab: Lab
) -> None:
    """After B's emergency rollback, A's advance reports paused and A's monitor refuses (exit
    3 with B's story); every host stays at the emergency phase; status from C names B."""
    ci, op, third, playbook = team
    for phase in ("1", "2", "3"):
        ran = ci("deploy", "--phase", phase, "--yes", "--no-wait", playbook=playbook)
        assert ran.code == 0, ran.stderr
    assert phases(clean_lab) == [3, 3, 3]
    ran = op("rollback", "--emergency", "--reason", "pager: error spike", playbook=playbook)
    assert ran.code == 0, ran.stderr + ran.stdout
    assert phases(clean_lab) == [1, 1, 1]
    adv = ci("advance", "--json", "--interval", "1s", playbook=playbook)
    assert adv.code == 0, adv.stderr
    final = adv.events()[-1]
    assert final["data"]["outcome"] == "paused", adv.stdout
    assert "pager: error spike" in adv.stdout
    mon = ci("monitor", "--soak", "5s", "--interval", "1s", playbook=playbook)
    assert mon.code == 3, mon.stdout + mon.stderr
    assert "another controller" in mon.stderr and "invoke adopt" in mon.stderr
    assert phases(clean_lab) == [1, 1, 1]
    st = third("status", "--json", playbook=playbook)
    doc = json.loads(st.stdout.splitlines()[-1])
    for host in doc["hosts"]:
        change = host["last_change"]
        assert change["phase"] == 1 and change["paused"] is True
        assert "rollback" in change["command"] and change["reason"] == "pager: error spike"
        assert host["ledger_behind"] is True


def test_second_controller_is_refused_during_a_soak(
    team: tuple[CLI, CLI, CLI, Path], clean_lab: Lab
) -> None:
    """While A soaks phase 1, B's deploy, rollback and restart exit 3 naming A's run and
    change nothing; A's soak goes on until A stops it."""
    ci, op, _third, playbook = team
    proc = ci.popen("deploy", "--phase", "1", "--yes", "--soak", "60s", "--interval", "1s",
                    playbook=playbook)  # fmt: skip
    try:
        wait_for(proc, "soaking Phase 1")
        attempts = (
            ("deploy", "--phase", "1", "--yes", "--no-wait"),
            ("rollback", "--to", "0", "--force", "--reason", "x"),
            ("restart",),
        )
        for args in attempts:
            ran = op(*args, playbook=playbook)
            assert ran.code == 3, (args, ran.stdout, ran.stderr)
            assert "fleet lease" in ran.stderr and "invoke deploy" in ran.stderr
            assert "expires in" in ran.stderr
            assert phases(clean_lab) == [1, 1, 1]
        assert proc.poll() is None, "A's soak ended before every attempt was made"
        proc.terminate()  # A stops its soak (exit 130); the phase stays applied
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, out + err
    assert phases(clean_lab) == [1, 1, 1]


@pytest.mark.parametrize("shared", [False, True], ids=["own-ledger", "same-ledger"])
def test_run_whose_lease_or_lock_is_taken_by_an_emergency_stops(
    team: tuple[CLI, CLI, CLI, Path], clean_lab: Lab, shared: bool
) -> None:
    """A soaking deploy whose lock (same ledger) or lease (own ledgers) an emergency takes
    stops before its next change, says who took it, and never re-applies its phase."""
    ci, op, _third, playbook = team
    if shared:
        op = CLI(ci.inventory, ci.ledger)
    ran = ci("deploy", "--phase", "1", "--yes", "--no-wait", playbook=playbook)
    assert ran.code == 0, ran.stderr
    proc = ci.popen("deploy", "--phase", "2", "--yes", "--soak", "60s", "--interval", "1s",
                    playbook=playbook)  # fmt: skip
    try:
        wait_for(proc, "soaking Phase 2")
        ran = op("rollback", "--emergency", "--reason", "stop it", playbook=playbook)
        assert ran.code == 0, ran.stdout + ran.stderr
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 3, out + err
    assert "lost its" in err and "stopped changing hosts" in err
    assert "rollback --emergency" in err  # who took it: the emergency's run and command
    assert "re-applying" not in out
    time.sleep(2)
    assert phases(clean_lab) == [1, 1, 1]


def test_killed_holders_lease_is_taken_over_after_expiry(
    team: tuple[CLI, CLI, CLI, Path], clean_lab: Lab
) -> None:
    """A SIGKILLed controller's lease is replaced at once from its own machine; one held
    from another machine blocks (exit 3, naming it) until it expires, then is taken over with
    an announcement, and the hosts reach the new phase."""
    ci, op, _third, playbook = team
    proc = ci.popen("deploy", "--phase", "1", "--yes", "--soak", "60s", "--interval", "1s",
                    playbook=playbook)  # fmt: skip
    wait_for(proc, "soaking Phase 1")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ran = op("deploy", "--phase", "1", "--yes", "--no-wait", playbook=playbook)
    assert ran.code == 3, ran.stdout + ran.stderr  # dead local holder replaced, then the
    assert "took over the fleet lease" in ran.stdout  # stale-ledger check refuses
    assert "another controller" in ran.stderr
    # a holder on another machine (a CI runner) whose lease expires in 6 s
    holder = {"claimed": 1.0, "command": "invoke advance", "ledger": "lg-x", "ledger_path": "/ci",
              "pid": 4242, "pid_start": None, "run_id": "r-ci-1", "where": "ci-runner-7",
              "who": "ci"}  # fmt: skip
    for host in clean_lab.hosts:
        state = host.release_bin.parent.parent / ".rollout-state"
        (state / "lease").write_text(
            f"fl-0123456789ab {int(time.time()) + 6}\n{json.dumps(holder)}\n"
        )
        (state / "lease").chmod(0o644)
    ran = op("deploy", "--phase", "1", "--yes", "--no-wait", playbook=playbook)
    assert ran.code == 3, ran.stdout + ran.stderr
    assert "ci@ci-runner-7" in ran.stderr and "r-ci-1" in ran.stderr
    assert "invoke advance" in ran.stderr and "expires in" in ran.stderr
    time.sleep(7)
    ran = op("adopt", playbook=playbook)
    assert ran.code == 0, ran.stdout + ran.stderr
    ran = op("deploy", "--phase", "2", "--yes", "--no-wait", playbook=playbook)
    assert ran.code == 0, ran.stdout + ran.stderr
    assert "took over the fleet lease fl-0123456789ab" in ran.stdout and "expired" in ran.stdout
    assert phases(clean_lab) == [2, 2, 2]
