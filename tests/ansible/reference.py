"""Ask real ansible-core for its answers: run as a script, many cases in one process.

Reads a JSON list of cases from stdin, each ``{"inventory": PATH, "patterns": [...],
"vault_password_file": PATH | null}``, and prints one JSON list of answers: the hosts in
Ansible's order for a play on ``all``, each host's inventory variables (as
``ansible-inventory --list`` resolves them), and for each pattern the hosts
``ansible-playbook --limit PATTERN`` would target, or the error it stops with. ``stable`` is
false when Ansible's own group order came from a Python set walk (below the first level of
children), so only the membership, not the order, is Ansible's to pin.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any


def _plain(value: Any) -> Any:
    """Ansible's tagged and wrapped values as plain JSON data."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if type(value).__name__ == "EncryptedString" or hasattr(value, "_ciphertext"):
        return {"__vault__": str(value)}
    return str(value)


def _declared_walk(group: Any) -> list[Any]:
    """``Group.get_hosts()`` with each level walked in declaration order (no set)."""
    walk = [group, *group.child_groups]
    seen = {id(g) for g in walk}
    level = list(group.child_groups)
    while level:
        following = []
        for g in level:
            for child in g.child_groups:
                if id(child) not in seen:
                    seen.add(id(child))
                    walk.append(child)
                    following.append(child)
        level = following
    hosts: dict[str, None] = {}
    for g in walk:
        for h in g.hosts:
            hosts.setdefault(h.name, None)
    return list(hosts)


#: The variables rollout reads, templated as Ansible templates them when it uses them.
USED = (
    "ansible_host", "ansible_ssh_host", "ansible_port", "ansible_ssh_port", "ansible_user",
    "ansible_ssh_user", "ansible_private_key_file", "ansible_ssh_private_key_file",
    "known_hosts_file", "release_bin", "release_env", "restart_command", "service",
    "state_paths", "ansible_ssh_args", "ansible_ssh_common_args", "ansible_ssh_extra_args",
)  # fmt: skip


def _templated(loader: Any, variables: Any, host: Any) -> dict[str, Any]:
    from ansible.template import Templar

    hostvars = variables.get_vars(host=host, include_hostvars=False, stage="all")
    templar = Templar(loader=loader, variables=hostvars)
    return {k: _plain(templar.template(hostvars[k])) for k in USED if k in hostvars}


def answer(case: dict[str, Any]) -> dict[str, Any]:
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    if case.get("vault_password_file"):
        from ansible.parsing.vault import get_file_vault_secret

        secret = get_file_vault_secret(filename=case["vault_password_file"], loader=loader)
        secret.load()
        loader.set_vault_secrets([("default", secret)])
        from ansible.parsing.vault import VaultSecretsContext

        # what the ansible CLI initializes once per process; here once per case
        VaultSecretsContext._current = VaultSecretsContext([("default", secret)])
    try:
        inventory = InventoryManager(loader=loader, sources=[case["inventory"]])
        variables = VariableManager(loader=loader, inventory=inventory)
        hosts = inventory.get_hosts("all")
        host_vars = {h.name: _templated(loader, variables, h) for h in hosts}
    except AnsibleError as exc:
        return {"error": str(exc).splitlines()[0]}
    stable = all(
        [h.name for h in g.get_hosts()] == _declared_walk(g) for g in inventory.groups.values()
    )
    groups = {name: [h.name for h in g.get_hosts()] for name, g in inventory.groups.items()}
    patterns: dict[str, Any] = {}
    for pattern in case.get("patterns", []):
        inventory.subset(pattern)
        try:
            patterns[pattern] = [h.name for h in inventory.get_hosts("all")]
        except AnsibleError as exc:
            patterns[pattern] = {"error": str(exc).splitlines()[0]}
        finally:
            inventory.subset(None)
            inventory.clear_pattern_cache()
    return {
        "hosts": [h.name for h in hosts],
        "groups": groups,
        "vars": host_vars,
        "patterns": patterns,
        "stable": stable,
    }


def main() -> None:
    cases = json.load(sys.stdin)
    json.dump([answer(case) for case in cases], sys.stdout)


if __name__ == "__main__":
    main()
