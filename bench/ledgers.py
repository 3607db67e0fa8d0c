"""``python -m bench.ledgers``: the ledger stores side by side, in one run.

The same 50-host deploy (stub hosts, the suite's SSH-only lab) with the SQLite ledger on
disk, on tmpfs, and on a throwaway local PostgreSQL server (``rollout_lab.postgres``, fsync
on, Unix socket), rounds interleaved so load drifts hit every store alike. The full suite
(``bash bench/run.sh``) runs the same comparison as its "Ledger" table; this runs only it.

    .venv/bin/python -m bench.ledgers --hosts 50 --reps 3
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from rollout.inventory import load_inventory
from rollout.playbook import load_playbook
from rollout_lab.testing import free_base_port, running_lab

from .report import ledger_table
from .suite import PLAYBOOK, StubFleet, ledger_ab, ledger_templates


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ledgers", description=__doc__)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    playbook = load_playbook(PLAYBOOK)
    with tempfile.TemporaryDirectory(prefix="rollout-bench-") as tmp:
        work = Path(tmp)
        n = args.hosts
        with running_lab(n, with_release=False, base_port=free_base_port(n)) as lab:
            fleet = StubFleet(load_inventory(lab.inventory).hosts, playbook)
            ledgers = ledger_templates(fleet, lab.inventory, work)
            ab = ledger_ab(fleet, lab.inventory, ledgers, work, args.reps)
    ab["n"] = [float(n)]
    print(json.dumps(ab), file=sys.stderr)
    print(ledger_table({"ledger_ab": ab}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
