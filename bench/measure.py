"""Timing one command: wall time, client CPU, and the controller's peak memory.

:func:`run` starts a command in its own session, waits for it with GNU ``time`` (which gives the
CPU time and the peak RSS of the largest single process of its tree, for free) and, when asked,
samples ``/proc`` to find the peak *sum* of RSS over the whole process tree. (``wait4`` from
this process would not do: a child's peak RSS starts at its parent's, since a forked child
counts the parent's pages until it execs, and this harness is a fat Python process.)
Sampling costs a little CPU, so the suite asks for it only in dedicated memory runs.
Every run has a deadline: past it the command's process group is killed and the run fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
#: GNU time: starts the command from a small process and reports its rusage.
GNU_TIME = shutil.which("time", path="/usr/bin:/bin") or ""


class RunFailed(Exception):
    """A measured command failed or overran its deadline: its timing means nothing."""


@dataclass(frozen=True)
class Sample:
    """One measured run."""

    seconds: float
    cpu_seconds: float  # user + system of the command and every descendant it waited for
    max_rss_kib: int | None  # the largest single process of the tree (GNU time's %M)
    tree_rss_kib: int | None = None  # peak sum of RSS over the tree, when sampled


@dataclass(frozen=True)
class Stats:
    """Median, min and max of a list of numbers."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        if not values:
            raise ValueError("no values")
        return cls(statistics.median(values), min(values), max(values), len(values))


def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdout: Path | None = None,
    deadline: float = 300.0,
    sample_tree: bool = False,
    tree_marker: str | None = None,
    check: bool = True,
) -> Sample:
    """Run ``argv`` to completion and measure it; raise :class:`RunFailed` on failure.

    With ``sample_tree``, ``/proc`` is scanned every 50 ms for the command's descendants (and
    for processes whose command line holds ``tree_marker``, such as SSH control masters that
    daemonize out of the tree), and the peak sum of their RSS is recorded.
    """
    with tempfile.NamedTemporaryFile(prefix="bench-time-", suffix=".txt") as usage_file:
        wrapped = list(argv)
        if GNU_TIME:
            wrapped = [GNU_TIME, "-f", "%U %S %M", "-o", usage_file.name, *wrapped]
        out = open(stdout, "wb") if stdout else subprocess.DEVNULL  # noqa: SIM115
        try:
            started = time.perf_counter()
            proc = subprocess.Popen(
                wrapped,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            sampler = _TreeSampler(proc.pid, tree_marker) if sample_tree else None
            if sampler:
                sampler.start()
            try:
                proc.wait(timeout=deadline)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)
                proc.wait(timeout=30)
            seconds = time.perf_counter() - started
            tree = sampler.stop() if sampler else None
        finally:
            if stdout:
                out.close()  # type: ignore[union-attr]
        cpu, rss = _usage(Path(usage_file.name)) if GNU_TIME else (0.0, None)
    if check and proc.returncode != 0:
        tail = _tail(stdout) if stdout else ""
        why = "overran its deadline" if seconds >= deadline else f"exited {proc.returncode}"
        raise RunFailed(f"{' '.join(argv[:4])} ... {why}:\n{tail}")
    return Sample(seconds=seconds, cpu_seconds=cpu, max_rss_kib=rss, tree_rss_kib=tree)


def _usage(path: Path) -> tuple[float, int | None]:
    """User + system seconds and peak RSS (KiB) from GNU time's output file."""
    try:
        last = path.read_text().strip().splitlines()[-1].split()
        return float(last[0]) + float(last[1]), int(last[2])
    except (OSError, IndexError, ValueError):
        return 0.0, None  # killed before time could write


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


class _TreeSampler:
    """Samples the summed RSS of a process tree from ``/proc`` until stopped."""

    INTERVAL = 0.05
    MAX_SAMPLES = 12_000  # ten minutes at the interval: the loop is bounded

    def __init__(self, root: int, marker: str | None) -> None:
        self.root = root
        self.marker = marker.encode() if marker else None
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.peak

    def _loop(self) -> None:
        for _ in range(self.MAX_SAMPLES):
            self.peak = max(self.peak, tree_rss_kib(self.root, self.marker))
            if self._stop.wait(self.INTERVAL):
                return


def tree_rss_kib(root: int, marker: bytes | None = None) -> int:
    """The summed RSS (KiB) of ``root``, its descendants and processes marked by ``marker``."""
    parent: dict[int, int] = {}
    rss: dict[int, int] = {}
    marked: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                stat = fh.read()
            with open(f"/proc/{pid}/statm", "rb") as fh:
                resident = int(fh.read().split()[1])
            if marker is not None:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    if marker in fh.read():
                        marked.add(pid)
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
        # stat is "pid (comm) state ppid ...": comm may hold spaces, so split after ")".
        fields = stat[stat.rfind(b")") + 2 :].split()
        parent[pid] = int(fields[1])
        rss[pid] = resident * _PAGE_KIB
    total = 0
    for pid, kib in rss.items():
        if pid == root and GNU_TIME:
            continue  # the GNU time wrapper is ours, not the controller's
        if pid in marked or _descends(pid, root, parent):
            total += kib
    return total


def _descends(pid: int, root: int, parent: Mapping[int, int]) -> bool:
    for _ in range(64):  # process trees here are shallow; the bound guards against cycles
        if pid == root:
            return True
        up = parent.get(pid)
        if up is None or up <= 1:
            return False
        pid = up
    return False
