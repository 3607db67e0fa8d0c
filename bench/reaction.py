"""Reaction time of the automatic rollback: breach injected -> every host verified back.

``python -m bench.reaction`` (or ``bash bench/run.sh --reaction``) starts a lab of real
releases for each size, deploys phases 1 and 2, starts ``invoke deploy --phase 3`` with a long
soak polled every second, waits for the first healthy poll, injects ``error_rate = 7.5`` on
one host, and measures until every node reads back phase 2's full state (read directly from
the nodes, not through the tool). In the same run it times what a person would have to do
at best: the detection floor (``interval x failure_limit``) plus a manual
``invoke rollback --to 2`` on the same lab. Ratios, not seconds, are the result.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from rollout.playbook import load_playbook
from rollout_lab import control
from rollout_lab.testing import running_lab

REPO = Path(__file__).resolve().parent.parent
INVOKE = str(Path(sys.executable).parent / "invoke")
PLAYBOOK = REPO / "playbooks" / "otp_refactor.yml"
INTERVAL = 1.0
FAILURE_LIMIT = 2


def _playbook(dest: Path) -> Path:
    data = yaml.safe_load(PLAYBOOK.read_text())
    data["health"].update({"interval": "1s", "failure_limit": FAILURE_LIMIT})
    data["health"]["source"]["timeout"] = "5s"
    for phase in data["phases"]:
        phase.get("gates", {}).pop("backup", None)
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def _cli(env: dict[str, str], inventory: Path, playbook: Path, *args: str) -> None:
    argv = [INVOKE, *args, "--inventory", str(inventory), "--playbook", str(playbook)]
    if args[0] == "deploy":
        argv.append("--skip-checks")
    subprocess.run(argv, cwd=REPO, env=env, check=True, capture_output=True, timeout=300)


def one_run(hosts: int) -> dict[str, float]:
    """One measurement on a fresh lab of ``hosts`` real releases."""
    state2 = load_playbook(PLAYBOOK).phase(2).state.as_dict()
    with running_lab(hosts) as lab, tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "ROLLOUT_LEDGER": f"{tmp}/ledger.db"}
        playbook = _playbook(Path(tmp) / "p.yml")
        for phase in ("1", "2"):
            _cli(env, lab.inventory, playbook, "deploy", "--phase", phase, "--yes", "--no-wait")
        _cli(env, lab.inventory, playbook, "deploy", "--phase", "3", "--yes", "--no-wait")
        started = time.monotonic()
        _cli(env, lab.inventory, playbook, "rollback", "--to", "2")
        manual = time.monotonic() - started  # a person's rollback, typed the instant they knew
        _cli(env, lab.inventory, playbook, "deploy", "--phase", "3", "--yes", "--no-wait")
        argv = [INVOKE, "monitor", "--soak", "600s", "--interval", "1s", "--inventory",
                str(lab.inventory), "--playbook", str(playbook)]  # fmt: skip
        proc = subprocess.Popen(argv, cwd=REPO, env=env, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)  # fmt: skip
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if "healthy" in proc.stdout.readline():
                break
        injected = time.monotonic()
        control.set_metrics(lab.hosts[0], error_rate=7.5)
        # the tool exits right after it has read every host back at phase 2
        proc.communicate(timeout=120)
        back = time.monotonic() - injected
        if proc.returncode != 4:
            raise SystemExit(f"no verified rollback (exit {proc.returncode})")
        wrong = [h.name for h in lab.hosts if control.read_flags(h) != state2]
        if wrong:
            raise SystemExit(f"the tool exited, but {wrong} are not at phase 2")
        exited = back
        floor = INTERVAL * FAILURE_LIMIT
        return {"hosts": hosts, "reaction": back, "exit": exited, "floor": floor,
                "manual_rollback": manual}  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reaction", description=__doc__)
    parser.add_argument("--sizes", default="3,10")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        runs = [one_run(size) for _ in range(args.reps)]
        reaction = [r["reaction"] for r in runs]
        rows.append({
            "hosts": size,
            "reaction_median": statistics.median(reaction),
            "reaction_min": min(reaction), "reaction_max": max(reaction),
            "exit_median": statistics.median(r["exit"] for r in runs),
            "floor": runs[0]["floor"],
            "manual_median": statistics.median(r["manual_rollback"] for r in runs),
        })  # fmt: skip
    print(
        "| hosts | reaction median (min-max) | / detection floor | / (floor + manual "
        "rollback) | process exit |"
    )
    print("|---|---|---|---|---|")
    for row in rows:
        floor = row["floor"]
        print(
            f"| {row['hosts']} | {row['reaction_median']:.2f}s ({row['reaction_min']:.2f}-"
            f"{row['reaction_max']:.2f}) | {row['reaction_median'] / floor:.2f}x | "
            f"{row['reaction_median'] / (floor + row['manual_median']):.2f}x | "
            f"{row['exit_median']:.2f}s |"
        )
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
