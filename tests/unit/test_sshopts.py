"""OpenSSH client semantics at load time: ssh args, ssh_config, ProxyJump chains, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollout.errors import InventoryError
from rollout.inventory import load_inventory
from rollout.models import Host, Jump
from rollout.sshopts import client_config_path

SSH_CONFIG = """\
Host web1-alias
  HostName 127.0.0.5
  Port 2301
  User aliased
  IdentityFile ~/keys/alias

Host bastion
  HostName 10.9.0.1
  Port 2200
  User jumper
  IdentityFile /keys/bastion

Host inner
  HostName 10.9.0.2
  ProxyJump bastion

Host behind-*
  ProxyJump inner

Host cmd
  ProxyCommand ssh -W %h:%p -p 2222 ops@gate.example.com
"""


def load(tmp_path: Path, text: str, config: str | None = SSH_CONFIG) -> dict[str, Host]:
    (tmp_path / "hosts.ini").write_text(text)
    cfg = None
    if config is not None:
        cfg = tmp_path / "ssh_config"
        cfg.write_text(config)
    inventory = load_inventory(tmp_path / "hosts.ini", ssh_config=cfg)
    return {h.name: h for h in inventory.hosts}


def test_a_host_is_reached_by_its_ssh_config_alias(tmp_path: Path) -> None:
    """HostName, Port, User and IdentityFile come from the Host block matching the name."""
    host = load(tmp_path, "web1-alias\n")["web1-alias"]
    assert (host.address, host.port, host.user) == ("127.0.0.5", 2301, "aliased")
    assert host.key_file == str(Path("~/keys/alias").expanduser())
    assert host.jumps == ()


def test_inventory_variables_win_over_ssh_config(tmp_path: Path) -> None:
    """ansible_port/ansible_user are passed as -o options, which OpenSSH takes first."""
    host = load(tmp_path, "web1-alias ansible_port=2400 ansible_user=me\n")["web1-alias"]
    assert (host.address, host.port, host.user) == ("127.0.0.5", 2400, "me")


def test_common_args_proxyjump_resolves_the_bastion_through_ssh_config(tmp_path: Path) -> None:
    """-o ProxyJump=bastion in ansible_ssh_common_args is a hop with the bastion's config."""
    hosts = load(
        tmp_path, "[web]\nw1 ansible_host=10.0.0.1\n[web:vars]\n"
        "ansible_ssh_common_args='-o StrictHostKeyChecking=yes -o ProxyJump=bastion'\n",
    )  # fmt: skip
    assert hosts["w1"].jumps == (Jump("bastion", "10.9.0.1", 2200, "jumper", "/keys/bastion"),)
    assert hosts["w1"].address == "10.0.0.1"


def test_a_chain_of_bastions_is_followed_first_hop_first(tmp_path: Path) -> None:
    """behind-1 -> ProxyJump inner -> ProxyJump bastion: two hops, the bastion first (Host
    blocks match the name ssh is given: ansible_host when set, as OpenSSH)."""
    assert load(tmp_path, "behind-1 ansible_host=10.1.1.1\n")["behind-1"].jumps == ()
    host = load(tmp_path, "behind-1\n")["behind-1"]
    assert [j.name for j in host.jumps] == ["bastion", "inner"]
    assert host.jumps[1].address == "10.9.0.2"


def test_several_hops_in_one_proxyjump_and_j_flag(tmp_path: Path) -> None:
    """-J u@a:2022,b is two hops with explicit user and port; none given means direct."""
    hosts = load(
        tmp_path, "a1 ansible_ssh_extra_args='-J u@gate1:2022,gate2'\n"
        "a2 ansible_ssh_common_args='-o ProxyJump=none'\n", config=None,
    )  # fmt: skip
    assert hosts["a1"].jumps == (Jump("gate1", "gate1", 2022, "u"), Jump("gate2", "gate2", 22))
    assert hosts["a2"].jumps == ()


def test_first_value_wins_between_common_and_extra_args(tmp_path: Path) -> None:
    """As OpenSSH: common args come before extra args on the command line, so they win."""
    host = load(
        tmp_path, "a1 ansible_ssh_common_args='-o ProxyJump=g1' "
        "ansible_ssh_extra_args='-o ProxyJump=g2 -o User=x'\n", config=None,
    )["a1"]  # fmt: skip
    assert [j.name for j in host.jumps] == ["g1"]
    assert host.user == "x"


def test_proxycommand_ssh_w_is_read_as_a_jump(tmp_path: Path) -> None:
    """ProxyCommand ssh -W %h:%p -p 2222 ops@gate is the hop ops@gate:2222; nothing runs."""
    host = load(tmp_path, "cmd\n")["cmd"]
    assert host.jumps == (Jump("gate.example.com", "gate.example.com", 2222, "ops"),)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("-o ProxyCommand='nc %h %p'", "ProxyCommand"),
        ("-o LocalCommand=rm", "'localcommand' is not supported"),
        ("-F /tmp/other_config", "'-F' is not supported"),
        ("-o ProxyJump", "is not Name=value"),
        ("-o 'ProxyJump=a,,b'", "empty hop"),
        ("bastion", "unexpected word"),
    ],
)
def test_ssh_arguments_rollout_cannot_honour_are_refused(
    tmp_path: Path, args: str, message: str
) -> None:
    """An option that could route around a bastion is an error naming the file and line."""
    with pytest.raises(InventoryError, match=message) as caught:
        load(tmp_path, f'[web]\nw1\n[web:vars]\nansible_ssh_common_args="{args}"\n', config=None)
    assert caught.value.location is not None
    assert caught.value.location.file.endswith("hosts.ini")
    assert caught.value.location.line == 4


def test_tuning_options_are_ignored(tmp_path: Path) -> None:
    """ControlPersist, ServerAliveInterval, -C and the like change nothing."""
    host = load(
        tmp_path, "a1 ansible_ssh_args='-C -o ControlMaster=auto -o ControlPersist=60s' "
        "ansible_ssh_common_args='-o ServerAliveInterval=5 -q'\n", config=None,
    )["a1"]  # fmt: skip
    assert host.jumps == () and host.port == 22


def test_client_config_path_defaults_and_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--ssh-config wins, 'none' means none, then $ROLLOUT_SSH_CONFIG, then ~/.ssh/config."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("ROLLOUT_SSH_CONFIG")
    assert client_config_path(None) is None
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("Host x\n")
    assert client_config_path(None) == str(tmp_path / ".ssh" / "config")
    assert client_config_path("none") is None
    monkeypatch.setenv("ROLLOUT_SSH_CONFIG", "/etc/other")
    assert client_config_path(None) == "/etc/other"
    assert client_config_path("/x") == "/x"


def test_a_missing_ssh_config_is_an_error(tmp_path: Path) -> None:
    """--ssh-config naming no file fails before any host is touched."""
    (tmp_path / "hosts.ini").write_text("a1\n")
    with pytest.raises(InventoryError, match="no such ssh client config"):
        load_inventory(tmp_path / "hosts.ini", ssh_config=tmp_path / "nope")


def test_a_hostile_bastion_address_is_refused(tmp_path: Path) -> None:
    """A hop whose address or user could be read as an option is refused, naming the line."""
    with pytest.raises(InventoryError, match="not allowed") as caught:
        load(tmp_path, "a1 ansible_ssh_common_args='-J \"-oProxyCommand=x@y\"'\n", config=None)
    assert caught.value.location is not None and caught.value.location.line == 1
