"""What a lab is: its hosts, where their files live, and how each one is doing.

These are the types other modules and tests code against. A lab lives in one directory::

    <root>/
      state.json            pids, start times and ports of what the lab started
      client_ed25519[.pub]  the key clients log in with (OpenSSH format)
      known_hosts           "[127.0.0.1]:PORT ssh-ed25519 ..." for every host
      authorized_keys       the client key, read by every sshd
      epmd.log
      hosts/hN/
        sshd_config  ssh_host_ed25519_key[.pub]  sshd.pid  sshd.log
        release/            a copy of the Foundation release (bin/foundation, node.env)
        tmp/                RELEASE_TMP: the node's pipe and log/erlang.log.*
        node.pid            the node's OS pid, kept current by start/restart
        restart.sh          stop, start, wait until the console answers
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NODE_PREFIX = "foundation_"
NODE_HOST = "127.0.0.1"


def node_name(host: str) -> str:
    """The Erlang node name of lab host ``host``: ``foundation_h1@127.0.0.1``."""
    return f"{NODE_PREFIX}{host}@{NODE_HOST}"


@dataclass(frozen=True)
class LabHost:
    """One lab host: an sshd on 127.0.0.1:port in front of its own Foundation release."""

    name: str
    port: int
    root: Path
    release_bin: Path
    node: str
    restart_script: Path
    with_release: bool = True

    @property
    def paths(self) -> HostPaths:
        return HostPaths(self.root)

    @property
    def lab_root(self) -> Path:
        """The directory of the lab this host belongs to."""
        return self.root.parent.parent


@dataclass(frozen=True)
class Lab:
    """A running (or recorded) lab: how to log in, and its hosts in order."""

    root: Path
    user: str
    key_file: Path
    known_hosts: Path
    inventory: Path
    hosts: tuple[LabHost, ...]

    def host(self, name: str) -> LabHost:
        """The host called ``name``."""
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)


@dataclass(frozen=True)
class HostStatus:
    """How one host is doing: sshd, node and console, as :func:`rollout_lab.status` saw them."""

    name: str
    port: int
    with_release: bool
    sshd_pid: int | None
    sshd_alive: bool
    port_open: bool
    node_pid: int | None
    node_alive: bool
    console_ok: bool
    console_seconds: float | None
    detail: str = ""

    @property
    def ok(self) -> bool:
        """Whether the host is fully usable (SSH and, if it has a release, its console)."""
        ssh = self.sshd_alive and self.port_open
        return ssh and (not self.with_release or (self.node_alive and self.console_ok))


@dataclass(frozen=True)
class LabPaths:
    """Where the lab-wide files live."""

    root: Path

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def client_key(self) -> Path:
        return self.root / "client_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def authorized_keys(self) -> Path:
        return self.root / "authorized_keys"

    @property
    def epmd_log(self) -> Path:
        return self.root / "epmd.log"

    def host(self, name: str) -> HostPaths:
        return HostPaths(self.root / "hosts" / name)


@dataclass(frozen=True)
class HostPaths:
    """Where one host's files live."""

    root: Path

    @property
    def sshd_config(self) -> Path:
        return self.root / "sshd_config"

    @property
    def host_key(self) -> Path:
        return self.root / "ssh_host_ed25519_key"

    @property
    def sshd_pid(self) -> Path:
        return self.root / "sshd.pid"

    @property
    def sshd_log(self) -> Path:
        return self.root / "sshd.log"

    @property
    def release(self) -> Path:
        return self.root / "release"

    @property
    def release_bin(self) -> Path:
        return self.release / "bin" / "foundation"

    @property
    def node_env(self) -> Path:
        return self.release / "node.env"

    @property
    def cookie(self) -> Path:
        return self.release / "releases" / "COOKIE"

    @property
    def build_id(self) -> Path:
        return self.release / ".build-id"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def log_dir(self) -> Path:
        return self.tmp / "log"

    @property
    def node_pid(self) -> Path:
        return self.root / "node.pid"

    @property
    def restart_script(self) -> Path:
        return self.root / "restart.sh"
