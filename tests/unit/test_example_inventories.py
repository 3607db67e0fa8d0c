"""The example inventories under inventory/ load as documented, and `invoke inventory` shows
them as rollout resolves them, secrets masked, without connecting to anything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rollout.inventory import load_inventory
from rollout.vault import Vault

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "inventory"
PASSWORD = EXAMPLES / "vault-password.example.txt"
INVOKE = str(Path(sys.executable).parent / "invoke")


def test_production_example_has_canary_web_bastion_and_a_vaulted_cookie() -> None:
    """web and canary groups, every host behind the bastion, the cookie from the vault."""
    inventory = load_inventory(EXAMPLES / "production", vault=Vault(str(PASSWORD)))
    names = [h.name for h in inventory.hosts]
    assert names == [f"web-0{i}.prod.example.com" for i in (1, 2, 3)]
    assert inventory.groups["canary"] == frozenset({"web-01.prod.example.com"})
    for host in inventory.hosts:
        assert [str(j) for j in host.jumps] == ["deploy@bastion.prod.example.com:22"]
        env = {k: v.reveal() for k, v in host.release_env}
        assert env["RELEASE_COOKIE"] == "EXAMPLE-COOKIE-REPLACE-ME"
        assert env["RELEASE_NODE"] == f"foundation@{host.name.split('.')[0]}"


def test_staging_example_loads_direct() -> None:
    """The INI example: two hosts, no bastion, a canary."""
    inventory = load_inventory(EXAMPLES / "staging.ini")
    assert [h.name for h in inventory.hosts] == ["stage-web-1", "stage-web-2"]
    assert all(h.jumps == () for h in inventory.hosts)
    assert inventory.groups["canary"] == frozenset({"stage-web-1"})


def _inventory(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [INVOKE, "inventory", "--inventory", str(EXAMPLES / "production"),
         "--vault-password-file", str(PASSWORD), *args],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_invoke_inventory_list_graph_host_and_limit() -> None:
    """--list is ansible-inventory's JSON with resolved variables and masked secrets; --graph
    the tree; --host one host; --limit narrows; none of it reaches for a host."""
    ran = _inventory("--list")
    assert ran.returncode == 0, ran.stderr
    assert "EXAMPLE-COOKIE" not in ran.stdout
    data = json.loads(ran.stdout)
    assert data["web"]["hosts"] == [f"web-0{i}.prod.example.com" for i in (1, 2, 3)]
    assert data["all"]["children"] == ["web", "canary"]
    web1 = data["_meta"]["hostvars"]["web-01.prod.example.com"]
    assert web1["address"] == "10.20.0.11" and web1["release_env"]["RELEASE_COOKIE"] == "********"
    assert web1["jumps"] == ["deploy@bastion.prod.example.com:22"]
    graph = _inventory("--graph").stdout
    assert graph.startswith("@all:\n  |--@web:\n  |  |--web-01.prod.example.com\n")
    host = json.loads(_inventory("--host", "web-02.prod.example.com").stdout)
    assert host["address"] == "10.20.0.12"
    limited = json.loads(_inventory("--list", "--limit", "canary").stdout)
    assert list(limited["_meta"]["hostvars"]) == ["web-01.prod.example.com"]


def test_invoke_inventory_errors_say_what_to_do() -> None:
    """No vault password: the encrypted file is named; an unknown --host is an error."""
    ran = subprocess.run(
        [INVOKE, "inventory", "--inventory", str(EXAMPLES / "production")],
        cwd=REPO, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "ROLLOUT_SSH_CONFIG": "none"},
    )  # fmt: skip
    assert ran.returncode == 2
    assert "group_vars/all/vault.yml:1" in ran.stderr and "vault-password-file" in ran.stderr
    assert _inventory("--host", "nope").returncode == 2
