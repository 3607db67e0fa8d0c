"""Helpers for end-to-end tests: run the real CLI against a lab, with a private ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
INVOKE = str(Path(sys.executable).parent / "invoke")
PLAYBOOK = REPO / "playbooks" / "otp_refactor.yml"


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str

    def events(self) -> list[dict[str, Any]]:
        """Every stdout line parsed as JSON (fails the test if one is not)."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


class CLI:
    """Runs ``invoke`` in a subprocess, as an operator would, against one inventory."""

    def __init__(self, inventory: Path, ledger: Path, env: dict[str, str] | None = None):
        self.inventory = inventory
        self.ledger = ledger
        self.env = {
            **os.environ,
            "ROLLOUT_LEDGER": str(ledger),
            "ROLLOUT_BACKUPS": str(ledger.parent / "backups"),
            **(env or {}),
        }

    def popen(self, *args: str, playbook: Path | None = None) -> subprocess.Popen[str]:
        """Start ``invoke ARGS``; deploy and advance get --skip-checks unless --source is given
        (the readiness checklist has its own tests; the lab has no service source tree)."""
        argv = [INVOKE, *args, "--inventory", str(self.inventory)]
        if args and args[0] in ("deploy", "advance") and "--source" not in args:
            argv.append("--skip-checks")
        if playbook is not None:
            argv += ["--playbook", str(playbook)]
        return subprocess.Popen(
            argv,
            cwd=REPO,
            env=self.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )

    def __call__(self, *args: str, playbook: Path | None = None, timeout: float = 120) -> Ran:
        proc = self.popen(*args, playbook=playbook)
        out, err = proc.communicate(timeout=timeout)
        return Ran(proc.returncode, out, err)


def fast_playbook(dest: Path, **health: Any) -> Path:
    """The reference playbook with short deadlines for tests (values override ``health``)."""
    data = yaml.safe_load(PLAYBOOK.read_text())
    data.setdefault("health", {}).setdefault("source", {"kind": "console"})
    data["health"]["source"]["timeout"] = "3s"
    data["health"].update(health)
    data.setdefault("policy", {})["command_timeout"] = "20s"
    for phase in data["phases"]:  # the backup gate has tests of its own
        phase.get("gates", {}).pop("backup", None)
        phase.pop("waves", None)  # and so have waves (test_waves_e2e.py)
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest
