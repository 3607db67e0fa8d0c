"""``group_vars/`` and ``host_vars/``: Ansible's vars files beside the inventory, Vault-aware."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from ..errors import InputError, InventoryError, SourceLocation
from ..vault import Vault, is_vault_text
from ..yamlsrc import Node, load_text
from .builder import Vars, fail, set_var, show
from .sources import MAX_DIR_DEPTH, read_text

_VARS_SUFFIXES = ("", ".yml", ".yaml", ".json")
#: Size cap of one vars file.
MAX_VARS_BYTES = 1_000_000


def _vars_files(root: Path, name: str) -> list[Path]:
    """Ansible's ``find_vars_files``: the first of ``<name>`` (a file, or a directory read
    whole), ``<name>.yml``, ``<name>.yaml``, ``<name>.json`` that exists; only that one."""
    for suffix in _VARS_SUFFIXES:
        candidate = root / f"{name}{suffix}"
        if candidate.is_dir():
            if suffix == "":
                return _walk_vars_dir(candidate, 0)
            continue
        if candidate.exists():
            return [candidate]
    return []


def _walk_vars_dir(directory: Path, depth: int) -> list[Path]:
    if depth > MAX_DIR_DEPTH:
        fail(
            "vars directory nests too deeply",
            SourceLocation(str(directory)),
            "flatten group_vars/ and host_vars/ (or look for a symlink loop)",
        )
    found: list[Path] = []
    for entry in sorted(directory.iterdir(), key=lambda p: os.fsencode(p.name)):
        if entry.name.startswith(".") or entry.name.endswith("~"):
            continue
        ext = os.path.splitext(entry.name)[1]  # case-sensitive, as Ansible: 30.YML is skipped
        if entry.is_dir():
            if not ext:  # conf.d/ is skipped
                found.extend(_walk_vars_dir(entry, depth + 1))
        elif entry.is_file() and ext in _VARS_SUFFIXES:
            found.append(entry)
    return found


def load_vars_files(root: Path, name: str, vault: Vault) -> Vars:
    merged: Vars = {}
    for path in _vars_files(root, name):
        text = read_text(path, MAX_VARS_BYTES)
        secret = is_vault_text(text)
        if secret:  # decrypted whole, as Ansible does, even if no value of it is used
            text = vault.decrypt(text, SourceLocation(str(path), 1))
        try:
            data = load_text(text, str(path))
        except InputError as exc:
            raise InventoryError(
                exc.message.removeprefix(f"{exc.location}: ") if exc.location else exc.message,
                location=exc.location,
                hint=exc.hint or "fix the YAML at that line (indentation, brackets, quotes)",
            ) from None
        if data is None:
            continue
        if not isinstance(data, Node):
            fail(
                f"a vars file must be a mapping of variable names, got {show(data)}",
                SourceLocation(str(path), getattr(data, "line", 1)),
                "write `name: value` lines at the top level",
            )
        for key, value in data.items():
            set_var(merged, str(key), value, data.loc(key))
            if secret:
                merged[str(key)] = replace(merged[str(key)], secret=True)
    return merged
