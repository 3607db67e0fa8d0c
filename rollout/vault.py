"""Ansible Vault: decrypt vault-encrypted vars files and inline ``!vault`` values.

The format (``$ANSIBLE_VAULT;1.1;AES256`` / ``1.2`` with a vault id: PBKDF2-SHA256, AES-256-CTR,
HMAC-SHA256) is Ansible's own, so rollout uses Ansible's own implementation,
``ansible.parsing.vault.VaultLib`` from ansible-core, imported only when an inventory holds
vault data: an inventory without vault data never imports it, and an installation that never
meets vault data does not need it (``pip install 'rollout[vault]'`` brings it). A second
implementation of the cipher would be one more place for a subtle mistake; ansible-core's
is the reference every vault file was written with.

The password comes from ``--vault-password-file`` or ``$ANSIBLE_VAULT_PASSWORD_FILE``: the
file's content, trailing whitespace stripped, as Ansible reads it. An executable password file
(Ansible's "client script") is refused: rollout runs no local program to get a password.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InventoryError, SourceLocation

__all__ = ["VAULT_HEADER", "Vault", "is_vault_text", "vault_password_file"]

VAULT_HEADER = "$ANSIBLE_VAULT;"


def is_vault_text(text: str) -> bool:
    return text.lstrip().startswith(VAULT_HEADER)


def vault_password_file(option: str | None) -> str | None:
    """``--vault-password-file``, else ``$ANSIBLE_VAULT_PASSWORD_FILE``, else none."""
    return option or os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE") or None


_NO_PASSWORD_HINT = (
    "pass --vault-password-file FILE or set ANSIBLE_VAULT_PASSWORD_FILE, as for ansible"
)


@dataclass
class Vault:
    """Decrypts with the password in ``password_file`` (None: no password given)."""

    password_file: str | None = None
    _lib: Any = field(default=None, repr=False)

    def _vault_lib(self, loc: SourceLocation) -> Any:
        if self._lib is not None:
            return self._lib
        if self.password_file is None:
            what = "this file is" if loc.line == 1 and loc.key is None else "this !vault value is"
            raise InventoryError(
                f"{what} encrypted with Ansible Vault and no vault password was given",
                location=loc,
                hint=_NO_PASSWORD_HINT,
            )
        path = Path(self.password_file).expanduser()
        try:
            mode = path.stat().st_mode
            if not stat.S_ISREG(mode):
                raise OSError("not a regular file")
            if mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
                raise InventoryError(
                    "the vault password file is executable",
                    location=SourceLocation(str(path)),
                    hint="rollout runs no password script; write the password to a plain "
                    "file (mode 0600) and pass that",
                )
            password = path.read_bytes().rstrip()
        except OSError as exc:
            raise InventoryError(
                f"cannot read the vault password file: {exc.strerror or exc}",
                location=SourceLocation(str(path)),
                hint=_NO_PASSWORD_HINT,
            ) from None
        if not password:
            raise InventoryError(
                "the vault password file is empty",
                location=SourceLocation(str(path)),
                hint=_NO_PASSWORD_HINT,
            )
        try:
            from ansible.parsing.vault import VaultLib, VaultSecret
        except ImportError:
            raise InventoryError(
                "decrypting Ansible Vault data needs ansible-core, which is not installed",
                location=loc,
                hint="pip install 'rollout[vault]' (or ansible-core) into rollout's environment",
            ) from None
        self._lib = VaultLib([("default", VaultSecret(password))])
        return self._lib

    def decrypt(self, ciphertext: str, loc: SourceLocation) -> str:
        """The plaintext of ``ciphertext``; an InventoryError naming ``loc`` if it fails."""
        lib = self._vault_lib(loc)
        try:
            plain = lib.decrypt(ciphertext.strip().encode("ascii"))
        except Exception as exc:  # ansible raises AnsibleError and its subclasses
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InventoryError(
                f"cannot decrypt this Ansible Vault data: {first}",
                location=loc,
                hint="check the vault password (and vault id) it was encrypted with",
            ) from None
        try:
            return bytes(plain).decode("utf-8")
        except UnicodeDecodeError:
            raise InventoryError(
                "decrypted Ansible Vault data is not UTF-8 text", location=loc
            ) from None
