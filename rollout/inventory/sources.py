"""Where an inventory's hosts come from: one file, or a directory walked as Ansible walks it;
each file is read as YAML or INI as Ansible's plugins would pick.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import InputError, SourceLocation
from ..yamlsrc import read_input
from .builder import Builder, fail
from .ini_source import parse_ini
from .yaml_source import parse_yaml

_YAML_SUFFIXES = (".yml", ".yaml", ".json")
# ansible-core 2.19's INVENTORY_IGNORE_EXTS: files it skips when the inventory is a directory
# (case-sensitive; .ini files are read).
_DIR_IGNORED_SUFFIXES = (
    ".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg", ".retry",
)  # fmt: skip
_DIR_SKIPPED_NAMES = ("group_vars", "host_vars", "vars_plugins")
#: Size cap of an inventory file (a few thousand hosts fit in well under this).
MAX_INVENTORY_BYTES = 10_000_000
#: How deep an inventory directory or a vars directory may nest.
MAX_DIR_DEPTH = 8
_YAML_FIRST_LINE_RE = re.compile(r"^(?:---|[^\s\[=#;:]+:(?:\s.*)?)$")


def _looks_like_yaml(text: str) -> bool:
    for raw in text.splitlines():
        line = raw.strip()
        if line and line[0] not in "#;":
            return bool(_YAML_FIRST_LINE_RE.match(line))
    return False


def read_text(path: Path, max_bytes: int = MAX_INVENTORY_BYTES) -> str:
    """A regular file's text, capped at ``max_bytes`` (FIFOs and devices are refused)."""
    try:
        return read_input(path, max_bytes)
    except InputError as exc:
        message = exc.message.removeprefix(f"{path}: ")
        if message == "no such file":
            fail(message, SourceLocation(str(path)), "check the inventory path")
        fail(message, SourceLocation(str(path)), exc.hint or "check the file's permissions")


def parse_source(path: Path, builder: Builder) -> None:
    text = read_text(path)
    file = str(path)
    if text.startswith("#!"):
        fail(
            "dynamic inventory scripts are not supported",
            SourceLocation(file, 1),
            "export the hosts to a static YAML or INI inventory",
        )
    if path.suffix == ".toml":
        fail(
            "TOML inventories are not supported",
            SourceLocation(file, 1),
            "convert it to a YAML or INI inventory",
        )
    # Ansible's yaml plugin takes .yml/.yaml/.json and files without an extension; the ini
    # plugin takes the rest
    if path.suffix in _YAML_SUFFIXES or (not path.suffix and _looks_like_yaml(text)):
        parse_yaml(text, file, builder)
    else:
        parse_ini(text, file, builder)


def source_files(path: Path, depth: int = 0) -> list[Path]:
    """Ansible's directory walk: sorted by name, subdirectories recursed, hidden files,
    ``group_vars``/``host_vars``/``vars_plugins`` and INVENTORY_IGNORE_EXTS skipped."""
    if not path.is_dir():
        return [path]
    if depth > MAX_DIR_DEPTH:
        fail(
            "inventory directory nests too deeply",
            SourceLocation(str(path)),
            "flatten the inventory directory (or look for a symlink loop)",
        )
    found: list[Path] = []
    for entry in sorted(path.iterdir(), key=lambda p: os.fsencode(p.name)):
        if entry.name.startswith(".") or entry.name in _DIR_SKIPPED_NAMES:
            continue
        if entry.name.endswith(_DIR_IGNORED_SUFFIXES):
            continue
        found.extend(source_files(entry, depth + 1) if entry.is_dir() else [entry])
    if not found and depth == 0:
        fail(
            "the inventory directory holds no inventory files",
            SourceLocation(str(path)),
            "add a .yml or .ini inventory to it",
        )
    return found
