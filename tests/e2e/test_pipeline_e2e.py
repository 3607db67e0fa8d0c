"""Unattended rollouts, emergency rollback and notifications against real lab hosts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollout.ledger import Ledger
from rollout.playbook import load_playbook
from rollout_lab import Lab, control
from rollout_lab.testing import clean_lab_fixture, lab_fixture  # noqa: F401

from .cli import CLI, PLAYBOOK, fast_playbook

pytestmark = pytest.mark.e2e
LAB_HOSTS = 3
STATES = {p: load_playbook(PLAYBOOK).phase(p).state.as_dict() for p in range(6)}
SECRET = "T0CANARY/B0CANARY/xoxb-canary-secret-4f2a9c"


def short_soaks(dest: Path, soak: str = "2s") -> Path:
    """The fast playbook with every phase soaking ``soak`` and no backup/approval gates."""
    path = fast_playbook(dest, interval="1s", failure_limit=2, inconclusive_limit=3)
    data = yaml.safe_load(path.read_text())
    for phase in data["phases"]:
        phase["soak"] = soak
        phase.pop("gates", None)
    data["notify"]["webhook"]["timeout"] = "2s"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class Hook(BaseHTTPRequestHandler):
    """A webhook receiver: records bodies; ``mode`` makes it answer 500 or hang."""

    bodies: list[dict[str, Any]] = []
    mode = "ok"

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if Hook.mode == "hang":
            time.sleep(30)
            return
        Hook.bodies.append(json.loads(body))
        self.send_response(500 if Hook.mode == "fail" else 200)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    Hook.bodies, Hook.mode = [], "ok"
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/services/{SECRET}"
    finally:
        server.shutdown()


def outcome(ran: Any) -> str:
    finals = [e for e in ran.events() if e.get("data", {}).get("outcome")]
    return str(finals[-1]["data"]["outcome"]) if finals else "?"


def test_advance_walks_all_phases_each_after_its_soak(clean_lab: Lab, tmp_path: Path) -> None:
    """advance in a loop deploys 1 -> 5, each only after the previous soak completed."""
    playbook = short_soaks(tmp_path / "p.yml")
    cli = CLI(clean_lab.inventory, tmp_path / "ledger.db")
    outcomes = []
    for _ in range(40):
        ran = cli("advance", "--json", "--max-gap", "30s", playbook=playbook)
        assert ran.code == 0, ran.stdout + ran.stderr
        outcomes.append(outcome(ran))
        if outcomes[-1] == "done":
            break
        time.sleep(0.5)
    assert outcomes[-1] == "done", outcomes
    assert outcomes.count("advanced") == 5
    ledger = Ledger(cli.ledger)
    inv = ledger.runs()[0].inventory
    sets = [e for e in ledger.inventory_events(inv, "phase.set")]
    assert [e.data["to"] for e in sets] == [1, 2, 3, 4, 5]
    for before, after in zip(sets, sets[1:], strict=False):
        assert after.ts - before.ts >= 2.0  # the previous phase soaked first
    for host in clean_lab.hosts:
        assert control.read_flags(host) == STATES[5]


def test_breach_during_advance_rolls_back_and_pauses(clean_lab: Lab, tmp_path: Path) -> None:
    """A breach in phase 3 rolls back; later advance calls do nothing until resume."""
    playbook = short_soaks(tmp_path / "p.yml", soak="1h")
    cli = CLI(clean_lab.inventory, tmp_path / "ledger.db")
    for phase in ("1", "2"):
        assert cli("deploy", "--phase", phase, "--yes", "--no-wait", playbook=playbook).code == 0
    assert cli("deploy", "--phase", "3", "--yes", "--no-wait", playbook=playbook).code == 0
    control.set_metrics(clean_lab.hosts[0], error_rate=7.5)
    codes = [cli("advance", "--json", playbook=playbook).code for _ in range(2)]
    assert codes == [0, 4]
    for host in clean_lab.hosts:
        assert control.read_flags(host) == STATES[2]
    control.reset_metrics(clean_lab.hosts[0])
    ran = cli("advance", "--json", playbook=playbook)
    assert ran.code == 0 and outcome(ran) == "paused"
    assert cli("resume", playbook=playbook).code == 0
    ran = cli("advance", "--json", playbook=playbook)
    assert ran.code == 0 and outcome(ran) == "sampled"


def test_advance_exits_busy_while_another_run_holds_the_lock(
    clean_lab: Lab, tmp_path: Path
) -> None:
    """advance waits --lock-timeout for a running monitor, then exits 3 naming it."""
    playbook = short_soaks(tmp_path / "p.yml", soak="1h")
    cli = CLI(clean_lab.inventory, tmp_path / "ledger.db")
    assert cli("deploy", "--phase", "1", "--yes", "--no-wait", playbook=playbook).code == 0
    holder = cli.popen("monitor", "--interval", "1s", playbook=playbook)
    try:
        time.sleep(3)
        started = time.monotonic()
        ran = cli("advance", "--lock-timeout", "2s", playbook=playbook)
        assert ran.code == 3, ran.stdout + ran.stderr
        assert time.monotonic() - started >= 2.0
        assert "monitor" in ran.stderr
    finally:
        holder.terminate()
        holder.communicate(timeout=60)


def test_emergency_rollback_with_one_sshd_stopped(clean_lab: Lab, tmp_path: Path) -> None:
    """Emergency from phase 4 with one sshd down: the rest verified at phase 1, exit 5."""
    playbook = fast_playbook(tmp_path / "p.yml")
    cli = CLI(clean_lab.inventory, tmp_path / "ledger.db")
    assert (
        cli("deploy", "--phase", "4", "--yes", "--no-wait", "--force", playbook=playbook).code == 0
    )
    down = clean_lab.hosts[1]
    control.stop_sshd(down)
    try:
        ran = cli("rollback", "--emergency", "--reason", "pager", playbook=playbook)
    finally:
        control.start_sshd(down)
    assert ran.code == 5, ran.stdout + ran.stderr
    assert down.name in ran.stderr and "INCOMPLETE" in ran.stderr
    for host in clean_lab.hosts:
        expected = STATES[4] if host is down else STATES[1]
        assert control.read_flags(host) == expected, host.name
    ledger = Ledger(cli.ledger)
    assert ledger.state(ledger.runs()[0].inventory).phase == 1
    status = cli("status", playbook=playbook)
    assert "differs from the recorded phase" in status.stdout and down.name in status.stdout
    again = cli("rollback", "--emergency", "--reason", "converge the rest", playbook=playbook)
    assert again.code == 0, again.stdout + again.stderr
    assert control.read_flags(down) == STATES[1]


def test_notifications_are_sent_and_the_url_never_shows(
    clean_lab: Lab, tmp_path: Path, webhook: str
) -> None:
    """Deploy and rollback notify the webhook; its secret URL is in no output or ledger."""
    playbook = fast_playbook(tmp_path / "p.yml")
    cli = CLI(clean_lab.inventory, tmp_path / "ledger.db", env={"ROLLOUT_WEBHOOK_URL": webhook})
    runs = [
        cli("deploy", "--phase", "1", "--yes", "--no-wait", playbook=playbook),
        cli("deploy", "--phase", "2", "--yes", "--no-wait", "--json", playbook=playbook),
        cli("rollback", "--reason", "canary test", playbook=playbook),
    ]
    assert [r.code for r in runs] == [0, 0, 0]
    kinds = [b.get("text", "") for b in Hook.bodies]
    assert len(Hook.bodies) == 5, kinds
    assert any("canary test" in json.dumps(b) for b in Hook.bodies)
    for ran in runs:
        assert SECRET not in ran.stdout and SECRET not in ran.stderr
        assert "SECRET" not in ran.stdout.upper().replace("SECRETS", "")
    for path in tmp_path.iterdir():
        if path.name.startswith("ledger.db"):
            assert SECRET.encode() not in path.read_bytes()


@pytest.mark.parametrize("mode", ["fail", "hang"])
def test_broken_webhook_never_blocks_a_rollback(
    clean_lab: Lab, tmp_path: Path, webhook: str, mode: str
) -> None:
    """A webhook answering 500 or hanging delays a rollback by no more than its timeout."""
    playbook = short_soaks(tmp_path / "p.yml")  # webhook timeout 2s
    cli = CLI(clean_lab.inventory, tmp_path / "ledger.db", env={"ROLLOUT_WEBHOOK_URL": webhook})

    def timed_rollback() -> float:
        assert (
            cli("deploy", "--phase", "2", "--yes", "--no-wait", "--force", playbook=playbook).code
            == 0
        )
        started = time.monotonic()
        ran = cli("rollback", "--to", "1", "--reason", "webhook down", playbook=playbook)
        took = time.monotonic() - started
        assert ran.code == 0, ran.stdout + ran.stderr
        assert SECRET not in ran.stdout + ran.stderr
        for host in clean_lab.hosts:
            assert control.read_flags(host) == STATES[1]
        return took

    assert cli("deploy", "--phase", "1", "--yes", "--no-wait", playbook=playbook).code == 0
    baseline = timed_rollback()
    Hook.mode = mode
    broken = timed_rollback()
    assert broken - baseline <= 2.0 + 2.5, (baseline, broken)
