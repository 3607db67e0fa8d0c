"""Putting lab hosts into a known state between runs, and checking the state a run left.

SSH-only lab hosts keep their flags in ``release/flags.state`` (the console stub's file), so
a reset is a local file write per host and costs nothing measurable. Hosts with a real
release are reset through their console with one raw SSH fan-out of an apply, untimed.
The ledger a tool run starts from is a copy of a template taken with SQLite's backup API.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from rollout.models import FlagValue, Host, Playbook


def state_file(host: Host) -> Path:
    """Where the console stub of an SSH-only lab host keeps its flags."""
    return Path(host.release_bin).parent.parent / "flags.state"


def _text(value: FlagValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def set_stub_phase(hosts: Sequence[Host], playbook: Playbook, phase: int) -> None:
    """Give every stub host ``phase``'s full flag state."""
    state = playbook.phase(phase).state
    text = "".join(f"{name} {_text(value)}\n" for name, value in state)
    for host in hosts:
        path = state_file(host)
        owner = path.parent.stat()
        tmp = path.with_name(".flags.state.bench")
        tmp.write_text(text)
        if os.geteuid() == 0:
            os.chown(tmp, owner.st_uid, owner.st_gid)
        os.replace(tmp, path)


def stub_hosts_off_phase(hosts: Sequence[Host], playbook: Playbook, phase: int) -> list[str]:
    """Stub hosts whose flags do not hold ``phase``'s full state (empty when all do)."""
    want = {name: _text(value) for name, value in playbook.phase(phase).state}
    bad = []
    for host in hosts:
        try:
            lines = state_file(host).read_text().split("\n")
        except FileNotFoundError:
            lines = []
        got = dict(line.split(" ", 1) for line in lines if " " in line)
        if any(got.get(name, "false") != value for name, value in want.items()):
            bad.append(host.name)
    return bad


def snapshot(source: Path, target: Path) -> None:
    """Copy a SQLite ledger consistently (WAL included) to ``target``."""
    target.unlink(missing_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()
