"""The Foundation nodes of the lab, and the epmd they register with.

Each lab has its own epmd on 127.0.0.1 (its port is written into every copy's ``node.env``),
so two labs on one machine never share, or kill, each other's name server. A node starts
with ``bin/foundation daemon``, which exits 0 even when the boot fails; it counts as up only
once its console answers an ``rpc``. Stopping is SIGTERM to the node's pid (the BEAM shuts
down cleanly on it), then waiting for the pid, run_erl and its pipe to go.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import time
from pathlib import Path

from . import procs
from .account import LabUser, chown_tree, run_as, spawn_as, which
from .errors import LabError
from .model import HostPaths
from .procs import ProcessRef

#: Prints the node's OS pid, and fails unless the app's processes are up.
READY_EXPR = "true = is_pid(Process.whereis(Foundation.Deployment.Monitor)); IO.puts(System.pid())"


# -- epmd ------------------------------------------------------------------------------------


def epmd_markers(port: int) -> tuple[str, ...]:
    return ("epmd ", f"-port {port} ")


def start_epmd(user: LabUser, port: int, log: Path) -> ProcessRef:
    """Start the lab's own epmd on 127.0.0.1:``port`` and wait until it answers."""
    epmd = which("epmd")
    if epmd is None:
        raise LabError("epmd is not installed", hint="apt-get install erlang-base")
    pid = spawn_as(user, [epmd, "-address", "127.0.0.1", "-port", str(port)], log=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ref = procs.identify(pid, epmd_markers(port), user.uid)
        if ref is not None and epmd_names(port) is not None:
            return ref
        if not procs.is_alive(pid):
            break
        time.sleep(0.05)
    raise LabError(f"epmd did not start on 127.0.0.1:{port}", hint=f"see {log}")


def epmd_names(port: int, timeout: float = 1.0) -> dict[str, int] | None:
    """Node name -> distribution port registered with the epmd on ``port``; None if none."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">HB", 1, 110))  # NAMES_REQ
            chunks = []
            while chunk := sock.recv(4096):
                chunks.append(chunk)
    except OSError:
        return None
    data = b"".join(chunks)
    if len(data) < 4:
        return None
    names: dict[str, int] = {}
    for line in data[4:].decode(errors="replace").splitlines():
        parts = line.split()  # "name foundation_h1 at port 40321"
        if len(parts) == 5 and parts[0] == "name" and parts[4].isdigit():
            names[parts[1]] = int(parts[4])
    return names


# -- nodes -----------------------------------------------------------------------------------


def markers(paths: HostPaths, node: str) -> tuple[str, ...]:
    """What the node's command line carries: its name and its release root.

    ``rpc`` client VMs share the root but are named ``rpc-XXXX-<node>``, so both are needed.
    """
    return (f"-name {node} ", f"-root {paths.release} ")


def running(
    paths: HostPaths, node: str, recorded: ProcessRef | None, user: LabUser
) -> ProcessRef | None:
    """The host's node if it runs: recorded, from ``node.pid``, or found by its markers."""
    if recorded is not None and procs.is_running(recorded):
        return recorded
    pid = procs.read_pid_file(paths.node_pid)
    ref = procs.identify(pid, markers(paths, node), user.uid) if pid else None
    if ref is None:
        ref = next(procs.find(markers(paths, node), user.uid), None)
    return ref


def rpc(
    paths: HostPaths, user: LabUser, expr: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``bin/foundation rpc EXPR`` as the lab user (raises TimeoutExpired on timeout)."""
    return run_as(user, [str(paths.release_bin), "rpc", expr], cwd=paths.root, timeout=timeout)


def start(
    paths: HostPaths, node: str, user: LabUser, *, epmd_port: int, deadline: float = 30.0
) -> ProcessRef:
    """Start the host's node and wait until its console answers; return the node process."""
    short = node.split("@", 1)[0]
    names = epmd_names(epmd_port)
    if names is None:
        raise LabError(
            f"no epmd answers on 127.0.0.1:{epmd_port}", hint="run `invoke lab.up` to restart it"
        )
    if short in names:
        raise LabError(
            f"a node named {node} is already registered with the lab's epmd",
            hint="stop it first (`rollout_lab.stop_node`) or run `invoke lab.down`",
        )
    log_sizes = _log_sizes(paths)
    proc = run_as(user, [str(paths.release_bin), "daemon"], cwd=paths.root, timeout=30)
    if proc.returncode != 0:
        raise LabError(
            f"`{paths.release_bin} daemon` failed: {proc.stderr.strip()}",
            hint=f"see {paths.log_dir}",
        )
    started = time.monotonic()
    end = started + deadline
    seen: ProcessRef | None = None
    while True:
        now = time.monotonic()
        if now >= end:
            why = f"its console did not answer within {deadline:.0f}s"
            raise _boot_failure(paths, node, why, log_sizes)
        if seen is None or not procs.is_running(seen):
            seen = next(procs.find(markers(paths, node), user.uid), None)
        if seen is None and now - started > 1.0 and _run_erl(paths, user) is None:
            raise _boot_failure(paths, node, "the VM exited during boot", log_sizes)
        if seen is not None and short in (epmd_names(epmd_port) or {}):
            try:
                answer = rpc(paths, user, READY_EXPR, timeout=max(1.0, min(15.0, end - now)))
            except subprocess.TimeoutExpired:
                answer = None
            if answer is not None and answer.returncode == 0:
                pid = answer.stdout.strip().splitlines()[-1:]
                ref = (
                    procs.identify(int(pid[0]), markers(paths, node), user.uid)
                    if pid and pid[0].isdigit()
                    else None
                )
                if ref is None:
                    why = f"rpc answered {answer.stdout!r}"
                    raise _boot_failure(paths, node, why, log_sizes)
                paths.node_pid.write_text(f"{ref.pid}\n")
                chown_tree(paths.node_pid, user)
                return ref
        time.sleep(0.1)


def stop(
    paths: HostPaths, node: str, recorded: ProcessRef | None, user: LabUser, timeout: float = 15.0
) -> bool:
    """Stop the host's node (if it runs) and wait until it and its run_erl are gone."""
    ref = running(paths, node, recorded, user)
    helper = _run_erl(paths, user)
    gone = True
    if ref is not None:
        gone = procs.terminate(ref, timeout)
    if helper is not None and not procs.wait_gone(helper, 3.0):
        procs.terminate(helper, 3.0)
    paths.node_pid.unlink(missing_ok=True)
    return gone


def signal_node(
    paths: HostPaths, node: str, recorded: ProcessRef | None, user: LabUser, sig: int
) -> ProcessRef:
    """Send ``sig`` to the host's node; fail if it does not run."""
    ref = running(paths, node, recorded, user)
    if ref is None or not procs.send(ref, sig):
        raise LabError(f"{node} is not running", hint="start it with `rollout_lab.start_node`")
    return ref


def _run_erl(paths: HostPaths, user: LabUser) -> ProcessRef | None:
    """The run_erl that holds this node's pipe (``daemon`` mode), if any."""
    return next(procs.find((f"{paths.tmp}/pipe/",), user.uid), None)


def _log_sizes(paths: HostPaths) -> dict[Path, int]:
    return {p: p.stat().st_size for p in paths.log_dir.glob("erlang.log.*")}


def boot_log(paths: HostPaths, since: dict[Path, int] | None = None, lines: int = 24) -> str:
    """What the node logged since ``since`` (log sizes before the start), trimmed to ``lines``."""
    logs = sorted(paths.log_dir.glob("erlang.log.*"), key=lambda p: p.stat().st_mtime)
    if not logs:
        return f"(no log in {paths.log_dir})"
    newest = logs[-1]
    with newest.open("rb") as handle:
        handle.seek((since or {}).get(newest, 0))
        text = handle.read().decode(errors="replace")
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    if len(kept) > lines:
        half = lines // 2
        kept = [*kept[:half], "  ...", *kept[-half:]]
    return "\n".join(kept)


def _boot_failure(
    paths: HostPaths, node: str, why: str, since: dict[Path, int] | None = None
) -> LabError:
    return LabError(
        f"{node} did not come up: {why}. Its log says:\n{boot_log(paths, since)}",
        hint=f"read {paths.log_dir}, fix the cause, then run `invoke lab.up`",
    )
