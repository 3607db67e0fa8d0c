"""Record the page tests' runs by running the real tool against a real lab (by hand, rarely).

    ROLLOUT_LAB_PORT_BASE=16000 .venv/bin/python -m tests.page.record_runs [NAME ...]

starts a 3-host lab, runs each scenario with ``invoke`` as an operator would, and writes what
the ledger recorded to ``tests/data/runs/NAME.json`` (see ``recorded.py``). Scenarios:

- ``breach``: phases 1 and 2 deployed; phase 3 soaks at 1 s polls; after eight healthy rounds
  the second host's error_rate jumps to 7.5 % (limit 5 %): two breached rounds, automatic
  rollback to phase 2, verified.
- ``clean``: phase 1 deployed and soaked for 12 s, every round healthy.
- ``inconclusive``: phase 1 soaks under ``monitor``; the third host reports error_rate as
  text (not a number) for about three rounds, then the first host's node is restarted (no
  value while it boots; its flags drift and are re-applied); the inconclusive limit is 8
  here, so the soak completes.

Each host is given its own healthy level of three metrics, plus noise on every read (the lab's
metric series), so the charts show what a fleet's would; injected values are fixed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rollout.ledger import Ledger
from rollout_lab import Lab, LabHost, control
from rollout_lab.testing import free_base_port, running_lab

from ..e2e.cli import CLI, fast_playbook
from .recorded import RUNS, dump

LEVELS = (
    {"error_rate": 0.6, "average_response_time": 42.0, "message_delivery_success": 99.7},
    {"error_rate": 1.4, "average_response_time": 55.0, "message_delivery_success": 99.4},
    {"error_rate": 0.9, "average_response_time": 38.0, "message_delivery_success": 99.8},
)
NOISE = {"error_rate": 0.3, "average_response_time": 7.0, "message_delivery_success": 0.2}


def _lines_until(proc: subprocess.Popen[str], needle: str, count: int = 1) -> None:
    assert proc.stdout is not None
    seen = 0
    while seen < count:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{needle!r} never appeared")
        seen += needle in line


def _series(host: LabHost, levels: dict[str, float]) -> None:
    for metric, level in levels.items():
        control.set_metric_series(host, metric, level, NOISE[metric])


def _levels(lab: Lab) -> None:
    for host, levels in zip(lab.hosts, LEVELS, strict=False):
        control.reset_host(host)
        _series(host, levels)


def breach(lab: Lab, cli: CLI, playbook: Path) -> None:
    for phase in ("1", "2"):
        ran = cli("deploy", "--phase", phase, "--yes", "--no-wait", playbook=playbook)
        assert ran.code == 0, ran.stderr
    proc = cli.popen("deploy", "--phase", "3", "--yes", "--soak", "120s", "--interval", "1s",
                     playbook=playbook)  # fmt: skip
    _lines_until(proc, "healthy", 8)
    control.set_metrics(lab.hosts[1], error_rate=7.5)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 4, out + err


def clean(lab: Lab, cli: CLI, playbook: Path) -> None:
    ran = cli("deploy", "--phase", "1", "--yes", "--soak", "12s", "--interval", "1s",
              playbook=playbook, timeout=180)  # fmt: skip
    assert ran.code == 0, ran.stdout + ran.stderr


def inconclusive(lab: Lab, cli: CLI, playbook: Path) -> None:
    ran = cli("deploy", "--phase", "1", "--yes", "--no-wait", playbook=playbook)
    assert ran.code == 0, ran.stderr
    proc = cli.popen("monitor", "--soak", "14s", "--interval", "1s", playbook=playbook)
    _lines_until(proc, "healthy", 2)
    control.set_metrics(lab.hosts[2], error_rate="n/a")
    time.sleep(2.5)
    _series(lab.hosts[2], {"error_rate": LEVELS[2]["error_rate"]})
    control.restart_node(lab.hosts[0])
    _series(lab.hosts[0], LEVELS[0])
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, out + err


SCENARIOS: dict[str, Callable[[Lab, CLI, Path], None]] = {
    "breach": breach, "clean": clean, "inconclusive": inconclusive,
}  # fmt: skip


def record(names: list[str]) -> None:
    with running_lab(3, base_port=free_base_port(3)) as lab:
        for name in names:
            work = Path(tempfile.mkdtemp(prefix=f"record-{name}-"))
            limit = 8 if name == "inconclusive" else 4  # a node restart takes a few rounds
            playbook = fast_playbook(work / "fast.yml", failure_limit=2, inconclusive_limit=limit)
            cli = CLI(lab.inventory, work / "ledger.db")
            _levels(lab)
            SCENARIOS[name](lab, cli, playbook)
            with Ledger(cli.ledger) as ledger:
                inventory = ledger.runs()[0].inventory
                run = ledger.runs(inventory, 1)[0]
                data = dump(ledger, run.id)
            out = RUNS / f"{name}.json"
            out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
            print(f"{name}: run {run.id} ({run.status.value}), {len(data['events'])} events"
                  f" -> {out}")  # fmt: skip


if __name__ == "__main__":
    record(sys.argv[1:] or list(SCENARIOS))
