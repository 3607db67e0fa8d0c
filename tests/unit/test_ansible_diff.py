"""The differential suite: rollout's inventory loader and --limit against real ansible-core.

Every inventory and pattern in ``tests/data/ansible_diff/cases.yml`` is resolved by rollout
and by ansible-core (``tests/ansible/reference.py``, all cases in one process). For each
case rollout must give Ansible's answer (the hosts in order, each host's connection and tool
variables) or refuse with an error; a refusal is accepted only where docs/inventory.md lists
it: a pattern token that matches nothing (Ansible warns and goes on), a subscript that selects
nothing, or a pattern that leaves no host (Ansible stops too).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollout.errors import InventoryError
from rollout.inventory import load_inventory, select_hosts
from rollout.inventory.patterns import split_pattern
from rollout.models import Host, Inventory
from rollout.vault import Vault

pytest.importorskip("ansible", reason="ansible-core is a test dependency (requirements.txt)")

DATA = Path(__file__).resolve().parents[1] / "data"
REFERENCE = Path(__file__).resolve().parents[1] / "ansible" / "reference.py"
CASES = yaml.safe_load((DATA / "ansible_diff" / "cases.yml").read_text())


def _inventories() -> list[dict[str, Any]]:
    return [
        {**inv, "patterns": [*CASES["patterns"], *inv.get("patterns", [])]}
        for inv in CASES["inventories"]
    ]


@cache
def ansible_answers(tmp: str) -> dict[str, Any]:
    """ansible-core's answers for every inventory, from one hermetic subprocess."""
    cases = [
        {
            "inventory": str(DATA / inv["path"]),
            "patterns": inv["patterns"],
            "vault_password_file": _vault_file(inv),
        }
        for inv in _inventories()
    ]
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k != "PYTHONPATH"
    }
    env.update(HOME=tmp, ANSIBLE_HOME=f"{tmp}/.ansible", ANSIBLE_LOCAL_TEMP=f"{tmp}/tmp",
               ANSIBLE_CONFIG=f"{tmp}/none.cfg", ANSIBLE_NOCOLOR="1")  # fmt: skip
    ran = subprocess.run(
        [sys.executable, str(REFERENCE)],
        input=json.dumps(cases), capture_output=True, text=True, cwd=tmp, env=env, timeout=300,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    return {
        inv["path"]: ans for inv, ans in zip(_inventories(), json.loads(ran.stdout), strict=True)
    }


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return ansible_answers(str(tmp_path_factory.mktemp("ansible")))


def _pick(hostvars: dict[str, Any], *names: str) -> Any:
    found = None
    for name in names:
        if hostvars.get(name) is not None:
            found = hostvars[name]
    return found


def expected_fields(name: str, hostvars: dict[str, Any], base: Path) -> dict[str, Any]:
    """What rollout's Host must hold, read off Ansible's variables for the host."""

    def local(path: str | None) -> str | None:
        if path is None:
            return None
        p = Path(os.path.expanduser(path))
        return os.path.normpath(p if p.is_absolute() else base / p)

    port = _pick(hostvars, "ansible_port", "ansible_ssh_port")
    env = hostvars.get("release_env") or {}
    return {
        "address": _pick(hostvars, "ansible_host", "ansible_ssh_host") or name,
        "port": int(port) if port is not None else 22,
        "user": _pick(hostvars, "ansible_user", "ansible_ssh_user"),
        "key_file": local(
            _pick(hostvars, "ansible_private_key_file", "ansible_ssh_private_key_file")
        ),
        "known_hosts_file": local(hostvars.get("known_hosts_file")),
        "release_bin": hostvars.get("release_bin") or "/opt/foundation/bin/foundation",
        "release_env": sorted(env.items()),
        "restart_command": hostvars.get("restart_command"),
        "service": hostvars.get("service") or "foundation",
        "state_paths": list(hostvars.get("state_paths") or []),
    }


def actual_fields(host: Host) -> dict[str, Any]:
    return {
        "address": host.address,
        "port": host.port,
        "user": host.user,
        "key_file": host.key_file,
        "known_hosts_file": host.known_hosts_file,
        "release_bin": host.release_bin,
        "release_env": [(k, v.reveal()) for k, v in host.release_env],
        "restart_command": host.restart_command,
        "service": host.service,
        "state_paths": list(host.state_paths),
    }


def _vault_file(inv: dict[str, Any]) -> str | None:
    return str(DATA / inv["vault_password_file"]) if inv.get("vault_password_file") else None


@cache
def _load(path: str) -> Inventory:
    inv = next(i for i in CASES["inventories"] if i["path"] == path)
    return load_inventory(DATA / path, vault=Vault(_vault_file(inv)))


@pytest.mark.parametrize("inv", _inventories(), ids=lambda inv: inv["path"])
def test_inventory_resolves_as_ansible_does(inv: dict[str, Any], answers: dict[str, Any]) -> None:
    """Same hosts in the same order, the same groups, the same variables rollout uses."""
    ansible = answers[inv["path"]]
    assert "error" not in ansible, ansible
    inventory = _load(inv["path"])
    names = [h.name for h in inventory.hosts]
    if ansible["stable"]:
        assert names == ansible["hosts"]
    assert sorted(names) == sorted(ansible["hosts"])
    for group, members in ansible["groups"].items():
        assert inventory.groups[group] == frozenset(members), group
        if ansible["stable"]:
            assert list(inventory.group_order[group]) == members, group
    base = Path(inventory.path) if Path(inventory.path).is_dir() else Path(inventory.path).parent
    for host in inventory.hosts:
        want = expected_fields(host.name, ansible["vars"][host.name], base)
        assert actual_fields(host) == want, host.name


def _pattern_cases() -> list[tuple[str, str]]:
    return [(inv["path"], p) for inv in _inventories() for p in inv["patterns"]]


@pytest.mark.parametrize(("path", "pattern"), _pattern_cases())
def test_limit_selects_what_ansible_selects(
    path: str, pattern: str, answers: dict[str, Any]
) -> None:
    """--limit PATTERN picks Ansible's hosts, or refuses where Ansible would target none or
    ignore a token that matches nothing."""
    ansible = answers[path]["patterns"][pattern]
    inventory = _load(path)
    try:
        chosen = [h.name for h in select_hosts(inventory, pattern)]
    except InventoryError as exc:
        refused = str(exc)
        if isinstance(ansible, dict) or not ansible:
            return  # Ansible stops too (an error, or no host to target)
        assert "matches no host or group" in refused or "selects no host" in refused, refused
        unmatched = [t for t in split_pattern(pattern) if t.lstrip("!&") in refused]
        assert unmatched, f"{refused} names none of the pattern's tokens"
        return
    assert not isinstance(ansible, dict), f"Ansible refuses: {ansible['error']}; rollout: {chosen}"
    if answers[path]["stable"]:
        assert chosen == ansible
    elif "[" in pattern:  # a subscript over an order that Ansible itself varies from run to run
        assert len(chosen) == len(ansible)
    else:
        assert sorted(chosen) == sorted(ansible)
