"""A command check's local runner: an argv in a directory, without a shell, with a deadline.

:func:`run_local` is the real :data:`LocalRunner` (the seam tests replace): it runs the argv in
its own process group, so a timeout kills what it spawned too (``mix`` -> ``erl``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Default deadline of a local command check (host commands default to policy.command_timeout).
LOCAL_TIMEOUT = 600.0


@dataclass(frozen=True)
class LocalResult:
    """A local command's outcome; ``exit_status`` is None when it did not finish or start."""

    exit_status: int | None
    output: str  # stdout and stderr, interleaved, decoded
    timed_out: bool = False
    error: str | None = None  # why it could not start (not found, not executable)


#: Runs ``argv`` in ``cwd`` with a deadline in seconds, without a shell.
LocalRunner = Callable[[Sequence[str], Path, float], LocalResult]


def run_local(argv: Sequence[str], cwd: Path, timeout: float) -> LocalResult:
    """Run ``argv`` in its own process group; on timeout the whole group is killed."""
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a timeout also reaches what it spawned (mix -> erl)
        )
    except FileNotFoundError:
        return LocalResult(None, "", error=f"{argv[0]}: command not found")
    except PermissionError:
        return LocalResult(None, "", error=f"{argv[0]}: permission denied")
    except OSError as exc:
        return LocalResult(None, "", error=f"{argv[0]}: {exc.strerror or exc}")
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        try:
            out, _ = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # a grandchild left the group and holds the pipe
            out = b""
        return LocalResult(None, out.decode("utf-8", "replace"), timed_out=True)
    return LocalResult(proc.returncode, out.decode("utf-8", "replace"))


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended between the timeout and now
        os.killpg(pid, signal.SIGKILL)
