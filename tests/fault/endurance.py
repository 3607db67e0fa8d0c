"""Tools for the endurance scenarios: their size, a sampler of a controller's resources, figures.

The scenarios run at a CI size by default, small enough for the suite's time budget; set
``ROLLOUT_ENDURANCE=full`` to run them at full size (thousands of polls, a hundred cycles,
250 hosts). :func:`size` picks the value for the current mode.

:class:`ResourceSampler` watches one controller process from outside, through ``/proc``, the
way an operator's monitoring would: resident memory, open file descriptors, threads, and the
TCP connections it holds to a set of ports (one per SSH connection to a lab host).

:func:`figure` attaches a line of figures to the running test's report; the fault summary
prints it under the scenario, so CI logs show what each endurance run measured.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import pytest

FULL = os.environ.get("ROLLOUT_ENDURANCE", "").strip().lower() == "full"
FIGURE_KEY = "fault_figure"


def size(ci: int, full: int) -> int:
    """``full`` when ``ROLLOUT_ENDURANCE=full``, else ``ci``."""
    return full if FULL else ci


def figure(request: pytest.FixtureRequest, text: str) -> None:
    """Attach ``text`` to this test's report, for the fault summary to print."""
    request.node.user_properties.append((FIGURE_KEY, text))


@dataclass(frozen=True)
class Reading:
    """One look at the process."""

    t: float  # seconds since the sampler started
    rss_kib: int
    fds: int
    threads: int
    connections: int  # established TCP connections to the watched ports


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _connections(inodes: set[str], ports: frozenset[int]) -> int:
    """Established TCP connections among ``inodes`` whose remote port is in ``ports``."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    remote_port = int(cols[2].rsplit(":", 1)[1], 16)
                    if cols[3] == "01" and remote_port in ports and cols[9] in inodes:
                        count += 1
        except FileNotFoundError:
            continue
    return count


def read(pid: int, ports: frozenset[int], t: float = 0.0) -> Reading | None:
    """The process's resources now; None once it has exited."""
    try:
        status = _status(pid)
        inodes = _socket_inodes(pid)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    if status.get("State", "").startswith("Z"):
        return None
    rss = int(status.get("VmRSS", "0 kB").split()[0])
    return Reading(t, rss, fds, int(status["Threads"]), _connections(inodes, ports))


@dataclass
class ResourceSampler:
    """Samples a process every ``every`` seconds in a thread until it exits or :meth:`stop`."""

    pid: int
    ports: Iterable[int]
    every: float = 0.25
    readings: list[Reading] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ports = frozenset(self.ports)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._t0 = time.monotonic()

    def __enter__(self) -> ResourceSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            reading = read(self.pid, self._ports, time.monotonic() - self._t0)
            if reading is None:
                return
            self.readings.append(reading)
            self._stop.wait(self.every)

    def steady(self, warm_up: float, wind_down: float) -> list[Reading]:
        """The readings from ``warm_up`` seconds into the run (past start-up and connecting) to
        ``wind_down`` seconds before the last one (before the run closes its connections)."""
        if not self.readings:
            return []
        end = self.readings[-1].t - wind_down
        return [r for r in self.readings if warm_up <= r.t <= end]


def spread(values: Iterable[int]) -> int:
    """max - min of ``values`` (0 for none)."""
    seq = list(values)
    return max(seq) - min(seq) if seq else 0


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"
