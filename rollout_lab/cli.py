"""The lab's commands as plain functions for ``tasks.py``: print progress, return an exit code.

``tasks.py`` wires them as ``invoke lab.up``, ``lab.down`` and ``lab.status`` and turns a
non-zero return into ``invoke.Exit``. The renderers return strings; only the ``cmd_*``
functions print.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from rollout.errors import ExitCode, RolloutError

from .manager import down, status, up
from .model import HostStatus, Lab


def _fail(exc: RolloutError) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return int(exc.exit_code)


def render_lab(lab: Lab) -> str:
    """A short summary of a lab: how to log in, and one line per host."""
    lines = [
        f"lab {lab.root} (user {lab.user})",
        f"  key {lab.key_file}  known_hosts {lab.known_hosts}",
        f"  inventory {lab.inventory}",
    ]
    for host in lab.hosts:
        what = host.node if host.with_release else "SSH-only"
        lines.append(f"  {host.name:<5} 127.0.0.1:{host.port:<6} {what}")
    return "\n".join(lines)


def render_status(rows: Sequence[HostStatus]) -> str:
    """A table of :class:`HostStatus` rows, one host per line, plus a verdict line."""
    header = ("HOST", "PORT", "SSHD", "LISTEN", "NODE", "CONSOLE", "DETAIL")
    table = [header]
    for row in rows:
        console = (
            "n/a"
            if not row.with_release
            else (
                f"ok {row.console_seconds:.2f}s"
                if row.console_ok and row.console_seconds is not None
                else "FAIL"
            )
        )
        table.append(
            (
                row.name,
                str(row.port),
                str(row.sshd_pid) if row.sshd_alive else "DOWN",
                "yes" if row.port_open else "NO",
                "n/a"
                if not row.with_release
                else (str(row.node_pid) if row.node_alive else "DOWN"),
                console,
                row.detail,
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table
    ]
    bad = [row.name for row in rows if not row.ok]
    lines.append(
        f"{len(rows) - len(bad)}/{len(rows)} hosts ok"
        + (f"; not ok: {', '.join(bad)}" if bad else "")
    )
    return "\n".join(lines)


def cmd_up(
    hosts: int, *, base_port: int = 2200, with_release: bool = True, root: Path | None = None
) -> int:
    """``invoke lab.up``: bring up (or complete) the lab and print it."""
    try:
        lab = up(hosts, base_port=base_port, with_release=with_release, root=root)
    except RolloutError as exc:
        return _fail(exc)
    print(render_lab(lab))
    return int(ExitCode.OK)


def cmd_down(purge: bool, *, root: Path | None = None) -> int:
    """``invoke lab.down``: stop everything the lab started; ``purge`` also deletes its files."""
    try:
        down(root, purge=purge)
    except RolloutError as exc:
        return _fail(exc)
    return int(ExitCode.OK)


def cmd_status(*, root: Path | None = None) -> int:
    """``invoke lab.status``: print a table of every host; non-zero unless all are ok."""
    try:
        rows = status(root)
    except RolloutError as exc:
        return _fail(exc)
    print(render_status(rows))
    return int(ExitCode.OK if all(r.ok for r in rows) else ExitCode.UNREACHABLE)
