"""Fault injection for lab hosts: a partitionable TCP proxy, firewall drops, frozen sshds.

Three tools, each undone by the test that uses it (every one is a context manager):

* :class:`Proxy` listens on 127.0.0.1 and forwards to one lab host's sshd. It can add delay,
  **blackhole** (keep every connection open and accept new ones, but move no byte either way,
  like a partition: bytes sent meanwhile wait in the kernel and arrive once it :meth:`heals`),
  blackhole after N more bytes, or **sever** (reset every connection). A host is reached
  through it by an inventory whose ``ansible_port`` is the proxy's (:func:`write_inventory`).
* :class:`Firewall` drops a port's loopback traffic with nftables, in a dedicated table
  (``inet rollout_fault``) that it deletes on exit. Needs root and nf_tables
  (:func:`nft_available`).
* :func:`freeze_sshd`, :func:`thaw_sshd` and :func:`kill_sshd` act on a host's whole sshd
  (the listener and the per-connection sshd processes): stopping only the listener would
  leave open sessions answering.

Only 127.0.0.1 and the lab's own processes are ever touched::

    with Proxy(host.port) as proxy:
        inventory = write_inventory(lab, tmp / "inv.yml", ports={host.name: proxy.port})
        ...                 # start a run against ``inventory``
        proxy.blackhole()   # the host drops off the network, mid-command
        proxy.heal()
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import yaml

from rollout_lab import control, procs
from rollout_lab.errors import LabError
from rollout_lab.inventory import inventory_text
from rollout_lab.model import Lab, LabHost

_CHUNK = 65536
_POLL = 0.1  # seconds a pump waits before it looks at the proxy's mode again


class _Link:
    """One client connection through the proxy and its upstream connection (once made)."""

    def __init__(self, client: socket.socket) -> None:
        self.client = client
        self.upstream: socket.socket | None = None
        self.closed = False
        # bytes read from one side and not yet written to the other, per direction
        self.held: dict[str, bytes] = {"up": b"", "down": b""}
        self.eof: dict[str, bool] = {"up": False, "down": False}

    def sockets(self) -> list[socket.socket]:
        return [s for s in (self.client, self.upstream) if s is not None]

    def reset(self) -> None:
        """Close both sides with an RST (SO_LINGER 0), as a dropped connection looks."""
        self.closed = True
        for sock in self.sockets():
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        self.closed = True
        for sock in self.sockets():
            with contextlib.suppress(OSError):
                sock.close()


@dataclass
class _Trap:
    """What :meth:`Proxy.arm` waits for, and what it then does."""

    min_bytes: int
    way: str
    delay: float | None
    then: Callable[[], object]
    primed: bool = False  # the request went out; fire before the answer comes back


class Proxy:
    """A TCP proxy from 127.0.0.1:``port`` to ``target_host:target_port`` that can partition.

    ``blackhole()`` stops forwarding at once, on open connections and new ones (which are
    accepted, as a half-dead host's kernel would, but never reach the target); ``up=False``
    or ``down=False`` keeps one direction flowing. ``heal()`` resumes with nothing lost.
    ``blackhole_after(n)`` forwards ``n`` more bytes (counted one way, or both), then goes
    dark both ways. ``sever()`` resets every open connection. ``trace`` records every chunk
    forwarded as ``(monotonic time, "up" | "down", bytes)``; "up" is client -> target.
    """

    def __init__(self, target_port: int, *, target_host: str = "127.0.0.1", delay: float = 0.0):
        self.target = (target_host, target_port)
        self._delay = delay
        self._lock = threading.Lock()
        self._open = {"up": True, "down": True}
        self._budget: int | None = None
        self._budget_way = "both"
        self._links: list[_Link] = []
        self._closed = False
        self._armed: _Trap | None = None
        self.accepted = 0
        self.trace: list[tuple[float, str, int]] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name=f"proxy:{self.port}", daemon=True)
        self._thread.start()

    # -- controls ----------------------------------------------------------------------------

    def forwarded(self, way: str) -> int:
        """Bytes forwarded so far one way ("up": client -> target, or "down")."""
        with self._lock:
            return sum(n for _t, w, n in self.trace if w == way)

    def blackhole(self, *, up: bool = True, down: bool = True) -> None:
        """Stop forwarding now (both ways unless told), on every connection and new ones."""
        with self._lock:
            self._open = {"up": not up, "down": not down}
            self._budget = None

    def blackhole_after(self, nbytes: int, way: str = "both") -> None:
        """Forward ``nbytes`` more bytes (counted ``way``: "up", "down" or "both"), then go
        dark both ways, as a link does that fails in the middle of a stream."""
        if way not in ("up", "down", "both"):
            raise ValueError(f"way must be up, down or both, not {way!r}")
        with self._lock:
            self._open = {"up": True, "down": True}
            self._budget, self._budget_way = max(0, nbytes), way
            if nbytes <= 0:
                self._open = {"up": False, "down": False}
                self._budget = None

    def arm(
        self,
        min_bytes: int,
        then: Callable[[], object],
        *,
        way: str = "up",
        delay: float | None = None,
    ) -> None:
        """Call ``then`` (e.g. :meth:`blackhole` or :meth:`sever`) once the next chunk of at
        least ``min_bytes`` has gone ``way``: just before the first chunk comes back the other
        way (that chunk is then held or lost), or ``delay`` seconds later if given.

        With SSH, ``arm(1000, proxy.blackhole)`` partitions the link after a command's stdin
        reached the host and before its answer reaches the client: the command runs, and its
        outcome is unknown to the client.
        """
        with self._lock:
            self._armed = _Trap(min_bytes, way, delay, then)

    def heal(self) -> None:
        """Forward again, both ways; what the sides sent meanwhile is delivered, in order."""
        with self._lock:
            self._open = {"up": True, "down": True}
            self._budget = None

    def set_delay(self, seconds: float) -> None:
        """Hold every chunk ``seconds`` before forwarding it (0 for none)."""
        with self._lock:
            self._delay = max(0.0, seconds)

    def sever(self) -> int:
        """Reset every open connection (RST to both sides); return how many were cut."""
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            link.reset()
        return len(links)

    def close(self) -> None:
        """Stop listening and close every connection."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            link.close()
        self._thread.join(timeout=2)

    def __enter__(self) -> Proxy:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()

    # -- the work ----------------------------------------------------------------------------

    def _accept(self) -> None:
        self._listener.settimeout(_POLL)  # so that close() is noticed promptly
        while not self._closed:
            try:
                client, _addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(client)
            with self._lock:
                self.accepted += 1
                self._links.append(link)
            threading.Thread(
                target=self._pump, args=(link,), name=f"proxy:{self.port}:link", daemon=True
            ).start()

    def _is_open(self, way: str) -> bool:
        with self._lock:
            return self._open[way]

    def _allowance(self, way: str, wanted: int) -> int:
        """How many of ``wanted`` bytes may go ``way`` now (0 while that way is dark)."""
        with self._lock:
            if not self._open[way]:
                return 0
            if self._budget is None or self._budget_way not in (way, "both"):
                return wanted
            allowed = min(wanted, self._budget)
            self._budget -= allowed
            if self._budget <= 0:
                self._open = {"up": False, "down": False}
                self._budget = None
            return allowed

    def _pump(self, link: _Link) -> None:
        try:
            self._run_link(link)
        except (OSError, ValueError):
            pass  # a severed or closed link
        finally:
            link.close()
            with self._lock:
                if link in self._links:
                    self._links.remove(link)

    def _run_link(self, link: _Link) -> None:
        while not link.closed and not self._closed:
            if link.upstream is None:  # a new connection reaches the target only when it may
                if not self._is_open("up"):
                    time.sleep(_POLL)
                    continue
                link.upstream = socket.create_connection(self.target, timeout=10)
                link.upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pairs = {"up": (link.client, link.upstream), "down": (link.upstream, link.client)}
            for way, (_src, dst) in pairs.items():
                if link.held[way]:
                    self._forward(link, way, dst)
            # read only where nothing is held: a dark direction leaves bytes in the kernel
            readable = [
                src
                for way, (src, _dst) in pairs.items()
                if not link.eof[way] and not link.held[way] and self._is_open(way)
            ]
            if all(link.eof.values()) and not any(link.held.values()):
                return  # both sides finished
            if not readable:
                time.sleep(_POLL)
                continue
            ready, _, _ = select.select(readable, [], [], _POLL)
            for way, (src, dst) in pairs.items():
                if src not in ready:
                    continue
                data = src.recv(_CHUNK)
                if not data:
                    link.eof[way] = True
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    continue
                link.held[way] = data
                self._forward(link, way, dst)

    def _forward(self, link: _Link, way: str, dst: socket.socket) -> None:
        """Send what ``way`` holds, as far as the proxy's mode allows."""
        self._spring(way)
        data = link.held[way]
        allowed = self._allowance(way, len(data))
        if allowed <= 0:
            return
        with self._lock:
            delay = self._delay
        if delay:
            time.sleep(delay)
        dst.sendall(data[:allowed])
        link.held[way] = data[allowed:]
        with self._lock:
            self.trace.append((time.monotonic(), way, allowed))
            trap = self._armed
            request = trap is not None and not trap.primed and trap.way == way
            if trap is not None and request and allowed >= trap.min_bytes:
                trap.primed = True
                if trap.delay is not None:
                    self._armed = None
                    timer = threading.Timer(trap.delay, trap.then)
                    timer.daemon = True
                    timer.start()

    def _spring(self, way: str) -> None:
        """Fire a primed trap before the first chunk that goes back the other way."""
        with self._lock:
            trap = self._armed
            if trap is None or not trap.primed or trap.way == way:
                return
            self._armed = None
        trap.then()


# -- inventories through a proxy -------------------------------------------------------------


def write_inventory(
    lab: Lab,
    dest: Path,
    *,
    hosts: Sequence[str] | None = None,
    ports: Mapping[str, int] | None = None,
    host_vars: Mapping[str, Mapping[str, object]] | None = None,
    known_hosts: Path | None = None,
    fleet: str | None = None,
) -> Path:
    """Write an inventory of ``lab`` at ``dest`` (and its known_hosts beside it).

    ``hosts`` picks and orders hosts (default: all); ``ports`` sends a host to another port
    (a :class:`Proxy`'s), with its real key pinned for that port; ``host_vars`` adds or
    replaces variables of a host. ``known_hosts`` overrides the file the inventory names
    (for host-key scenarios); by default ``<dest>.known_hosts`` is written. ``fleet`` sets
    ``rollout_fleet`` (the ledger key; default: derived from ``dest``'s path).
    """
    names = list(hosts) if hosts is not None else [h.name for h in lab.hosts]
    ports = dict(ports or {})
    data = yaml.safe_load(inventory_text(lab))
    all_hosts: dict[str, dict[str, object]] = data["all"]["children"]["foundation"]["hosts"]
    for name in list(all_hosts):
        if name not in names:
            del all_hosts[name]
    keys = _host_keys(lab)
    lines = []
    for name in names:
        host = lab.host(name)
        port = ports.get(name, host.port)
        entry = all_hosts[name]
        entry["ansible_port"] = port
        entry.update((host_vars or {}).get(name, {}))
        lines.append(f"[127.0.0.1]:{port} {keys[host.port]}\n")
    data["all"]["children"]["foundation"]["hosts"] = {n: all_hosts[n] for n in names}
    pinned = dest.with_name(dest.stem + ".known_hosts")
    if known_hosts is None:
        pinned.write_text("".join(lines))
    data["all"]["vars"]["known_hosts_file"] = str(known_hosts or pinned)
    if fleet is not None:
        data["all"]["vars"]["rollout_fleet"] = fleet
    dest.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1 << 16))
    return dest


def _host_keys(lab: Lab) -> dict[int, str]:
    """Port -> ``keytype base64`` from the lab's known_hosts."""
    keys: dict[int, str] = {}
    for line in lab.known_hosts.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].startswith("[127.0.0.1]:"):
            keys[int(parts[0].rsplit(":", 1)[1])] = f"{parts[1]} {parts[2]}"
    return keys


def cookie(host: LabHost) -> str:
    """The Erlang cookie of ``host``'s release (its ``releases/COOKIE``)."""
    path = host.release_bin.parent.parent / "releases" / "COOKIE"
    return path.read_text().strip()


# -- nftables --------------------------------------------------------------------------------

TABLE = "rollout_fault"


def nft_available() -> bool:
    """Whether nftables rules can be added here (the ``nft`` tool, root, nf_tables)."""
    nft = shutil.which("nft")
    if nft is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(
        [nft, "list", "tables"], capture_output=True, text=True, timeout=10, check=False
    )
    return probe.returncode == 0


class Firewall:
    """Drop rules on loopback ports, in the nftables table ``inet rollout_fault``.

    Each firewall owns one chain in that table (``out_<pid>_<n>``): parallel test processes
    never touch each other's rules. On exit the chain goes, and the table with it once no
    chain is left; chains of dead processes are removed on entry. A dropped port behaves like
    a partitioned host: new connections time out (no refusal) and open ones stall.
    """

    _count = 0

    def __init__(self) -> None:
        nft = shutil.which("nft")
        if nft is None:
            raise LabError("nft is not installed", hint="apt-get install nftables")
        self._nft = nft
        Firewall._count += 1
        self.chain = f"out_{os.getpid()}_{Firewall._count}"
        self.ports: list[int] = []

    def _run(self, *args: str, script: str | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            [self._nft, *(args or ("-f", "-"))],
            input=script,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if check and proc.returncode != 0:
            raise LabError(f"nft failed: {proc.stderr.strip()}", hint="run as root")
        return proc.stdout if proc.returncode == 0 else ""

    @contextlib.contextmanager
    def _table_lock(self) -> Iterator[None]:
        """Serialise table set-up and tear-down between processes."""
        with open(f"/tmp/.{TABLE}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _chains(self) -> list[str]:
        listing = self._run("list", "table", "inet", TABLE, check=False)
        lines = (line.strip() for line in listing.splitlines())
        return [line.split()[1] for line in lines if line.startswith("chain ")]

    def __enter__(self) -> Firewall:
        with self._table_lock():
            self._run(script=f"add table inet {TABLE}\n")
            for chain in self._chains():
                parts = chain.split("_")
                pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
                if pid is not None and pid != os.getpid() and not procs.is_alive(pid):
                    self._run("delete", "chain", "inet", TABLE, chain, check=False)
            self._run(
                script=f"add chain inet {TABLE} {self.chain} "
                "{ type filter hook output priority 0; }\n"
            )
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        with self._table_lock():
            self._run("delete", "chain", "inet", TABLE, self.chain, check=False)
            if not self._chains():
                self._run("delete", "table", "inet", TABLE, check=False)

    def drop(self, port: int) -> None:
        """Drop every loopback packet to or from TCP ``port`` (both directions)."""
        self._run(
            script=f"add rule inet {TABLE} {self.chain} ip daddr 127.0.0.1 tcp dport "
            f"{int(port)} drop\n"
            f"add rule inet {TABLE} {self.chain} ip saddr 127.0.0.1 tcp sport {int(port)} drop\n"
        )
        self.ports.append(port)

    def clear(self) -> None:
        """Remove this firewall's rules (its chain stays until exit)."""
        self._run(script=f"flush chain inet {TABLE} {self.chain}\n")
        self.ports.clear()


# -- sshd process trees ----------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = procs.parent_pid(int(entry.name))
            if parent is not None:
                tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def sshd_processes(host: LabHost) -> list[int]:
    """The pids of ``host``'s sshd listener and every sshd process below it (its sessions)."""
    listener = control.sshd_pid(host)
    if listener is None:
        return []
    tree = _children()
    found, todo = [listener], [listener]
    while todo:
        for child in tree.get(todo.pop(), []):
            todo.append(child)
            if _comm(child).startswith("sshd"):
                found.append(child)
    return found


def _signal_all(pids: Sequence[int], sig: int) -> list[int]:
    sent = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
            sent.append(pid)
    return sent


def freeze_sshd(host: LabHost) -> list[int]:
    """SIGSTOP ``host``'s sshd and its open sessions: connected clients hear nothing more,
    new ones get a TCP connection but no banner. Returns the frozen pids."""
    pids = sshd_processes(host)
    if not pids:
        raise LabError(f"{host.name}: sshd is not running", hint="start it with start_sshd")
    return _signal_all(pids, signal.SIGSTOP)


def thaw_sshd(host: LabHost) -> list[int]:
    """SIGCONT ``host``'s sshd and its sessions (whatever :func:`freeze_sshd` stopped)."""
    return _signal_all(sshd_processes(host), signal.SIGCONT)


def kill_sshd(host: LabHost, timeout: float = 5.0) -> list[int]:
    """SIGKILL ``host``'s sshd and its sessions: open connections drop, new ones are refused.

    The commands those sessions ran are left alone, as on a real host. Bring sshd back with
    :func:`rollout_lab.control.start_sshd`.
    """
    pids = sshd_processes(host)
    killed = _signal_all(pids, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(procs.is_alive(p) for p in killed) and time.monotonic() < deadline:
        time.sleep(0.05)
    return killed


@contextlib.contextmanager
def frozen_node(host: LabHost) -> Iterator[None]:
    """The host's node stopped (SIGSTOP) for the block, then continued."""
    control.signal_node(host, signal.SIGSTOP)
    try:
        yield
    finally:
        control.signal_node(host, signal.SIGCONT)
