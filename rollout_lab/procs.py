"""Telling the lab's own processes from everything else, and stopping them by pid.

A process is the lab's when its pid is alive (not a zombie: init on these machines does not
always reap orphans), its start time matches the one recorded when the lab started it, and
its command line carries the lab's markers (the sshd config path, a node's name and release
root). Nothing here ever signals a process that fails those checks.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessRef:
    """A process the lab started: pid, kernel start time (0 if unknown) and cmdline markers."""

    pid: int
    start_time: int
    markers: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {"pid": self.pid, "start_time": self.start_time, "markers": list(self.markers)}

    @classmethod
    def from_json(cls, data: object) -> ProcessRef | None:
        if not isinstance(data, dict):
            return None
        pid, start, markers = data.get("pid"), data.get("start_time"), data.get("markers")
        if not isinstance(pid, int) or not isinstance(start, int) or not isinstance(markers, list):
            return None
        return cls(pid, start, tuple(str(m) for m in markers))


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name, or None if there is no such pid."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rfind(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """The kernel start time of ``pid`` in clock ticks, or None if it is gone."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def parent_pid(pid: int) -> int | None:
    """The parent of ``pid``, or None if it is gone."""
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def cmdline(pid: int) -> str:
    """The command line of ``pid`` joined with spaces, plus a trailing space; '' if gone."""
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").rstrip() + " " if raw else ""


def owner(pid: int) -> int | None:
    """The uid owning ``pid``, or None if it is gone."""
    try:
        return (_PROC / str(pid)).stat().st_uid
    except (FileNotFoundError, ProcessLookupError):
        return None


def is_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def is_running(ref: ProcessRef) -> bool:
    """Whether ``ref`` is still the very process the lab started."""
    if not is_alive(ref.pid):
        return False
    if ref.start_time and start_time(ref.pid) != ref.start_time:
        return False
    line = cmdline(ref.pid)
    return all(marker in line for marker in ref.markers)


def identify(pid: int, markers: Iterable[str], uid: int | None = None) -> ProcessRef | None:
    """A :class:`ProcessRef` for ``pid`` if it is alive, owned by ``uid``, with ``markers``."""
    markers = tuple(markers)
    started = start_time(pid)
    if started is None or not is_alive(pid):
        return None
    if uid is not None and owner(pid) != uid:
        return None
    line = cmdline(pid)
    if not all(marker in line for marker in markers):
        return None
    return ProcessRef(pid, started, markers)


def find(markers: Iterable[str], uid: int | None = None) -> Iterator[ProcessRef]:
    """Every live process owned by ``uid`` whose command line carries all ``markers``."""
    markers = tuple(markers)
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            ref = identify(int(entry.name), markers, uid)
            if ref is not None:
                yield ref


def read_pid_file(path: Path) -> int | None:
    """The pid in ``path``, or None if the file is missing or holds no number."""
    try:
        text = path.read_text().strip()
    except (FileNotFoundError, PermissionError):
        return None
    return int(text) if text.isdigit() else None


def send(ref: ProcessRef, sig: int) -> bool:
    """Send ``sig`` to ``ref`` if it is still ours; return whether it was sent."""
    if not is_running(ref):
        return False
    try:
        os.kill(ref.pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_gone(ref: ProcessRef, timeout: float) -> bool:
    """Wait until ``ref`` has exited (or become a zombie); return whether it did in time."""
    deadline = time.monotonic() + timeout
    while is_running(ref):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def terminate(ref: ProcessRef, timeout: float = 10.0) -> bool:
    """Stop ``ref``: SIGTERM (and SIGCONT, in case a test froze it), then SIGKILL.

    Returns whether it is gone. A process that is not ours any more counts as gone.
    """
    if not send(ref, signal.SIGTERM):
        return True
    send(ref, signal.SIGCONT)
    if wait_gone(ref, timeout):
        return True
    send(ref, signal.SIGKILL)
    return wait_gone(ref, 5.0)


def port_accepting(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``host:port`` can be bound right now (nothing listens on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
