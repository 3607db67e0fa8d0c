"""``state.json``: what the lab started, so that ``down`` stops exactly that.

Written atomically by ``up`` and by the control functions that start processes; read by
``load``, ``status`` and ``down``. Hand edits are not expected.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import LabError
from .model import LabPaths
from .procs import ProcessRef

VERSION = 1


@dataclass(frozen=True)
class HostRecord:
    """One host as recorded: its port, kind, node name and the processes started for it."""

    name: str
    port: int
    with_release: bool
    node: str
    sshd: ProcessRef | None = None
    beam: ProcessRef | None = None


@dataclass(frozen=True)
class LabState:
    """The whole record of a lab."""

    user: str
    inventory: Path
    epmd_port: int
    epmd: ProcessRef | None
    hosts: tuple[HostRecord, ...]

    def host(self, name: str) -> HostRecord | None:
        return next((h for h in self.hosts if h.name == name), None)

    def with_host(self, record: HostRecord) -> LabState:
        """This state with ``record`` replacing the host of the same name (or appended)."""
        hosts = [h for h in self.hosts if h.name != record.name]
        hosts.append(record)
        hosts.sort(key=lambda h: _host_order(h.name))
        return replace(self, hosts=tuple(hosts))


def _host_order(name: str) -> tuple[int, str]:
    digits = name.lstrip("h")
    return (int(digits), name) if digits.isdigit() else (1 << 30, name)


def _ref(data: object) -> ProcessRef | None:
    return ProcessRef.from_json(data)


def read(root: Path) -> LabState | None:
    """The lab state under ``root``, or None if there is no lab there."""
    path = LabPaths(root).state
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LabError(
            f"{path}: unreadable lab state ({exc})",
            hint="stop what runs by hand, then `invoke lab.down --purge`",
        ) from exc
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise LabError(
            f"{path}: unknown lab state format",
            hint="stop what runs by hand, then `invoke lab.down --purge`",
        )
    hosts = tuple(
        HostRecord(
            name=str(h["name"]),
            port=int(h["port"]),
            with_release=bool(h["with_release"]),
            node=str(h["node"]),
            sshd=_ref(h.get("sshd")),
            beam=_ref(h.get("beam")),
        )
        for h in data["hosts"]
    )
    return LabState(
        user=str(data["user"]),
        inventory=Path(data["inventory"]),
        epmd_port=int(data["epmd_port"]),
        epmd=_ref(data.get("epmd")),
        hosts=hosts,
    )


def write(root: Path, state: LabState) -> None:
    """Replace ``state.json`` under ``root`` atomically."""
    path = LabPaths(root).state
    data = {
        "version": VERSION,
        "user": state.user,
        "inventory": str(state.inventory),
        "epmd_port": state.epmd_port,
        "epmd": state.epmd.to_json() if state.epmd else None,
        "hosts": [
            {
                "name": h.name,
                "port": h.port,
                "with_release": h.with_release,
                "node": h.node,
                "sshd": h.sshd.to_json() if h.sshd else None,
                "beam": h.beam.to_json() if h.beam else None,
            }
            for h in state.hosts
        ],
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold the lab's lock: one ``up``/``down``/control change at a time per lab."""
    root.mkdir(parents=True, exist_ok=True)
    with open(LabPaths(root).lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
