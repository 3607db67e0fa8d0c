"""A real bastion for end-to-end tests: its own sshd, as its own user, and a firewall rule
that makes the lab hosts' sshd ports reachable only from that user's processes.

The rule lives in an nftables table of its own (``inet rollout_bastion_<pid>``), rejects with
a TCP reset (a direct attempt fails at once rather than timing out) and matches the sending
socket's owner (``meta skuid``), so only the bastion's sshd, which runs as the bastion user,
reaches the hosts. Everything is torn down by the context managers, by pid.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rollout_lab import Lab, procs, sshd
from rollout_lab.account import LabUser, chown_tree, ensure_user, run_as
from rollout_lab.testing import lab_dir

BASTION_USER = "rollout-bastion"


@dataclass(frozen=True)
class Bastion:
    user: str
    port: int
    host_key_line: str  # known_hosts line for [127.0.0.1]:port
    root: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
AddressFamily inet
HostKey "{host_key}"
PidFile "{pid_file}"
AuthorizedKeysFile "{authorized_keys}"
AllowUsers {user}
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org
UseDNS no
AllowTcpForwarding yes
PermitOpen any
X11Forwarding no
AllowAgentForwarding no
LogLevel INFO
"""


@contextlib.contextmanager
def running_bastion(lab: Lab) -> Iterator[Bastion]:
    """An sshd on a free loopback port as ``rollout-bastion``, accepting the lab's client key."""
    user: LabUser = ensure_user(BASTION_USER)
    root = lab_dir("rollout-bastion-")
    port = _free_port()
    host_key = root / "host_key"
    sshd.keygen(host_key, "bastion")
    authorized = root / "authorized_keys"
    shutil.copy(lab.key_file.with_suffix(".pub"), authorized)
    config = root / "sshd_config"
    pid_file = root / "sshd.pid"
    config.write_text(
        _CONFIG.format(
            port=port, host_key=host_key, pid_file=pid_file, authorized_keys=authorized,
            user=user.name,
        )
    )  # fmt: skip
    chown_tree(root, user)
    host_key.chmod(0o600)
    ran = run_as(user, [sshd.SSHD, "-f", str(config), "-E", str(root / "sshd.log")], timeout=10)
    assert ran.returncode == 0, ran.stderr
    pid = None
    try:
        deadline = time.monotonic() + 10
        while not (pid_file.exists() and procs.port_accepting(port)):
            assert time.monotonic() < deadline, (root / "sshd.log").read_text()
            time.sleep(0.05)
        pid = int(pid_file.read_text().split()[0])
        line = f"[127.0.0.1]:{port} {sshd.public_key(host_key)}\n"
        yield Bastion(user.name, port, line, root)
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def only_through(bastion: Bastion, ports: list[int]) -> Iterator[None]:
    """Reject every loopback connection to ``ports`` not made by the bastion's user."""
    nft = shutil.which("nft") or "nft"
    table = f"rollout_bastion_{os.getpid()}"
    uid = LabUser.lookup(bastion.user)
    assert uid is not None
    listed = ", ".join(str(int(p)) for p in ports)
    script = (
        f"add table inet {table}\n"
        f"add chain inet {table} out {{ type filter hook output priority 0; }}\n"
        f"add rule inet {table} out ip daddr 127.0.0.1 tcp dport {{ {listed} }} "
        f"meta skuid != {uid.uid} reject with tcp reset\n"
    )
    subprocess.run([nft, "-f", "-"], input=script, text=True, check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run([nft, "delete", "table", "inet", table], check=False, capture_output=True)
