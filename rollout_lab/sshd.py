"""One OpenSSH server per lab host, run as the lab user on 127.0.0.1.

Each host has its own ed25519 host key, config, pid file and log. sshd daemonizes itself and
writes its pid file; the lab records that pid with its start time.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from . import procs
from .account import LabUser, run_as, which
from .errors import LabError
from .model import HostPaths
from .procs import ProcessRef
from .render import render

SSHD = "/usr/sbin/sshd"


def keygen(path: Path, comment: str) -> None:
    """Create an OpenSSH ed25519 key pair at ``path`` (and ``.pub``) unless it exists."""
    if path.is_file() and path.with_suffix(".pub").is_file():
        return
    path.unlink(missing_ok=True)
    path.with_suffix(".pub").unlink(missing_ok=True)
    proc = subprocess.run(
        [
            which("ssh-keygen") or "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            comment,
            "-f",
            str(path),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise LabError(
            f"ssh-keygen failed for {path}: {proc.stderr.strip()}",
            hint="check that openssh-client is installed and the lab dir is writable",
        )


def public_key(path: Path) -> str:
    """``ssh-ed25519 AAAA...`` (without comment) from the ``.pub`` next to ``path``."""
    kind, blob, *_ = path.with_suffix(".pub").read_text().split()
    return f"{kind} {blob}"


def write_config(
    paths: HostPaths, *, name: str, port: int, user: LabUser, authorized_keys: Path
) -> bool:
    """Write the host's ``sshd_config``; return whether its content changed."""
    text = render(
        "sshd_config.j2",
        name=name,
        port=port,
        user=user.name,
        host_key=paths.host_key,
        pid_file=paths.sshd_pid,
        authorized_keys=authorized_keys,
    )
    try:
        if paths.sshd_config.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    paths.sshd_config.write_text(text)
    return True


def reload(ref: ProcessRef, port: int, timeout: float = 10.0) -> None:
    """Make a running sshd re-read its config (SIGHUP: it re-executes itself, same pid)."""
    if not procs.send(ref, signal.SIGHUP):
        return
    deadline = time.monotonic() + timeout
    time.sleep(0.1)
    while not procs.port_accepting(port):
        if time.monotonic() >= deadline:
            raise LabError(
                f"sshd pid {ref.pid} stopped accepting on {port} after a reload",
                hint="see its sshd.log, then run `invoke lab.up` again",
            )
        time.sleep(0.05)


def markers(paths: HostPaths) -> tuple[str, ...]:
    """What the command line of this host's sshd carries (its config path)."""
    return (f"-f {paths.sshd_config} ",)


def running(paths: HostPaths, recorded: ProcessRef | None, user: LabUser) -> ProcessRef | None:
    """The host's sshd if it runs: the recorded process, else the one in its pid file."""
    if recorded is not None and procs.is_running(recorded):
        return recorded
    pid = procs.read_pid_file(paths.sshd_pid)
    return procs.identify(pid, markers(paths), user.uid) if pid else None


def start(paths: HostPaths, port: int, user: LabUser, timeout: float = 10.0) -> ProcessRef:
    """Start the host's sshd and wait until it accepts connections on ``port``."""
    paths.sshd_pid.unlink(missing_ok=True)
    proc = run_as(
        user,
        [SSHD, "-f", str(paths.sshd_config), "-E", str(paths.sshd_log)],
        cwd=paths.root,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise LabError(
            f"sshd for {paths.root.name} did not start: {proc.stderr.strip()}",
            hint=f"see {paths.sshd_log}",
        )
    deadline = time.monotonic() + timeout
    while True:
        pid = procs.read_pid_file(paths.sshd_pid)
        ref = procs.identify(pid, markers(paths), user.uid) if pid else None
        if ref is not None and procs.port_accepting(port):
            return ref
        if time.monotonic() >= deadline:
            tail = _tail(paths.sshd_log)
            raise LabError(
                f"sshd for {paths.root.name} is not accepting on 127.0.0.1:{port} "
                f"after {timeout:.0f}s:\n{tail}",
                hint=f"see {paths.sshd_log}; is the port taken?",
            )
        time.sleep(0.05)


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
