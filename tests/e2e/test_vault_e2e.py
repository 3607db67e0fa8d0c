"""A deploy whose release cookie comes from a vault-encrypted group_vars file, through
``{{ }}`` references; the cookie is a secret everywhere (never in output or the ledger)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rollout.playbook import load_playbook
from rollout_lab import Lab, control
from rollout_lab.testing import clean_lab_fixture, lab_fixture  # noqa: F401

from ..fault import faults
from .cli import CLI, PLAYBOOK

pytestmark = pytest.mark.e2e
LAB_HOSTS = 2
PHASE1 = load_playbook(PLAYBOOK).phase(1).state.as_dict()
PASSWORD = "e2e-vault-password"


def _vaulted_inventory(lab: Lab, tmp: Path) -> tuple[Path, Path, list[str]]:
    """hosts.yml whose release_env says RELEASE_COOKIE: "{{ vault_cookie_hN }}", and a
    group_vars/foundation.yml holding those cookies, encrypted with ansible-vault's format."""
    vault = pytest.importorskip("ansible.parsing.vault")
    cookies = {h.name: faults.cookie(h) for h in lab.hosts}
    data = yaml.safe_load(lab.inventory.read_text())
    for name, host in data["all"]["children"]["foundation"]["hosts"].items():
        host["release_env"] = {"RELEASE_COOKIE": f"{{{{ vault_cookie_{name} }}}}"}
    inv = tmp / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "hosts.yml").write_text(yaml.safe_dump(data))
    plain = yaml.safe_dump({f"vault_cookie_{n}": c for n, c in cookies.items()}).encode()
    lib = vault.VaultLib([("default", vault.VaultSecret(PASSWORD.encode()))])
    (inv / "group_vars" / "foundation.yml").write_bytes(lib.encrypt(plain))
    password = tmp / "vault-pass"
    password.write_text(PASSWORD + "\n")
    password.chmod(0o600)
    return inv / "hosts.yml", password, list(cookies.values())


def test_deploy_with_the_cookie_from_a_vault_file(clean_lab: Lab, tmp_path: Path) -> None:
    """--vault-password-file decrypts group_vars/foundation.yml; the console works with the
    decrypted cookie on every host, and no cookie reaches stdout, stderr or the ledger."""
    inventory, password, cookies = _vaulted_inventory(clean_lab, tmp_path)
    cli = CLI(inventory, tmp_path / "ledger.db")
    ran = cli(
        "deploy", "--phase", "1", "--yes", "--no-wait", "--vault-password-file", str(password)
    )
    assert ran.code == 0, ran.stdout + ran.stderr
    assert ran.stdout.count("verified at Phase 1") == LAB_HOSTS
    assert all(control.read_flags(h) == PHASE1 for h in clean_lab.hosts)
    ledger = b"".join(p.read_bytes() for p in tmp_path.glob("ledger.db*"))
    for cookie in cookies:
        assert cookie not in ran.stdout + ran.stderr
        assert cookie.encode() not in ledger
    env = {"ANSIBLE_VAULT_PASSWORD_FILE": str(password)}
    status = CLI(inventory, tmp_path / "ledger.db", env=env)("status")
    assert status.code == 0 and "recorded phase 1" in status.stdout, status.stdout + status.stderr


def test_vault_data_without_a_password_stops_before_any_host(
    clean_lab: Lab, tmp_path: Path
) -> None:
    """No password: an error naming the encrypted file, and no host is touched."""
    inventory, _password, _cookies = _vaulted_inventory(clean_lab, tmp_path)
    before = [control.read_flags(h) for h in clean_lab.hosts]
    ran = CLI(inventory, tmp_path / "ledger.db")("deploy", "--phase", "1", "--yes", "--no-wait")
    assert ran.code != 0
    assert "group_vars/foundation.yml:1" in ran.stdout + ran.stderr
    assert "no vault password" in ran.stdout + ran.stderr
    assert [control.read_flags(h) for h in clean_lab.hosts] == before
