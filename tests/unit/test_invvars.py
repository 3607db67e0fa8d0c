"""Inventory variables the way Ansible shops write them: {{ }} lookups and Ansible Vault."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rollout.errors import InventoryError
from rollout.inventory import load_inventory
from rollout.inventory.references import TemplateRefused, render
from rollout.models import Host
from rollout.vault import Vault

PASSWORD = "unit-vault-password"


def _encrypt(text: str) -> str:
    vault = pytest.importorskip("ansible.parsing.vault")
    lib = vault.VaultLib([("default", vault.VaultSecret(PASSWORD.encode()))])
    return str(lib.encrypt(text.encode()).decode())


def _password(tmp_path: Path) -> str:
    path = tmp_path / "pw"
    path.write_text(PASSWORD + "\n")
    return str(path)


def load(tmp_path: Path, text: str, vault: Vault | None = None) -> dict[str, Host]:
    (tmp_path / "hosts.yml").write_text(text)
    return {h.name: h for h in load_inventory(tmp_path / "hosts.yml", vault=vault).hosts}


def test_references_resolve_with_native_types_and_text() -> None:
    """A lone reference keeps the type; references inside text join as text; keys and items."""
    values = {"port": 2200, "env": "prod", "paths": {"bin": "/opt/x"}, "hosts": ["a", "b"]}

    def lookup(name: str) -> tuple[object, bool]:
        return values[name], name == "env"

    assert render("{{ port }}", lookup) == (2200, False)
    assert render("w1.{{ env }}.example.com", lookup) == ("w1.prod.example.com", True)
    assert render("{{ paths.bin }}/{{ hosts[1] }}", lookup) == ("/opt/x/b", False)
    assert render({"A": "{{ paths['bin'] }}"}, lookup) == ({"A": "/opt/x"}, False)


@pytest.mark.parametrize(
    "text",
    [
        "{{ cookie | default('x') }}",
        "{{ lookup('pipe', 'id') }}",
        "{% if x %}a{% endif %}",
        "{{ port + 1 }}",
        "{# comment #}",
        "{{ port }",
    ],
)
def test_anything_but_a_lookup_is_refused(text: str) -> None:
    """Filters, calls, statements, arithmetic and broken braces are errors, never run."""
    with pytest.raises(TemplateRefused):
        render(text, lambda name: (1, False))


def test_a_reference_to_a_missing_variable_names_file_line_and_key(tmp_path: Path) -> None:
    """An undefined name fails the load at the line of the value that uses it."""
    with pytest.raises(InventoryError, match="does not have") as caught:
        load(tmp_path, "all:\n  hosts:\n    w1:\n      service: '{{ nope }}'\n")
    assert caught.value.location is not None
    assert (caught.value.location.line, caught.value.location.key) == (4, "service")


def test_a_reference_loop_is_an_error(tmp_path: Path) -> None:
    """a -> b -> a is refused instead of recursing forever."""
    text = "all:\n  vars: {a: '{{ b }}', b: '{{ a }}', service: '{{ a }}'}\n  hosts: {w1: }\n"
    with pytest.raises(InventoryError, match="loop"):
        load(tmp_path, text)


def test_inline_vault_value_decrypts_and_is_secret_in_errors(tmp_path: Path) -> None:
    """An inline !vault release_env value decrypts; a vaulted bad value is never shown."""
    secret = "cookie-" + "s3cret"
    block = "\n".join("          " + line for line in _encrypt(secret).splitlines())
    text = (
        f"all:\n  hosts:\n    w1:\n      release_env:\n        RELEASE_COOKIE: !vault |\n{block}\n"
    )
    host = load(tmp_path, text, Vault(_password(tmp_path)))["w1"]
    assert dict(host.release_env)["RELEASE_COOKIE"].reveal() == secret
    bad = "bad user!x9"
    block = "\n".join("    " + line for line in _encrypt(bad).splitlines())
    text = f"all:\n  hosts:\n    w1:\n  vars:\n   ansible_user: !vault |\n{block}\n"
    with pytest.raises(InventoryError) as caught:
        load(tmp_path, text, Vault(_password(tmp_path)))
    assert bad not in str(caught.value) and "not shown" in str(caught.value)


def test_wrong_password_and_executable_password_file_are_refused(tmp_path: Path) -> None:
    """A wrong password names the vault file; a password script is not run."""
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text(_encrypt("service: foundation@v\n"))
    wrong = tmp_path / "wrong"
    wrong.write_text("not-it\n")
    with pytest.raises(InventoryError, match="cannot decrypt") as caught:
        load(tmp_path, "all:\n  hosts: {w1: }\n", Vault(str(wrong)))
    assert caught.value.location is not None
    assert caught.value.location.file.endswith("group_vars/all.yml")
    script = tmp_path / "script"
    script.write_text(f"#!/bin/sh\necho {PASSWORD}\n")
    script.chmod(0o700)
    with pytest.raises(InventoryError, match="executable"):
        load(tmp_path, "all:\n  hosts: {w1: }\n", Vault(str(script)))
    assert (
        load(tmp_path, "all:\n  hosts: {w1: }\n", Vault(_password(tmp_path)))["w1"].service
        == "foundation@v"
    )


def test_inventories_without_vault_data_never_import_ansible(tmp_path: Path) -> None:
    """ansible-core is imported only when vault data must be decrypted."""
    code = (
        "import sys; from rollout.inventory import load_inventory; "
        f"load_inventory({str(tmp_path / 'hosts.yml')!r}); print('ansible' in sys.modules)"
    )
    (tmp_path / "hosts.yml").write_text(
        "all:\n  hosts: {w1: {service: '{{ s }}'}}\n  vars: {s: x}\n"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
