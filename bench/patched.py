"""An experiment: the tool's CLI with a proposed transport change applied in-process.

``python -m bench.patched TASK [ARGS...]`` runs the tasks as ``invoke`` does, after patching
:mod:`rollout.transport.ssh` so that the change can be measured side by side with the tool as
it is, without editing the transport (whose owner decides). ``BENCH_PATCH`` picks patches,
comma-separated (default ``known_hosts``):

``known_hosts``
    Today every connection parses the whole known_hosts file and copies every entry into its
    paramiko client, and paramiko's ``HostKeys.add`` scans its entries linearly: O(N^2) work
    per connection, O(N^3) per run, all under the GIL (~1.8 s of CPU at N=100). The patch
    parses each file once per run (re-read when its mtime changes) and gives each client only
    the entries for the name paramiko will look up (``[address]:port``, or ``address`` on
    port 22). Verification is unchanged: a host whose key is missing or different still
    reaches the same policy and fails the same way. A no-op once the transport has the
    change itself (``SSHTransport._host_keys``).
``workers=K``
    The fleet's thread pool bound (``rollout.fleet.MAX_WORKERS``, 64) set to K.
``switch=S``
    ``sys.setswitchinterval(S)`` (CPython's default is 0.005 s). A probe for a lock convoy:
    each ledger write takes the ledger's mutex, then needs the GIL back from up to two threads
    per host, so the writes queue up behind GIL hand-offs.
``no_event_rows``
    An upper bound, not a proposal: the executor's events go to the terminal but are not
    journaled in the ledger (intents and outcomes still are). Shows what the per-event
    transactions cost.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import paramiko

from rollout import fleet
from rollout.events import Kind
from rollout.models import Host
from rollout.transport import hostkeys, ssh


def patch_known_hosts() -> None:
    if hasattr(ssh.SSHTransport, "_host_keys"):
        return  # the transport has this change already: the patch would break its cache
    original_load = hostkeys.load_known_hosts
    original_connect = ssh.SSHTransport.connect
    cache: dict[tuple[str, int], paramiko.HostKeys] = {}
    lock = threading.Lock()
    local = threading.local()

    def lookup_name(host: Host) -> str:
        return host.address if host.port == 22 else f"[{host.address}]:{host.port}"

    def load_for_host(path: Path) -> paramiko.HostKeys:
        with lock:
            key = (str(path), path.stat().st_mtime_ns) if path.exists() else (str(path), -1)
            if key not in cache:
                cache[key] = original_load(path)
            everything = cache[key]
        host: Host | None = getattr(local, "host", None)
        if host is None:
            return everything
        mine = paramiko.HostKeys()
        name = lookup_name(host)
        for keytype, pkey in (everything.lookup(name) or {}).items():
            mine.add(name, keytype, pkey)
        return mine

    def connect(self: ssh.SSHTransport, host: Host) -> ssh.SSHSession:
        local.host = host
        try:
            return original_connect(self, host)
        finally:
            local.host = None

    ssh.load_known_hosts = load_for_host  # type: ignore[attr-defined]  # what connect() calls
    ssh.SSHTransport.connect = connect  # type: ignore[method-assign]


def patch_workers(workers: int) -> None:
    fleet.MAX_WORKERS = workers
    fleet.run_parallel.__defaults__ = (workers,)


def patch_no_event_rows() -> None:
    from rollout.events import Event
    from rollout.executor import Executor

    def emit(self: Executor, kind: Kind, message: str, *, host: str | None = None,
             ok: bool | None = None, **data: object) -> None:  # fmt: skip
        self.emit_raw(Event(kind, message, host=host, ok=ok, data=data, ts=self.clock.wall()))

    Executor.emit = emit  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    for item in filter(None, os.environ.get("BENCH_PATCH", "known_hosts").split(",")):
        name, _, value = item.partition("=")
        if name == "known_hosts":
            patch_known_hosts()
        elif name == "workers":
            patch_workers(int(value))
        elif name == "switch":
            sys.setswitchinterval(float(value))
        elif name == "no_event_rows":
            patch_no_event_rows()
        else:
            print(f"bench.patched: unknown patch {item!r}", file=sys.stderr)
            return 2
    from invoke.main import program

    try:
        program.run(["invoke", *argv], exit=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
