"""Deploys through a real bastion to lab hosts that are unreachable directly, and to a host
known only by its ssh_config alias; a bastion is used or the run fails, never bypassed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from rollout.playbook import load_playbook
from rollout_lab import Lab, control
from rollout_lab.testing import clean_lab_fixture, lab_fixture  # noqa: F401

from .bastion import Bastion, only_through, running_bastion
from .cli import CLI, PLAYBOOK, Ran

pytestmark = pytest.mark.e2e
LAB_HOSTS = 2
PHASE1 = load_playbook(PLAYBOOK).phase(1).state.as_dict()


@pytest.fixture(scope="module")
def bastion(lab: Lab) -> Iterator[Bastion]:
    with running_bastion(lab) as b:
        yield b


def _files(
    lab: Lab, bastion: Bastion, tmp: Path, *, trust_bastion: bool = True, port: int | None = None
) -> tuple[Path, Path]:
    """An inventory whose hosts sit behind ``-o ProxyJump=bastion``, and the ssh_config
    that says where the bastion is and how to log in to it."""
    known = tmp / "known_hosts"
    text = lab.known_hosts.read_text()
    known.write_text(text + (bastion.host_key_line if trust_bastion else ""))
    data = yaml.safe_load(lab.inventory.read_text())
    data["all"]["vars"]["known_hosts_file"] = str(known)
    data["all"]["vars"]["ansible_ssh_common_args"] = "-o ControlPersist=60s -o ProxyJump=bastion"
    inventory = tmp / "behind.yml"
    inventory.write_text(yaml.safe_dump(data))
    config = tmp / "ssh_config"
    config.write_text(
        f"Host bastion\n  HostName 127.0.0.1\n  Port {port or bastion.port}\n"
        f"  User {bastion.user}\n  IdentityFile {lab.key_file}\n"
    )
    return inventory, config


def _flags(lab: Lab) -> list[dict[str, bool | int]]:
    return [control.read_flags(h) for h in lab.hosts]


def ok(ran: Ran) -> Ran:
    assert ran.code == 0, ran.stdout + ran.stderr
    return ran


def test_deploy_goes_through_the_bastion_when_hosts_are_unreachable_directly(
    clean_lab: Lab, bastion: Bastion, tmp_path: Path
) -> None:
    """With direct connections rejected, the plain inventory fails and the ProxyJump one
    deploys phase 1 to every host, verified on the nodes themselves."""
    inventory, config = _files(clean_lab, bastion, tmp_path)
    with only_through(bastion, [h.port for h in clean_lab.hosts]):
        direct = CLI(clean_lab.inventory, tmp_path / "direct.db")("plan", "--phase", "1")
        assert direct.code != 0 and "cannot reach" in direct.stdout + direct.stderr
        cli = CLI(inventory, tmp_path / "ledger.db")
        ran = ok(cli("deploy", "--phase", "1", "--yes", "--no-wait", "--ssh-config", str(config)))
    assert ran.stdout.count("verified at Phase 1") == LAB_HOSTS
    assert all(f == PHASE1 for f in _flags(clean_lab))


def test_an_unknown_bastion_host_key_stops_the_run(
    clean_lab: Lab, bastion: Bastion, tmp_path: Path
) -> None:
    """Host keys stay fail-closed through the bastion: its key is not pinned, nothing runs."""
    inventory, config = _files(clean_lab, bastion, tmp_path, trust_bastion=False)
    before = _flags(clean_lab)
    ran = CLI(inventory, tmp_path / "ledger.db")(
        "deploy", "--phase", "1", "--yes", "--no-wait", "--ssh-config", str(config)
    )
    assert ran.code != 0
    assert "unknown host key" in ran.stdout + ran.stderr
    assert f"[127.0.0.1]:{bastion.port}" in ran.stdout + ran.stderr
    assert _flags(clean_lab) == before


def test_a_bastion_that_is_down_fails_the_run_instead_of_going_direct(
    clean_lab: Lab, bastion: Bastion, tmp_path: Path
) -> None:
    """The hosts are directly reachable here, but the bastion's port is closed: the run fails
    naming the bastion, and no host changes."""
    closed = clean_lab.hosts[0].port + 17
    inventory, config = _files(clean_lab, bastion, tmp_path, port=closed)
    before = _flags(clean_lab)
    ran = CLI(inventory, tmp_path / "ledger.db")(
        "deploy", "--phase", "1", "--yes", "--no-wait", "--ssh-config", str(config)
    )
    assert ran.code != 0
    assert "bastion bastion" in ran.stdout + ran.stderr
    assert _flags(clean_lab) == before


def test_a_host_is_reached_by_its_ssh_config_alias(clean_lab: Lab, tmp_path: Path) -> None:
    """An inventory listing only aliases deploys: HostName, Port, User and IdentityFile come
    from the ssh client config, as with OpenSSH."""
    inventory = tmp_path / "aliases.ini"
    names = [f"alias-{h.name}" for h in clean_lab.hosts]
    lines = ["[foundation]"]
    for name, host in zip(names, clean_lab.hosts, strict=True):
        lines.append(f"{name} release_bin={host.release_bin} restart_command={host.restart_script}")
    lines += ["[all:vars]", f"known_hosts_file={clean_lab.known_hosts}"]
    inventory.write_text("\n".join(lines) + "\n")
    config = tmp_path / "ssh_config"
    config.write_text(
        "".join(
            f"Host {name}\n  HostName 127.0.0.1\n  Port {host.port}\n  User {clean_lab.user}\n"
            f"  IdentityFile {clean_lab.key_file}\n"
            for name, host in zip(names, clean_lab.hosts, strict=True)
        )
    )
    cli = CLI(inventory, tmp_path / "ledger.db")
    ran = ok(cli("deploy", "--phase", "1", "--yes", "--no-wait", "--ssh-config", str(config)))
    assert ran.stdout.count("verified at Phase 1") == LAB_HOSTS
    assert all(f == PHASE1 for f in _flags(clean_lab))
