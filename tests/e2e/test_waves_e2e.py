"""Waves judged against the baseline, end to end, on a 6-host lab (issue 16's acceptance).

The lab's hosts are SSH-only (a real OpenSSH server in front of the console stub, no BEAM):
six real Elixir nodes would take most of the suite's budget to boot, and a wave's judgement
depends on what the hosts report, not on what serves it. Each host reads its metric as a level
plus fresh noise on every poll (``control.set_metric_series``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import yaml

from rollout.ledger import Ledger
from rollout.playbook import load_playbook
from rollout_lab import Lab, control
from rollout_lab.testing import reset, running_lab

from .cli import CLI, PLAYBOOK, fast_playbook

pytestmark = pytest.mark.e2e
HOSTS = 6
STATES = {p: load_playbook(PLAYBOOK).phase(p).state.as_dict() for p in range(3)}
HEALTHY = (0.5, 0.2)  # error_rate level and noise of a healthy host (threshold: max 5.0)


@pytest.fixture(scope="module")
def stub_lab() -> Iterator[Lab]:
    with running_lab(HOSTS, with_release=False) as lab:
        yield lab


@pytest.fixture
def lab(stub_lab: Lab) -> Lab:
    reset(stub_lab)
    for host in stub_lab.hosts:
        control.set_metric_series(host, "error_rate", *HEALTHY)
    return stub_lab


def wave_playbook(
    dest: Path, *, wave_soak: str = "2s", min_samples: int = 5, first: int = 1,
    textfile: Path | None = None,
) -> Path:  # fmt: skip
    """Phase 1 in waves (``first`` hosts, then half the fleet, then the rest), error_rate
    compared."""
    fast_playbook(dest, interval="250ms", failure_limit=2, inconclusive_limit=3)
    data: dict[str, Any] = yaml.safe_load(dest.read_text())
    data["health"]["thresholds"]["error_rate"]["compare"] = {
        "allowed": 1.0, "confidence": 0.95, "min_samples": min_samples,
    }  # fmt: skip
    data["health"]["thresholds"]["average_response_time"].pop("compare", None)
    if textfile is not None:
        data["health"]["textfile"] = str(textfile)
    phase1 = data["phases"][0]
    phase1["soak"] = "2s"
    phase1["waves"] = [{"hosts": first, "soak": wave_soak}, {"hosts": "50%", "soak": wave_soak}]
    data["phases"][1]["gates"] = {"approval": True}  # advance stops after phase 1
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def judgements(cli: CLI) -> list[dict[str, Any]]:
    with Ledger(cli.ledger) as ledger:
        inv = ledger.runs(limit=1)[0].inventory
        return [e.data["data"] for e in ledger.inventory_events(inv, "judgement")]


def test_canary_worse_than_baseline_rolls_back_only_the_canary(lab: Lab, tmp_path: Path) -> None:
    """A canary at 3.5% errors (under the 5% threshold) against a 0.5% baseline fails its wave:
    only that host goes back, verified, the others were never touched, and the report shows
    the judgement as a table, as JSON and as JUnit test cases."""
    canary = lab.hosts[0]
    control.set_metric_series(canary, "error_rate", 3.5, 0.2)
    prom = tmp_path / "rollout.prom"
    playbook = wave_playbook(tmp_path / "p.yml", textfile=prom)
    cli = CLI(lab.inventory, tmp_path / "ledger.db")
    ran = cli("deploy", "--phase", "1", "--yes", playbook=playbook)
    assert ran.code == 4, ran.stdout + ran.stderr
    assert "Only the canary" in ran.stderr and canary.name in ran.stderr
    for host in lab.hosts:
        assert control.read_flags(host) == STATES[0], host.name
    [judged] = judgements(cli)
    assert judged["verdict"] == "fail" and judged["canary"] == [canary.name]
    [metric] = judged["metrics"]
    exposed = prom.read_text()  # the last round, for node_exporter's textfile collector
    assert f'host="{canary.name}",metric="error_rate",side="canary"}}' in exposed
    assert 'side="baseline"' in exposed and "rollout_wave{" in exposed
    assert metric["outcome"] == "fail" and metric["canary_count"] >= 5
    assert metric["baseline_count"] >= 5 * 5
    assert metric["canary_median"] > 3.0 and metric["baseline_median"] < 1.0
    with Ledger(cli.ledger) as ledger:
        inv = ledger.runs(limit=1)[0].inventory
        state = ledger.state(inv)
        assert state.phase == 0 and state.paused
        run = ledger.runs(inv, 1)[0]
        touched = {i.host for i in ledger.intents(run.id)}
    assert touched == {canary.name}  # the baseline was never changed
    report = cli("report", playbook=playbook)
    assert report.code == 0, report.stderr
    assert "wave 1/3" in report.stdout and "error_rate" in report.stdout
    assert "fail" in report.stdout and "Mann-Whitney" in report.stdout
    as_json = cli("report", "--json", playbook=playbook)
    lines = [json.loads(line) for line in as_json.stdout.splitlines()]
    waves = [line for line in lines if line.get("event") == "report.wave"]
    assert waves and waves[0]["verdict"] == "fail"
    junit = tmp_path / "waves.xml"
    assert cli("report", "--junit", str(junit), playbook=playbook).code == 0
    cases = ElementTree.parse(junit).getroot().iter("testcase")
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == ["wave 1/3 of phase 1: error_rate"]


def test_fleet_wide_rise_is_reported_and_rolls_nothing_back(lab: Lab, tmp_path: Path) -> None:
    """Every host at 7% errors (canary and baseline both over the threshold) stops the wave as
    fleet-wide: no rollback, the canary keeps the phase, and a person decides."""
    for host in lab.hosts:
        control.set_metric_series(host, "error_rate", 7.0, 0.2)
    playbook = wave_playbook(tmp_path / "p.yml")
    cli = CLI(lab.inventory, tmp_path / "ledger.db")
    ran = cli("deploy", "--phase", "1", "--yes", playbook=playbook)
    assert ran.code == 8, ran.stdout + ran.stderr
    assert "fleet-wide" in ran.stderr and "nothing was rolled back" in ran.stderr
    assert control.read_flags(lab.hosts[0]) == STATES[1]
    for host in lab.hosts[1:]:
        assert control.read_flags(host) == STATES[0], host.name
    [judged] = judgements(cli)
    assert judged["verdict"] == "fleet-wide"
    with Ledger(cli.ledger) as ledger:
        inv = ledger.runs(limit=1)[0].inventory
        assert ledger.state(inv).phase == 1 and not ledger.state(inv).paused
        assert not [e for e in ledger.inventory_events(inv, "rollback")]
    status = cli("status", playbook=playbook)
    assert status.code == 0, status.stdout + status.stderr  # a wave's baseline is not drift
    assert "wave 1/3" in status.stdout and "fleet-wide" in status.stdout


def test_too_few_samples_are_inconclusive_until_approved(lab: Lab, tmp_path: Path) -> None:
    """A wave soak too short for the metric's minimum samples is inconclusive, never a pass:
    the next wave waits until a person approves."""
    playbook = wave_playbook(tmp_path / "p.yml", min_samples=200)
    cli = CLI(lab.inventory, tmp_path / "ledger.db")
    ran = cli("deploy", "--phase", "1", "--yes", playbook=playbook)
    assert ran.code == 8, ran.stdout + ran.stderr
    assert "inconclusive is never a pass" in ran.stderr
    [judged] = judgements(cli)
    assert judged["verdict"] == "inconclusive"
    assert judged["metrics"][0]["reason"].startswith("too few samples")
    waiting = cli("advance", "--json", playbook=playbook)
    assert waiting.code == 0 and waiting.events()[-1]["data"]["outcome"] == "waiting"
    assert sum(control.read_flags(h) == STATES[1] for h in lab.hosts) == 1
    assert cli("approve", "--phase", "1", playbook=playbook).code == 0
    moved = cli("advance", "--json", playbook=playbook)
    assert moved.code == 0, moved.stdout + moved.stderr
    assert moved.events()[-1]["data"]["outcome"] == "advanced"
    assert sum(control.read_flags(h) == STATES[1] for h in lab.hosts) == 3


def test_healthy_phase_walks_every_wave_with_advance(lab: Lab, tmp_path: Path) -> None:
    """On a healthy fleet, scheduled advance calls walk wave 1, wave 2 and the final wave,
    each soaked and passed before the next, one step per call, and then wait at phase 2.

    A scheduled soak takes one round per call, and a served soak has at least two rounds (the
    first counts no time): two canary hosts in wave 1 give at least 4 samples however slowly
    the calls come, above the minimum of 3."""
    playbook = wave_playbook(tmp_path / "p.yml", wave_soak="2s", min_samples=3, first=2)
    cli = CLI(lab.inventory, tmp_path / "ledger.db")
    assert cli("deploy", "--phase", "1", "--yes", "--no-wait", playbook=playbook).code == 0
    outcomes, messages = [], []
    for _ in range(30):
        ran = cli("advance", "--json", "--max-gap", "30s", playbook=playbook)
        assert ran.code == 0, ran.stdout + ran.stderr
        last = ran.events()[-1]
        outcomes.append(last["data"]["outcome"])
        messages.append(last["message"])
        if outcomes[-1] == "waiting":
            break
        time.sleep(0.3)
    assert outcomes[-1] == "waiting" and outcomes.count("advanced") == 2, messages
    for host in lab.hosts:
        assert control.read_flags(host) == STATES[1], host.name
    with Ledger(cli.ledger) as ledger:
        inv = ledger.runs(limit=1)[0].inventory
        waves = ledger.waves(inv)
    assert [(w.index, len(w.canary), w.verdict) for w in waves] == [
        (1, 2, "pass"), (2, 3, "pass"), (3, 6, "pass"),
    ]  # fmt: skip
    judged = [m for j in judgements(cli) for m in j["metrics"]]
    assert len(judged) == 2 and all(m["canary_count"] >= 3 for m in judged)
    for before, after in zip(waves, waves[1:], strict=False):
        assert before.finished is not None and after.started >= before.finished
    history = cli("history", playbook=playbook)
    assert "wave" in history.stdout
