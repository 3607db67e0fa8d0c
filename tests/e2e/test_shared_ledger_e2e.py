"""Two controllers on two "machines" sharing one PostgreSQL ledger, against real lab hosts.

Each controller runs the real CLI from its own working directory under its own hostname
(a private UTS namespace via ``unshare --uts``, so the ledger sees two different machines),
with ``ROLLOUT_LEDGER`` pointing both at one database of the suite's throwaway cluster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollout.ledger import Ledger
from rollout.playbook import load_playbook
from rollout_lab import Lab, control
from rollout_lab.postgres import Cluster
from rollout_lab.testing import clean_lab_fixture, lab_fixture  # noqa: F401

from .cli import CLI, INVOKE, PLAYBOOK, REPO, Ran, fast_playbook

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0,
                       reason="needs root and unshare(1) to give each controller a hostname"),
]  # fmt: skip
LAB_HOSTS = 2
STATES = {p: load_playbook(PLAYBOOK).phase(p).state.as_dict() for p in range(6)}


class Controller(CLI):
    """The CLI as run on machine ``hostname`` from the working directory ``home``."""

    def __init__(
        self, inventory: Path, ledger: str, home: Path, hostname: str, *, on_argv: bool = False
    ) -> None:
        home.mkdir(parents=True, exist_ok=True)
        super().__init__(inventory, home / "unused.db", env={"ROLLOUT_LEDGER": ledger})
        self.env["ROLLOUT_BACKUPS"] = str(home / "backups")
        self.home, self.hostname = home, hostname
        #: pass the URI (password and all) as --ledger on the command line, not in the env
        self.on_argv = on_argv
        if on_argv:
            del self.env["ROLLOUT_LEDGER"]
        self.uri = ledger

    def popen(self, *args: str, playbook: Path | None = None) -> subprocess.Popen[str]:
        argv = [INVOKE, "--search-root", str(REPO), *args, "--inventory", str(self.inventory)]
        if args and args[0] in ("deploy", "advance") and "--source" not in args:
            argv.append("--skip-checks")
        if playbook is not None:
            argv += ["--playbook", str(playbook)]
        if self.on_argv:
            argv += ["--ledger", self.uri]
        return subprocess.Popen(
            ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', self.hostname, *argv],
            cwd=self.home, env=self.env, text=True, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )  # fmt: skip


def soaking(dest: Path, soak: str, approval_on: int | None = None) -> Path:
    """The fast playbook: every phase soaks ``soak``; only ``approval_on`` needs approval."""
    path = fast_playbook(dest, interval="1s", failure_limit=2, inconclusive_limit=3)
    data = yaml.safe_load(path.read_text())
    for phase in data["phases"]:
        phase["soak"] = soak
        phase.pop("gates", None)
        if phase["phase"] == approval_on:
            phase["gates"] = {"approval": True}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def outcome(ran: Ran) -> Any:
    finals = [e for e in ran.events() if e.get("data", {}).get("outcome")]
    return finals[-1]["data"]["outcome"] if finals else "?"


@pytest.fixture
def shared(
    pg_cluster: Cluster, clean_lab: Lab, tmp_path: Path
) -> tuple[str, Controller, Controller]:
    """One fresh PostgreSQL ledger (over TCP, password in the URI) and two controllers."""
    uri = pg_cluster.create_database()
    tcp = pg_cluster.tcp_uri(uri.split("/")[3].split("?")[0])
    a = Controller(clean_lab.inventory, tcp, tmp_path / "laptop", "ctl-laptop")
    b = Controller(clean_lab.inventory, tcp, tmp_path / "runner", "ctl-runner", on_argv=True)
    return tcp, a, b


def test_exactly_one_of_two_concurrent_deploys_proceeds(
    shared: tuple[str, Controller, Controller], clean_lab: Lab, tmp_path: Path
) -> None:
    """Two deploys started together from two machines: one applies and soaks, the other
    exits 3 naming the holder on the other machine; the hosts are at the phase, verified.
    One passes the URI with its password as --ledger: the password is in no output and in
    no recorded command line."""
    uri, a, b = shared
    playbook = soaking(tmp_path / "p.yml", soak="6s")
    procs = [c.popen("deploy", "--phase", "1", "--yes", playbook=playbook) for c in (a, b)]
    done = [(p.returncode, out, err) for p in procs for out, err in [p.communicate(timeout=180)]]
    codes = sorted(code for code, _, _ in done)
    assert codes == [0, 3], done
    loser = next(err for code, _, err in done if code == 3)
    assert "is locked" in loser and ("@ctl-laptop" in loser or "@ctl-runner" in loser)
    assert "holder is alive" in loser
    for host in clean_lab.hosts:
        assert control.read_flags(host) == STATES[1]
    with Ledger(uri) as ledger:
        runs = ledger.runs()
        assert sorted(r.status.value for r in runs) == ["refused", "succeeded"]
        assert {r.where for r in runs} == {"ctl-laptop", "ctl-runner"}
        assert ledger.state(runs[0].inventory).phase == 1
    password = uri.split(":")[2].split("@")[0]
    assert password not in "".join(o + e for _, o, e in done)
    with Ledger(uri) as ledger:
        recorded = [(r.command, " ".join(r.argv)) for r in ledger.runs()]
        assert any("--ledger postgresql://rollout:***@" in argv for _, argv in recorded)
        assert password not in repr(recorded)
        assert all(password not in repr(e.data) for r in ledger.runs() for e in ledger.events(r.id))


def test_an_approval_on_one_machine_opens_the_gate_for_the_other(
    shared: tuple[str, Controller, Controller], clean_lab: Lab, tmp_path: Path
) -> None:
    """The pipeline (one machine) waits at an approval gate until an operator on another
    machine approves; then its next advance deploys. history and report from either machine
    show both machines' runs, with who and where."""
    uri, laptop, runner = shared
    playbook = soaking(tmp_path / "p.yml", soak="1s", approval_on=2)
    assert laptop("deploy", "--phase", "1", "--yes", "--no-wait", playbook=playbook).code == 0
    time.sleep(1.5)
    waiting = runner("advance", "--json", playbook=playbook)
    for _ in range(5):  # the soak needs sampled rounds before phase 2 is considered
        if outcome(waiting) == "waiting":
            break
        time.sleep(1.0)
        waiting = runner("advance", "--json", playbook=playbook)
    assert waiting.code == 0 and outcome(waiting) == "waiting", waiting.stdout + waiting.stderr
    assert "approve --phase 2" in waiting.stdout
    assert laptop("approve", "--phase", "2", "--note", "ok from the laptop",
                  playbook=playbook).code == 0  # fmt: skip
    moved = runner("advance", "--json", playbook=playbook)
    assert moved.code == 0 and outcome(moved) == "advanced", moved.stdout + moved.stderr
    for host in clean_lab.hosts:
        assert control.read_flags(host) == STATES[2]
    with Ledger(uri) as ledger:
        inv = ledger.runs()[0].inventory
        [approved] = ledger.inventory_events(inv, "phase.approved")
        assert approved.data["note"] == "ok from the laptop"
        runs = ledger.runs(inv)
        assert {r.where for r in runs} == {"ctl-laptop", "ctl-runner"}
        by_laptop = next(r for r in runs if r.where == "ctl-laptop")
        by_runner = next(r for r in runs if r.where == "ctl-runner")
    for ctl in (laptop, runner):
        history = ctl("history", playbook=playbook)
        assert history.code == 0, history.stderr
        assert f"{by_laptop.who}@ctl-laptop" in history.stdout, history.stdout
        assert f"{by_runner.who}@ctl-runner" in history.stdout, history.stdout
        for run in (by_laptop, by_runner):
            report = ctl("report", "--run", run.id, playbook=playbook)
            assert report.code == 0, report.stderr
            assert f"by {run.who}@{run.where}" in report.stdout, report.stdout
