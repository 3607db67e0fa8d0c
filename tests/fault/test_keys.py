"""Keys and known_hosts the way OpenSSH treats them: a passphrase-protected key through
ssh-agent or a passphrase from the environment, @revoked and @cert-authority lines, and the
system-wide known_hosts file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollout.errors import HostKeyError
from rollout.models import Host
from rollout.transport.ssh import PASSPHRASE_ENV, SSHTransport
from rollout_lab import Lab
from rollout_lab.testing import lab_fixture  # noqa: F401

from ..e2e.cli import CLI
from . import faults
from .helpers import fault_playbook, phases, restore

pytestmark = pytest.mark.fault
LAB_HOSTS = 2
PASSPHRASE = "key-passphrase-for-tests"


@pytest.fixture
def keys_lab(lab: Lab) -> Lab:
    restore(lab)
    return lab


@contextlib.contextmanager
def protected_key(lab: Lab, tmp: Path) -> Iterator[Path]:
    """A passphrase-protected ed25519 key, authorized on every lab host while in use."""
    key = tmp / "protected"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", PASSPHRASE, "-f", str(key)], check=True
    )
    authorized = lab.root / "authorized_keys"
    before = authorized.read_text()
    authorized.write_text(before + key.with_suffix(".pub").read_text())
    try:
        yield key
    finally:
        authorized.write_text(before)


@contextlib.contextmanager
def agent_holding(key: Path, tmp: Path) -> Iterator[str]:
    """An ssh-agent of our own (killed by pid) with ``key`` added; yields its socket."""
    sock = tmp / "agent.sock"
    proc = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline, "ssh-agent did not start"
            time.sleep(0.05)
        askpass = tmp / "askpass"
        askpass.write_text(f"#!/bin/sh\necho '{PASSPHRASE}'\n")
        askpass.chmod(0o700)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock), "SSH_ASKPASS": str(askpass),
               "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": "none"}  # fmt: skip
        subprocess.run(["ssh-add", str(key)], env=env, check=True, capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=20)  # fmt: skip
        yield str(sock)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def _cli(lab: Lab, tmp: Path, key: Path, env: dict[str, str]) -> CLI:
    inventory = faults.write_inventory(
        lab, tmp / "inv.yml", host_vars={h.name: {"ansible_ssh_private_key_file": str(key)}
                                         for h in lab.hosts},
    )  # fmt: skip
    clean = {"SSH_AUTH_SOCK": "", PASSPHRASE_ENV: ""}
    return CLI(inventory, tmp / "ledger.db", env={**clean, **env})


@pytest.mark.scenario("keys: a passphrase-protected key works through ssh-agent")
def test_protected_key_through_the_agent(keys_lab: Lab, tmp_path: Path) -> None:
    """Without the agent the key cannot be used (a clear error); with it loaded, deploy runs."""
    pb = fault_playbook(tmp_path / "pb.yml")
    with protected_key(keys_lab, tmp_path) as key:
        ran = _cli(keys_lab, tmp_path, key, {})("plan", "--phase", "1", playbook=pb)
        assert ran.code != 0 and "ssh-agent" in ran.stdout + ran.stderr
        with agent_holding(key, tmp_path) as sock:
            cli = _cli(keys_lab, tmp_path, key, {"SSH_AUTH_SOCK": sock})
            ran = cli("deploy", "--phase", "1", "--yes", "--no-wait", playbook=pb)
    assert ran.code == 0, ran.stdout + ran.stderr
    assert phases(keys_lab) == {h.name: 1 for h in keys_lab.hosts}


@pytest.mark.scenario("keys: a passphrase from the environment unlocks a key file")
def test_protected_key_with_passphrase_from_the_environment(keys_lab: Lab, tmp_path: Path) -> None:
    """$ROLLOUT_SSH_KEY_PASSPHRASE decrypts the key file; the passphrase is never printed."""
    with protected_key(keys_lab, tmp_path) as key:
        ran = _cli(keys_lab, tmp_path, key, {PASSPHRASE_ENV: PASSPHRASE})(
            "plan", "--phase", "1", playbook=fault_playbook(tmp_path / "pb.yml")
        )
    assert ran.code == 0, ran.stdout + ran.stderr
    assert PASSPHRASE not in ran.stdout + ran.stderr


@pytest.mark.scenario("host keys: @revoked refuses a pinned key, @cert-authority lines parse")
def test_revoked_and_cert_authority_lines(keys_lab: Lab, tmp_path: Path) -> None:
    """A known_hosts with a CA line loads; h1's key marked @revoked is refused even though it
    is also pinned, and nothing changes."""
    real = keys_lab.known_hosts.read_text().splitlines()
    ca = tmp_path / "ca"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ca)], check=True)
    ca_line = "@cert-authority *.example.com " + ca.with_suffix(".pub").read_text().strip()
    known = tmp_path / "known_hosts"
    known.write_text("\n".join([ca_line, *real]) + "\n")
    inventory = faults.write_inventory(keys_lab, tmp_path / "inv.yml", known_hosts=known)
    pb = fault_playbook(tmp_path / "pb.yml")
    ran = CLI(inventory, tmp_path / "l1.db")("plan", "--phase", "1", playbook=pb)
    assert ran.code == 0, ran.stdout + ran.stderr
    h1_key = " ".join(real[0].split()[1:3])
    known.write_text("\n".join([*real, f"@revoked * {h1_key}"]) + "\n")
    ran = CLI(inventory, tmp_path / "l2.db")(
        "deploy", "--phase", "1", "--yes", "--no-wait", playbook=pb
    )
    assert ran.code == 5, ran.stdout + ran.stderr
    assert "@revoked" in ran.stderr
    assert phases(keys_lab) == {h.name: 0 for h in keys_lab.hosts}


def test_system_known_hosts_is_consulted(
    keys_lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no user known_hosts, a key pinned in the system-wide file verifies; an empty
    system file leaves the host unknown (fail-closed)."""
    monkeypatch.setenv("HOME", str(tmp_path))  # ~/.ssh/known_hosts does not exist
    lab_host = keys_lab.hosts[0]
    host = Host(name=lab_host.name, address="127.0.0.1", port=lab_host.port,
                user=keys_lab.user, key_file=str(keys_lab.key_file))  # fmt: skip
    system = tmp_path / "ssh_known_hosts"
    system.write_text(keys_lab.known_hosts.read_text())
    session = SSHTransport(system_known_hosts=system).connect(host)
    try:
        assert session.run(["true"]).ok
    finally:
        session.close()
    system.write_text("")
    with pytest.raises(HostKeyError, match="unknown host key"):
        SSHTransport(system_known_hosts=system).connect(host)
