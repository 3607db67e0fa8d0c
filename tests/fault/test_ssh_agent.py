"""SSH agents: a real ``ssh-agent`` holding the key (no key file anywhere), an agent holding
several keys, and agent forwarding, which the tool never asks for.

Hermetic: each test starts its own agent on a socket in a temp directory and gives the
controller an empty ``HOME``, so neither the user's agent nor their ``~/.ssh`` keys are seen.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from rollout_lab import Lab, LabHost, control
from rollout_lab.testing import reset, running_lab

from ..e2e.cli import CLI
from .helpers import STATES, fault_playbook

pytestmark = pytest.mark.fault
HOSTS = 2


class Agent:
    """A private ``ssh-agent`` on a socket in ``root``; killed on exit."""

    def __init__(self, root: Path) -> None:
        self.sock = root / "agent.sock"
        out = subprocess.run(
            ["ssh-agent", "-s", "-a", str(self.sock)],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout  # fmt: skip
        self.pid = int(out.split("SSH_AGENT_PID=")[1].split(";")[0])

    def add(self, key: Path) -> None:
        subprocess.run(
            ["ssh-add", "-q", str(key)],
            env={"SSH_AUTH_SOCK": str(self.sock), "PATH": os.environ["PATH"]},
            check=True, capture_output=True, timeout=10, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def count(self) -> int:
        out = subprocess.run(
            ["ssh-add", "-l"], env={"SSH_AUTH_SOCK": str(self.sock)},
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout  # fmt: skip
        return len([line for line in out.splitlines() if line.strip()])

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with running_lab(HOSTS, with_release=False) as lab:
        yield lab


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    a = Agent(tmp_path)
    try:
        yield a
    finally:
        a.close()


def _keyless_inventory(lab: Lab, dest: Path, release_bin: Path | None = None) -> Path:
    """The lab's inventory without ``ansible_ssh_private_key_file`` (the agent must serve)."""
    data = yaml.safe_load(lab.inventory.read_text())
    data["all"]["vars"].pop("ansible_ssh_private_key_file")
    if release_bin is not None:
        for entry in data["all"]["children"]["foundation"]["hosts"].values():
            entry["release_bin"] = str(release_bin)
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def _cli(lab: Lab, tmp_path: Path, agent: Agent | None, inventory: Path) -> CLI:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)  # empty: no ~/.ssh/id_* keys for paramiko to find
    env = {"HOME": str(home), "SSH_AUTH_SOCK": str(agent.sock) if agent else ""}
    return CLI(inventory, tmp_path / "ledger.db", env=env)


def _key(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True, timeout=30, capture_output=True,
    )  # fmt: skip
    return path


@pytest.mark.scenario("ssh agent: the key only in an agent")
def test_key_only_in_agent(lab: Lab, agent: Agent, tmp_path: Path) -> None:
    """With no key file in the inventory and none in HOME, the agent's key logs in and the
    deploy is verified on every host."""
    reset(lab)
    agent.add(lab.key_file)
    cli = _cli(lab, tmp_path, agent, _keyless_inventory(lab, tmp_path / "inv.yml"))
    ran = cli("deploy", "--phase", "1", "--yes", "--no-wait",
              playbook=fault_playbook(tmp_path / "pb.yml"))  # fmt: skip
    assert ran.code == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert all(control.read_flags(h) == STATES[1] for h in lab.hosts)


@pytest.mark.scenario("ssh agent: no agent and no key file is refused")
def test_no_agent_no_key_is_unreachable(lab: Lab, tmp_path: Path) -> None:
    """Without the agent the same keyless inventory cannot log in: the hosts are reported
    unreachable (exit 5) and nothing changes (so the agent is what authenticated above)."""
    reset(lab)
    cli = _cli(lab, tmp_path, None, _keyless_inventory(lab, tmp_path / "inv.yml"))
    ran = cli("deploy", "--phase", "1", "--yes", "--no-wait",
              playbook=fault_playbook(tmp_path / "pb.yml"))  # fmt: skip
    assert ran.code == 5, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert all(control.read_flags(h) == STATES[0] for h in lab.hosts)


@pytest.mark.scenario("ssh agent: several keys, the right one last")
def test_agent_with_several_keys(lab: Lab, agent: Agent, tmp_path: Path) -> None:
    """An agent holding three unrelated keys before the right one still logs in."""
    reset(lab)
    for i in range(3):
        agent.add(_key(tmp_path, f"other{i}"))
    agent.add(lab.key_file)
    assert agent.count() == 4
    cli = _cli(lab, tmp_path, agent, _keyless_inventory(lab, tmp_path / "inv.yml"))
    ran = cli("status", "--json")
    assert ran.code == 0, ran.stdout[-2000:] + ran.stderr[-2000:]


def _forwarding_host(host: LabHost) -> None:
    """Let ``host``'s sshd forward agents, so that only the client's choice decides."""
    config = host.paths.sshd_config
    text = config.read_text()
    if "AllowAgentForwarding yes" not in text:
        control.stop_sshd(host)
        config.write_text(text.replace("AllowAgentForwarding no", "AllowAgentForwarding yes"))
        control.start_sshd(host)


@pytest.mark.scenario("ssh agent: never forwarded to hosts")
def test_agent_never_forwarded(lab: Lab, agent: Agent, tmp_path: Path) -> None:
    """On an sshd that allows agent forwarding, the console calls of a deploy see no
    SSH_AUTH_SOCK, while a plain `ssh -A` to the same host does (the probe can tell)."""
    host = lab.hosts[0]
    reset(lab)
    _forwarding_host(host)
    agent.add(lab.key_file)
    probe = host.root / "agent-probe"  # inside the host's tree: the lab user can reach it
    probe.mkdir(exist_ok=True)
    probe.chmod(0o777)
    log = probe / "seen.log"
    log.write_text("")
    log.chmod(0o666)
    wrapper = probe / "foundation-wrapper"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'echo "SSH_AUTH_SOCK=${{SSH_AUTH_SOCK:-unset}}" >> {log}\n'
        f'exec {host.release_bin} "$@"\n'
    )
    wrapper.chmod(0o755)
    inventory = _keyless_inventory(lab, tmp_path / "inv.yml", release_bin=wrapper)
    cli = _cli(lab, tmp_path, agent, inventory)
    ran = cli("deploy", "--phase", "1", "--yes", "--no-wait", "--limit", host.name,
              playbook=fault_playbook(tmp_path / "pb.yml"))  # fmt: skip
    assert ran.code == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    seen = log.read_text().splitlines()
    assert seen and all(line == "SSH_AUTH_SOCK=unset" for line in seen), seen

    ssh = shutil.which("ssh")
    assert ssh is not None
    subprocess.run(
        [ssh, "-A", "-F", "/dev/null", "-o", f"IdentityAgent={agent.sock}",
         "-o", "IdentitiesOnly=no", "-o", f"UserKnownHostsFile={lab.known_hosts}",
         "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
         "-p", str(host.port), f"{lab.user}@127.0.0.1", f"{wrapper} version"],
        check=True, capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    control_line = log.read_text().splitlines()[-1]
    assert control_line != "SSH_AUTH_SOCK=unset", "the probe cannot see a forwarded agent"
