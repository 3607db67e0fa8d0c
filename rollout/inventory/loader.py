"""Load Ansible-style inventories into :class:`~rollout.models.Inventory`.

Reads Ansible's YAML inventory (``all: {hosts, vars, children}``), its INI inventory
(``[group]``, ``[group:vars]``, ``[group:children]``, host ranges such as ``web[01:10]``), a
directory of such files, and the ``group_vars/`` and ``host_vars/`` directories beside them.
Variables merge as Ansible merges them, lowest first, the whole value replaced (no deep merge):

1. inline vars of ``all``, then of the host's other groups, shallow before deep (same depth:
   ``ansible_group_priority``, then group name);
2. ``group_vars/all``, then ``group_vars/<group>`` in the same group order;
3. inline host vars, then ``host_vars/<host>``.

The merged variables become a :class:`~rollout.models.Host`; everything rollout does not use is
accepted and ignored, so an operator's existing Ansible inventory loads. Every problem is an
:class:`~rollout.errors.InventoryError` naming the file, line and key. Host patterns live in
:mod:`rollout.hostpattern`; :func:`select_hosts` is re-exported here for callers.
"""

from __future__ import annotations

import ast
import difflib
import ipaddress
import os
import re
import shlex
import string
import unicodedata
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import NoReturn, TypedDict

from ..errors import InputError, InventoryError, SourceLocation
from ..models import Host, Inventory, Jump, Secret
from ..sshopts import (
    ARG_VARIABLES,
    ClientConfig,
    load_client_config,
    parse_ssh_args,
    proxy_command_hops,
    resolve_jumps,
)
from ..vault import Vault, is_vault_text
from ..yamlsrc import Node, NodeList, VaultText, load_text, read_input
from .patterns import select_hosts
from .references import TemplateRefused, has_template, render

__all__ = ["load_inventory", "select_hosts"]

# Checked with fullmatch(): "$" alone would accept a trailing newline.
HOST_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
GROUP_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
ENV_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
REMOTE_PATH_RE = re.compile(r"^/[A-Za-z0-9._/+-]+$")
SERVICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@._-]*$")
USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._@-]*$")
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_DNS_NAME_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?$")

_YAML_SUFFIXES = (".yml", ".yaml", ".json")
_VARS_SUFFIXES = ("", ".yml", ".yaml", ".json")
# ansible-core 2.19's INVENTORY_IGNORE_EXTS: files it skips when the inventory is a directory
# (case-sensitive; .ini files are read).
_DIR_IGNORED_SUFFIXES = (
    ".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg", ".retry",
)  # fmt: skip
_DIR_SKIPPED_NAMES = ("group_vars", "host_vars", "vars_plugins")
_STRUCTURE_KEYS = ("hosts", "vars", "children")
_INI_SECTION_KINDS = ("hosts", "vars", "children")
_MAX_RANGE_HOSTS = 10_000
#: Size caps: an inventory file (a few thousand hosts fit in well under this), a vars file.
MAX_INVENTORY_BYTES = 10_000_000
MAX_VARS_BYTES = 1_000_000
#: The inventory variable (under ``all: vars``) that names the fleet in the ledger.
FLEET_VAR = "rollout_fleet"
#: A plain name, or a path-like key (a moved inventory keeps its record by naming its old
#: derived key, e.g. ``inventory/eu/prod.yml``).
FLEET_NAME_RE = re.compile(r"[A-Za-z0-9/][A-Za-z0-9._/-]{0,255}")
_VARS_DIR_DEPTH = 8
# Our own variable names, long enough that a near miss is a typo rather than another variable.
_TYPO_GUARDED = (
    "release_bin", "release_env", "known_hosts_file", "restart_command", "state_paths",
    "rollout_state_dir",
    FLEET_VAR,
)  # fmt: skip
#: What marks a project root, for the path-derived fleet identity (see :func:`fleet_identity`).
_ROOT_MARKERS = ("tasks.py", ".git")

_INI_SECTION_RE = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_INI_CHILD_RE = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")
_YAML_FIRST_LINE_RE = re.compile(r"^(?:---|[^\s\[=#;:]+:(?:\s.*)?)$")


def _fail(message: str, location: SourceLocation | None, hint: str | None = None) -> NoReturn:
    raise InventoryError(message, location=location, hint=hint)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class _Value:
    """A variable's value and where it was set."""

    value: object
    loc: SourceLocation
    secret: bool = False  # from Ansible Vault (or rendered from a vault value)


_Vars = dict[str, _Value]


def _shown(value: _Value, shown: object) -> str:
    """``shown`` for an error message, unless the value came from Ansible Vault."""
    return "(a vault value, not shown)" if value.secret else _show(shown)


@dataclass
class _Group:
    """A group while the inventory is being read."""

    name: str
    loc: SourceLocation
    vars: _Vars = field(default_factory=dict)
    children: dict[str, SourceLocation] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)


@dataclass
class _HostDef:
    """A host while the inventory is being read; ``vars`` are its inline vars."""

    name: str
    loc: SourceLocation
    vars: _Vars = field(default_factory=dict)


class _Builder:
    """Collects groups, hosts and inline vars from one or more inventory sources."""

    def __init__(self) -> None:
        implicit = SourceLocation("<implicit>")
        self.groups: dict[str, _Group] = {n: _Group(n, implicit) for n in ("all", "ungrouped")}
        self.groups["all"].children["ungrouped"] = implicit  # as Ansible's InventoryData
        self.hosts: dict[str, _HostDef] = {}

    def group(self, name: str, loc: SourceLocation) -> _Group:
        if not GROUP_NAME_RE.fullmatch(name):
            _fail(
                f"group name {name!r} is not allowed",
                loc,
                "use letters, digits, '_' and '-', starting with a letter or '_'",
            )
        if name not in self.groups:
            self.groups[name] = _Group(name, loc)
        return self.groups[name]

    def add_child(self, parent: str, child: str, loc: SourceLocation) -> _Group:
        if child == "all":
            _fail(
                f"group 'all' cannot be a child of {parent!r}",
                loc,
                "'all' already holds every host; remove it from the children",
            )
        group = self.group(child, loc)
        self.groups[parent].children.setdefault(child, loc)
        return group

    def add_host(
        self, name: str, loc: SourceLocation, group: str, port: int | None = None
    ) -> _HostDef:
        """Add ``name`` to ``group``; ``name:port`` sets the port only where the host is first
        declared (Ansible's ``Host(name, port)``): a later ``h1:4444`` does not move it."""
        host = self.hosts.get(name)
        if host is None:
            host = self.hosts[name] = _HostDef(name, loc)
            if port is not None:
                _set_var(host.vars, "ansible_port", port, loc)
        members = self.groups[group].hosts
        if name not in members:
            members.append(name)
        return host


def _set_var(target: _Vars, key: str, value: object, loc: SourceLocation) -> None:
    if key not in _TYPO_GUARDED:
        close = difflib.get_close_matches(key, _TYPO_GUARDED, n=1, cutoff=0.88)
        if close:
            _fail(f"unknown variable {key!r}", loc, f"did you mean {close[0]!r}?")
    target[key] = _Value(value, loc)


# --- host names and ranges -------------------------------------------------------------------


def _split_port(token: str, loc: SourceLocation) -> tuple[str, int | None]:
    """``web1:2222`` -> ("web1", 2222); colons inside ``[...]`` ranges do not count."""
    depth, cut = 0, -1
    for i, ch in enumerate(token):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == ":" and depth == 0:
            cut = i
    if cut < 0:
        return token, None
    port = token[cut + 1 :]
    if not port.isdigit():
        _fail(
            f"host {token!r}: expected a port number after ':', got {port!r}",
            loc,
            "write name:port (web1:2222) or set ansible_port",
        )
    return token[:cut], int(port)


def _expand_ranges(name: str, loc: SourceLocation) -> list[str]:
    """Expand Ansible host ranges: ``web[01:03]`` -> web01 web02 web03; ``db-[a:c]``."""
    start = name.find("[")
    if start < 0:
        return [name]
    end = name.find("]", start)
    if end < 0:
        _fail(f"host range in {name!r} has no closing ']'", loc, "write it like web[01:10]")
    head, spec, tail = name[:start], name[start + 1 : end], name[end + 1 :]
    bounds = spec.split(":")
    hint = "write a range as [01:10], [a:f] or [1:10:2] (begin:end[:step])"
    if len(bounds) not in (2, 3) or not bounds[1]:
        _fail(f"host range [{spec}] in {name!r} must be begin:end or begin:end:step", loc, hint)
    beg, stop = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not step_text.isdigit() or int(step_text) < 1:
        _fail(f"host range [{spec}] in {name!r}: step must be a positive integer", loc, hint)
    step = int(step_text)
    letters = string.ascii_letters
    seq: list[str]
    if len(beg) == 1 and len(stop) == 1 and beg in letters and stop in letters:
        if letters.index(beg) > letters.index(stop):
            _fail(f"host range [{spec}] in {name!r}: begin is after end", loc, hint)
        seq = list(letters[letters.index(beg) : letters.index(stop) + 1 : step])
    elif beg.isdigit() and stop.isdigit():
        if max(len(beg), len(stop)) > 9:
            _fail(f"host range [{spec}] in {name!r} is too large", loc, hint)
        width = len(beg) if beg.startswith("0") and len(beg) > 1 else 0
        if width and len(stop) != width:
            _fail(
                f"host range [{spec}] in {name!r}: zero-padded begin and end need equal length",
                loc,
                hint,
            )
        if int(beg) > int(stop):
            _fail(f"host range [{spec}] in {name!r}: begin is after end", loc, hint)
        if (int(stop) - int(beg)) // step >= _MAX_RANGE_HOSTS:
            _fail(f"host range [{spec}] in {name!r} is too large", loc, hint)
        seq = [str(n).zfill(width) for n in range(int(beg), int(stop) + 1, step)]
    else:
        _fail(f"host range [{spec}] in {name!r} must be two numbers or two letters", loc, hint)
    tails = _expand_ranges(tail, loc)
    if len(seq) * len(tails) > _MAX_RANGE_HOSTS:
        _fail(f"host ranges in {name!r} expand to too many hosts", loc, hint)
    return [head + s + t for s in seq for t in tails]


def _host_names(token: str, loc: SourceLocation) -> tuple[list[str], int | None]:
    """A host entry (name, range, optional ``:port``) -> validated names and the port."""
    if not token:
        _fail("empty host name", loc, "give every host a name")
    base, port = _split_port(token, loc)
    names = _expand_ranges(base, loc)
    for name in names:
        if not HOST_NAME_RE.fullmatch(name):
            hint = "use letters, digits, '.', '_' and '-', starting with a letter or digit"
            if "=" in name:
                hint = "variables for a group go in a [group:vars] section"
            _fail(f"host name {name!r} is not allowed", loc, hint)
    return names, port


# --- YAML ------------------------------------------------------------------------------------


def _parse_yaml(text: str, file: str, builder: _Builder) -> None:
    try:
        data = load_text(text, file)
    except InventoryError:
        raise
    except InputError as exc:
        message = exc.message.removeprefix(f"{exc.location}: ") if exc.location else exc.message
        hint = exc.hint or "fix the YAML at that line (indentation, brackets, quotes)"
        raise InventoryError(message, location=exc.location, hint=hint) from None
    if data is None:
        return
    if not isinstance(data, Node):
        _fail(
            "a YAML inventory must be a mapping of group names",
            SourceLocation(file, getattr(data, "line", 1)),
            "start the file with `all:` and put hosts:, vars: and children: under it",
        )
    if "plugin" in data and not isinstance(data["plugin"], (Node, type(None))):
        _fail(
            "inventory plugins (plugin: ...) are not supported",
            data.loc("plugin"),
            "export the hosts to a static YAML or INI inventory",
        )
    for name in data:
        if name in _STRUCTURE_KEYS:
            _fail(
                f"{name!r} at the top level: the top level lists groups",
                data.loc(name),
                f"start the file with `all:` and indent {name}: under it",
            )
        builder.group(name, data.loc(name))
        _yaml_group(builder, name, data[name], data.loc(name), name)


def _yaml_group(builder: _Builder, name: str, body: object, loc: SourceLocation, path: str) -> None:
    if body is None:
        return
    if not isinstance(body, Node):
        _fail(
            f"group {name!r} must be a mapping with hosts:, vars: or children:, got {_show(body)}",
            loc,
            "write `web: {hosts: {web1: null}}` or leave the group empty (`web:`)",
        )
    for key in body:
        if key not in _STRUCTURE_KEYS:
            close = difflib.get_close_matches(key, _STRUCTURE_KEYS, n=1, cutoff=0.6)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else f"a group holds only hosts:, vars: and children:; move {key!r} under one"
            )
            _fail(f"unexpected key {key!r} in group {name!r}", body.loc(key, f"{path}.{key}"), hint)
    hosts = body.get("hosts")
    if hosts is not None:
        hosts_loc = body.loc("hosts", f"{path}.hosts")
        if not isinstance(hosts, Node):
            _fail(
                f"hosts of group {name!r} must be a mapping of host names, got {_show(hosts)}",
                hosts_loc,
                "write each host as a key: `hosts: {web1: null, web2: {ansible_port: 2222}}`",
            )
        for token in hosts:
            host_loc = hosts.loc(token, f"{path}.hosts.{token}")
            names, port = _host_names(token, host_loc)
            hvars = hosts[token]
            if hvars is not None and not isinstance(hvars, Node):
                _fail(
                    f"host {token!r} must map to its variables or be empty, got {_show(hvars)}",
                    host_loc,
                    f"write `{token}: {{ansible_host: ...}}` or `{token}:` with nothing after it",
                )
            for hname in names:
                host = builder.add_host(hname, host_loc, name, port)
                if isinstance(hvars, Node):
                    for key, value in hvars.items():
                        _set_var(host.vars, str(key), value, hvars.loc(key))
    group_vars = body.get("vars")
    if group_vars is not None:
        if not isinstance(group_vars, Node):
            _fail(
                f"vars of group {name!r} must be a mapping, got {_show(group_vars)}",
                body.loc("vars", f"{path}.vars"),
                "write `vars: {ansible_user: deploy}`",
            )
        for key, value in group_vars.items():
            _set_var(builder.groups[name].vars, str(key), value, group_vars.loc(key))
    children = body.get("children")
    if children is not None:
        if not isinstance(children, Node):
            _fail(
                f"children of group {name!r} must be a mapping of group names, "
                f"got {_show(children)}",
                body.loc("children", f"{path}.children"),
                "write `children: {web: null, db: null}` or nest each group's hosts: under it",
            )
        for child in children:
            child_loc = children.loc(child, f"{path}.children.{child}")
            builder.add_child(name, child, child_loc)
            _yaml_group(builder, child, children[child], child_loc, f"{path}.children.{child}")


# --- INI -------------------------------------------------------------------------------------


def _ini_value(text: str) -> object:
    """Ansible's INI value rule: a Python literal if it parses as one, else the text."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _parse_ini(text: str, file: str, builder: _Builder) -> None:
    declared = set(builder.groups)  # groups an earlier source already defined
    pending_vars: dict[str, SourceLocation] = {}
    pending_children: dict[str, tuple[str, SourceLocation]] = {}
    kind, group = "hosts", "ungrouped"
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        loc = SourceLocation(file, lineno)
        if line.startswith("["):
            match = _INI_SECTION_RE.match(line)
            if not match:
                _fail(
                    f"invalid section header {line!r}",
                    SourceLocation(file, lineno, line),
                    "write [group], [group:vars] or [group:children], with no spaces",
                )
            group, kind = match.group(1), match.group(2) or "hosts"
            section_loc = SourceLocation(file, lineno, f"[{match.group(1)}:{kind}]")
            if kind not in _INI_SECTION_KINDS:
                close = difflib.get_close_matches(kind, _INI_SECTION_KINDS, n=1, cutoff=0.5)
                hint = (
                    f"did you mean [{group}:{close[0]}]?"
                    if close
                    else (f"use [{group}], [{group}:vars] or [{group}:children]")
                )
                _fail(f"unknown section type {kind!r}", section_loc, hint)
            builder.group(group, section_loc)
            if kind == "vars":
                if group not in declared:
                    pending_vars.setdefault(group, section_loc)
            else:
                declared.add(group)
            continue
        if kind == "hosts":
            _ini_host_line(line, loc, group, builder)
        elif kind == "vars":
            key, sep, value = line.partition("=")
            key = key.strip()
            if not sep or not key:
                _fail(
                    f"expected key=value in [{group}:vars], got {_show(line)}",
                    SourceLocation(file, lineno, key or line),
                    "hosts go in a [group] section; this section holds variables only",
                )
            var_loc = SourceLocation(file, lineno, key)
            _set_var(builder.groups[group].vars, key, _ini_value(value.strip()), var_loc)
        else:
            match = _INI_CHILD_RE.match(line)
            if not match:
                _fail(
                    f"expected a group name in [{group}:children], got {_show(line)}",
                    SourceLocation(file, lineno, line),
                    f"list one group per line; hosts go in [{group}]",
                )
            child = match.group(1)
            child_loc = SourceLocation(file, lineno, child)
            builder.add_child(group, child, child_loc)
            pending_children.setdefault(child, (group, child_loc))
    for name, (parent, loc) in pending_children.items():
        if name not in declared:
            _fail(
                f"[{parent}:children] includes {name!r}, which has no [{name}] section",
                loc,
                f"add a [{name}] section listing its hosts, or fix the group name",
            )
    for name, loc in pending_vars.items():
        if name not in declared:
            _fail(
                f"[{name}:vars] is for a group that has no [{name}] or [{name}:children] section",
                loc,
                "fix the group name, or define the group's hosts",
            )


def _ini_host_line(line: str, loc: SourceLocation, group: str, builder: _Builder) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        _fail(
            f"cannot parse host line: {exc}",
            SourceLocation(loc.file, loc.line, line.split()[0]),
            "check the quoting of the values",
        )
    if not tokens:
        return
    token_loc = SourceLocation(loc.file, loc.line, tokens[0])
    names, port = _host_names(tokens[0], token_loc)
    assignments: list[tuple[str, object]] = []
    previous: str | None = None
    for token in tokens[1:]:
        key, sep, text = token.partition("=")
        if not sep or not key:
            if previous == "release_env":
                # most likely the rest of a release_env value split at a space: a secret
                _fail(
                    f"expected key=value after host {tokens[0]!r}, got a word without '=' "
                    "after release_env= (not shown: it may be part of a secret)",
                    SourceLocation(loc.file, loc.line, previous),
                    'quote the whole mapping: release_env=\'{"RELEASE_COOKIE": "..."}\'',
                )
            _fail(
                f"expected key=value after host {tokens[0]!r}, got {token!r}",
                SourceLocation(loc.file, loc.line, token),
                'quote values that contain spaces: key="a b"',
            )
        previous = key
        assignments.append((key, _ini_value(text)))
    for name in names:
        host = builder.add_host(name, token_loc, group, port)
        for key, value in assignments:
            _set_var(host.vars, key, value, SourceLocation(loc.file, loc.line, key))


# --- sources ---------------------------------------------------------------------------------


def _looks_like_yaml(text: str) -> bool:
    for raw in text.splitlines():
        line = raw.strip()
        if line and line[0] not in "#;":
            return bool(_YAML_FIRST_LINE_RE.match(line))
    return False


def _read(path: Path, max_bytes: int = MAX_INVENTORY_BYTES) -> str:
    """A regular file's text, capped at ``max_bytes`` (FIFOs and devices are refused)."""
    try:
        return read_input(path, max_bytes)
    except InputError as exc:
        message = exc.message.removeprefix(f"{path}: ")
        if message == "no such file":
            _fail(message, SourceLocation(str(path)), "check the inventory path")
        _fail(message, SourceLocation(str(path)), exc.hint or "check the file's permissions")


def _parse_source(path: Path, builder: _Builder) -> None:
    text = _read(path)
    file = str(path)
    if text.startswith("#!"):
        _fail(
            "dynamic inventory scripts are not supported",
            SourceLocation(file, 1),
            "export the hosts to a static YAML or INI inventory",
        )
    if path.suffix == ".toml":
        _fail(
            "TOML inventories are not supported",
            SourceLocation(file, 1),
            "convert it to a YAML or INI inventory",
        )
    # Ansible's yaml plugin takes .yml/.yaml/.json and files without an extension; the ini
    # plugin takes the rest
    if path.suffix in _YAML_SUFFIXES or (not path.suffix and _looks_like_yaml(text)):
        _parse_yaml(text, file, builder)
    else:
        _parse_ini(text, file, builder)


def _sources(path: Path, depth: int = 0) -> list[Path]:
    """Ansible's directory walk: sorted by name, subdirectories recursed, hidden files,
    ``group_vars``/``host_vars``/``vars_plugins`` and INVENTORY_IGNORE_EXTS skipped."""
    if not path.is_dir():
        return [path]
    if depth > _VARS_DIR_DEPTH:
        _fail(
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
        found.extend(_sources(entry, depth + 1) if entry.is_dir() else [entry])
    if not found and depth == 0:
        _fail(
            "the inventory directory holds no inventory files",
            SourceLocation(str(path)),
            "add a .yml or .ini inventory to it",
        )
    return found


# --- group_vars/ and host_vars/ --------------------------------------------------------------


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
    if depth > _VARS_DIR_DEPTH:
        _fail(
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


def _load_vars_files(root: Path, name: str, vault: Vault) -> _Vars:
    merged: _Vars = {}
    for path in _vars_files(root, name):
        text = _read(path, MAX_VARS_BYTES)
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
            _fail(
                f"a vars file must be a mapping of variable names, got {_show(data)}",
                SourceLocation(str(path), getattr(data, "line", 1)),
                "write `name: value` lines at the top level",
            )
        for key, value in data.items():
            _set_var(merged, str(key), value, data.loc(key))
            if secret:
                merged[str(key)] = replace(merged[str(key)], secret=True)
    return merged


class _Rendered(Mapping[str, _Value]):
    """A host's merged variables, each rendered when first read: inline ``!vault`` values
    decrypted (secret), ``{{ name }}`` references resolved (:mod:`rollout.templating`)."""

    _MAGIC = ("inventory_hostname", "inventory_hostname_short", "group_names")

    def __init__(self, host: str, groups: frozenset[str], raw: _Vars, vault: Vault) -> None:
        self._host = host
        self._raw = raw
        self._vault = vault
        self._done: dict[str, _Value] = {}
        self._busy: list[str] = []
        names = sorted(g for g in groups if g not in ("all", "ungrouped"))
        self._magic: dict[str, object] = {
            "inventory_hostname": host,
            "inventory_hostname_short": host.split(".")[0],
            "group_names": names,
        }

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __getitem__(self, key: str) -> _Value:
        if key in self._done:
            return self._done[key]
        raw = self._raw[key]
        if key in self._busy:
            chain = " -> ".join([*self._busy[self._busy.index(key) :], key])
            _fail(f"variables refer to each other in a loop: {chain}", raw.loc, "break the loop")
        self._busy.append(key)
        try:
            value, secret = self._decrypt(raw.value, raw.loc)
            if not secret and has_template(value):
                try:
                    value, secret = render(value, self._lookup)
                except TemplateRefused as exc:
                    _fail(
                        f"{key} for host {self._host!r}: {exc}",
                        raw.loc,
                        "write the value itself, or a plain {{ other_variable }} reference",
                    )
        finally:
            self._busy.pop()
        done = self._done[key] = _Value(value, raw.loc, raw.secret or secret)
        return done

    def _lookup(self, name: str) -> tuple[object, bool]:
        if name in self._raw:
            found = self[name]
            return found.value, found.secret
        if name in self._magic:
            return self._magic[name], False
        raise TemplateRefused(f"{{{{ {name} }}}} refers to a variable the host does not have")

    def _decrypt(self, value: object, loc: SourceLocation) -> tuple[object, bool]:
        if isinstance(value, VaultText):
            where = SourceLocation(loc.file, value.line, loc.key)
            return self._vault.decrypt(value.ciphertext, where), True
        if isinstance(value, Mapping) and _holds_vault(value):
            out: dict[object, object] = {}
            secret = False
            for k, v in value.items():
                out[k], s = self._decrypt(v, loc)
                secret = secret or s
            return out, secret
        if isinstance(value, (list, tuple)) and _holds_vault(value):
            items = [self._decrypt(v, loc) for v in value]
            return [v for v, _ in items], any(s for _, s in items)
        return value, False


def _holds_vault(value: object) -> bool:
    if isinstance(value, VaultText):
        return True
    if isinstance(value, Mapping):
        return any(_holds_vault(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_vault(v) for v in value)
    return False


# --- groups: links, depth, membership --------------------------------------------------------


@dataclass(frozen=True)
class _Graph:
    """Each group's depth below ``all`` and its hosts, children included."""

    depth: Mapping[str, int]
    members: Mapping[str, frozenset[str]]


def _link(builder: _Builder) -> _Graph:
    """Apply Ansible's implicit rules (ungrouped hosts, top groups under all); check cycles."""
    groups = builder.groups
    for name, declared in builder.hosts.items():
        if name in groups:
            _fail(
                f"{name!r} is both a host and a group",
                declared.loc,
                "rename one of them: Ansible only warns, then may file the group under "
                "'ungrouped' in the host's place, so the two tools would disagree",
            )
    direct: dict[str, set[str]] = {h: set() for h in builder.hosts}
    for group in groups.values():
        for host in group.hosts:
            direct[host].add(group.name)
    ungrouped = groups["ungrouped"].hosts
    for host, names in direct.items():  # Ansible's reconcile_inventory
        lonely = names <= {"all", "ungrouped"}
        if lonely and host not in ungrouped:
            ungrouped.append(host)
        elif not lonely and host in ungrouped:
            ungrouped.remove(host)
    parents: dict[str, list[str]] = {name: [] for name in groups}
    for group in groups.values():
        for child in group.children:
            parents[child].append(group.name)
    for name, ups in parents.items():
        if name != "all" and not ups:
            groups["all"].children.setdefault(name, groups[name].loc)
            ups.append("all")
    _check_cycles(groups)

    depth: dict[str, int] = {"all": 0}

    def depth_of(name: str) -> int:
        if name not in depth:
            depth[name] = 1 + max(depth_of(p) for p in parents[name])
        return depth[name]

    members: dict[str, frozenset[str]] = {}

    def members_of(name: str) -> frozenset[str]:
        if name not in members:
            found = set(groups[name].hosts)
            for child in groups[name].children:
                found |= members_of(child)
            members[name] = frozenset(found)
        return members[name]

    for name in groups:
        depth_of(name)
        members_of(name)
    members["all"] = frozenset(builder.hosts)
    return _Graph(depth, members)


def _check_cycles(groups: Mapping[str, _Group]) -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for child, loc in groups[name].children.items():
            if state.get(child) == 1:
                cycle = [*path[path.index(child) :], child]
                _fail(
                    f"groups form a cycle: {' -> '.join(cycle)}",
                    loc,
                    f"remove {child!r} from the children of {name!r}",
                )
            if child not in state:
                visit(child)
        path.pop()
        state[name] = 2

    for name in groups:
        if name not in state:
            visit(name)


# --- variables -> Host -----------------------------------------------------------------------


def _group_priority(group: _Group) -> int:
    value = group.vars.get("ansible_group_priority")
    if value is None:
        return 1
    raw = value.value
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        raw = int(raw)
    if not isinstance(raw, int) or isinstance(raw, bool):
        _fail(
            f"ansible_group_priority of group {group.name!r} must be an integer, got {_show(raw)}",
            value.loc,
            "use a number; among groups of the same depth the higher priority wins",
        )
    return raw


def _pick(merged: Mapping[str, _Value], *names: str) -> _Value | None:
    """The last of ``names`` set (not null) wins, as in Ansible's ssh connection options."""
    found = None
    for name in names:
        value = merged.get(name)
        if value is not None and value.value is not None:
            found = value
    return found


def _is_control(char: str) -> bool:
    """Control, format (bidi overrides, zero-width) and line/paragraph separator characters."""
    return unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")


def _text(value: _Value, host: str) -> str:
    """The value as a non-empty, single-line string; else an error naming its key."""
    key = value.loc.key or "value"
    if not isinstance(value.value, str) or not value.value:
        _fail(
            f"{key} for host {host!r} must be a non-empty string, got "
            f"{_shown(value, value.value)}",
            value.loc,
            f"set {key} to a quoted string, or remove it to use the default",
        )
    if any(_is_control(ch) for ch in value.value):
        _fail(
            f"{key} for host {host!r} contains a control character or newline "
            "(or a bidi or zero-width one)",
            value.loc,
            f"write {key} on one line, without escapes like \\n",
        )
    return value.value


def _remote_path(text: str, loc: SourceLocation, host: str) -> str:
    if not REMOTE_PATH_RE.fullmatch(text) or ".." in text.split("/"):
        _fail(
            f"{loc.key} for host {host!r} must be an absolute path of letters, digits and "
            f"._/+- with no '..' segment, got {_show(text)}",
            loc,
            "write a plain absolute path like /opt/foundation/bin/foundation",
        )
    return text


def _local_path(text: str, base_dir: Path) -> str:
    path = Path(os.path.expanduser(text))
    return os.path.normpath(path if path.is_absolute() else base_dir / path)


class _HostFields(TypedDict, total=False):
    """The Host fields an inventory may set; the rest keep :class:`Host`'s defaults."""

    address: str
    port: int
    user: str
    key_file: str
    known_hosts_file: str
    release_bin: str
    release_env: tuple[tuple[str, Secret], ...]
    restart_command: str
    service: str
    state_paths: tuple[str, ...]
    jumps: tuple[Jump, ...]
    rollout_state_dir: str


def _make_host(
    name: str,
    groups: frozenset[str],
    merged: Mapping[str, _Value],
    base: Path,
    client: _Client | None = None,
) -> Host:
    """Map merged variables onto a Host; defaults stay those of :class:`Host`."""
    changes: _HostFields = {}

    value = _pick(merged, "ansible_host", "ansible_ssh_host")
    if value is not None:
        address = _text(value, name)
        if not _is_address(address):
            _fail(
                f"{value.loc.key} for host {name!r} is not a hostname or IP address: "
                f"{_shown(value, address)}",
                value.loc,
                "set it to a DNS name like web1.example.com or an IP like 10.0.0.5",
            )
        changes["address"] = address

    value = _pick(merged, "ansible_port", "ansible_ssh_port")
    if value is not None:
        port = value.value
        if isinstance(port, str) and port.strip().isdigit():
            port = int(port)
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            _fail(
                f"{value.loc.key} for host {name!r} must be an integer 1..65535, "
                f"got {_shown(value, port)}",
                value.loc,
                "SSH listens on 22 unless the host's sshd says otherwise",
            )
        changes["port"] = port

    value = _pick(merged, "ansible_user", "ansible_ssh_user")
    if value is not None:
        user = _text(value, name)
        if not USER_RE.fullmatch(user):
            _fail(
                f"{value.loc.key} for host {name!r} is not a user name: {_shown(value, user)}",
                value.loc,
                "use letters, digits and ._@-, not starting with '-'",
            )
        changes["user"] = user

    value = _pick(merged, "ansible_private_key_file", "ansible_ssh_private_key_file")
    if value is not None:
        changes["key_file"] = _local_path(_text(value, name), base)

    value = _pick(merged, "known_hosts_file")
    if value is not None:
        changes["known_hosts_file"] = _local_path(_text(value, name), base)

    value = _pick(merged, "release_bin")
    if value is not None:
        changes["release_bin"] = _remote_path(_text(value, name), value.loc, name)

    value = _pick(merged, "rollout_state_dir")
    if value is not None:
        changes["rollout_state_dir"] = _remote_path(_text(value, name), value.loc, name)

    value = _pick(merged, "release_env")
    if value is not None:
        changes["release_env"] = _release_env(value, name)

    value = _pick(merged, "restart_command")
    if value is not None:
        changes["restart_command"] = _text(value, name)

    value = _pick(merged, "service")
    if value is not None:
        service = _text(value, name)
        if not SERVICE_RE.fullmatch(service):
            _fail(
                f"service for host {name!r} is not a systemd unit name: {_shown(value, service)}",
                value.loc,
                "use letters, digits and @._-, like foundation or foundation@blue",
            )
        changes["service"] = service

    value = _pick(merged, "state_paths")
    if value is not None:
        changes["state_paths"] = _state_paths(value, name)

    _apply_ssh(name, merged, changes, base, client)
    return replace(Host(name=name, address=name, groups=groups), **changes)


@dataclass(frozen=True)
class _Client:
    """The OpenSSH client config in force and where it came from."""

    config: ClientConfig
    path: str


def _apply_ssh(
    name: str,
    merged: Mapping[str, _Value],
    changes: _HostFields,
    base: Path,
    client: _Client | None,
) -> None:
    """What ``ssh`` would add: options from ``ansible_ssh_*_args``, then the client config,
    each only where the connection variables left the field unset (first value wins)."""
    args = [(v.value, v.loc) for k in ARG_VARIABLES if (v := merged.get(k)) is not None]
    for text, loc in args:
        if not isinstance(text, str):
            _fail(f"{loc.key} for host {name!r} must be a string", loc, "quote the arguments")
    opts = parse_ssh_args([(str(text), loc) for text, loc in args])
    target = changes.get("address", name)
    entry: Mapping[str, object] = client.config.lookup(target) if client else {}

    def from_config(key: str) -> tuple[str, SourceLocation] | None:
        if client is None or key not in entry:
            return None
        raw = entry[key]
        text = str(raw[0]) if isinstance(raw, list) and raw else str(raw)
        return text, SourceLocation(client.path, None, f"Host {target}: {key}")

    def first(key: str) -> tuple[str, SourceLocation] | None:
        return opts.get(key) or from_config(key)

    got = first("hostname")
    if got is not None and got[0] != target:
        if not _is_address(got[0]):
            _fail(f"HostName {_show(got[0])} is not a hostname or IP address", got[1], "fix it")
        changes["address"] = got[0]
    if "port" not in changes and (got := first("port")) is not None:
        if not got[0].isdigit() or not 1 <= int(got[0]) <= 65535:
            _fail(f"Port {_show(got[0])} for host {name!r} is not 1..65535", got[1], "fix it")
        changes["port"] = int(got[0])
    if "user" not in changes and (got := first("user")) is not None:
        if not USER_RE.fullmatch(got[0]):
            _fail(f"User {_show(got[0])} for host {name!r} is not a user name", got[1], "fix it")
        changes["user"] = got[0]
    if "key_file" not in changes and (got := first("identityfile")) is not None:
        changes["key_file"] = _local_path(got[0], base)
    if "known_hosts_file" not in changes and (got := first("userknownhostsfile")) is not None:
        changes["known_hosts_file"] = _local_path(got[0].split()[0], base)

    proxy = opts.proxy
    if proxy is None and client is not None:
        both = [k for k in ("proxyjump", "proxycommand") if k in entry]
        if len(both) == 2:
            _fail(
                f"the ssh client config sets both ProxyJump and ProxyCommand for {target!r}",
                SourceLocation(client.path, None, f"Host {target}"),
                "keep one of them",
            )
        if both and (got := from_config(both[0])) is not None:
            proxy = (both[0], got[0], got[1])
    if proxy is not None:
        kind, spec, loc = proxy
        if kind == "proxycommand":
            spec = proxy_command_hops(
                spec, loc, (changes.get("address", name), changes.get("port", 22))
            )
        changes["jumps"] = resolve_jumps(spec, loc, client.config if client else None)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return bool(_DNS_NAME_RE.fullmatch(text))
    return True


def _release_env(value: _Value, host: str) -> tuple[tuple[str, Secret], ...]:
    env = value.value
    if not isinstance(env, Mapping):
        _fail(
            f"release_env for host {host!r} must be a mapping of NAME: value",
            value.loc,
            'write `release_env: {RELEASE_COOKIE: "..."}`',
        )
    out: list[tuple[str, Secret]] = []
    for key, item in env.items():
        loc = (
            env.loc(key, f"release_env.{key}")
            if isinstance(env, Node)
            else SourceLocation(value.loc.file, value.loc.line, f"release_env.{key}")
        )
        if not isinstance(key, str) or not ENV_NAME_RE.fullmatch(key):
            _fail(
                f"release_env name {_show(key)} is not an environment variable name",
                loc,
                "use upper-case letters, digits and '_', like RELEASE_COOKIE",
            )
        # The value is a secret: say what is wrong with it, never what it is.
        if not isinstance(item, str):
            kind = "a number" if isinstance(item, (int, float)) else type(item).__name__
            _fail(
                f"release_env value of {key} must be a quoted string, not {kind}",
                loc,
                f'quote it: {key}: "..."',
            )
        if any(_is_control(ch) for ch in item):
            _fail(
                f"release_env value of {key} contains a control character or newline "
                "(or a bidi or zero-width one)",
                loc,
                "environment values must be one line of printable text",
            )
        out.append((key, Secret(item)))
    return tuple(sorted(out, key=lambda pair: pair[0]))


def _state_paths(value: _Value, host: str) -> tuple[str, ...]:
    items = value.value
    if not isinstance(items, (list, tuple)):
        _fail(
            f"state_paths for host {host!r} must be a list of absolute paths, got {_show(items)}",
            value.loc,
            "write `state_paths: [/var/lib/foundation]`",
        )
    out: list[str] = []
    for i, item in enumerate(items):
        key = f"state_paths[{i}]"
        loc = (
            items.loc(i, key)
            if isinstance(items, NodeList)
            else SourceLocation(value.loc.file, value.loc.line, key)
        )
        if not isinstance(item, str):
            _fail(
                f"{key} for host {host!r} must be a path string, got {_show(item)}",
                loc,
                "write each entry as an absolute path like /var/lib/foundation",
            )
        out.append(_remote_path(item, loc, host))
    return tuple(out)


# --- entry point -----------------------------------------------------------------------------


def load_inventory(
    path: str | Path, *, ssh_config: str | Path | None = None, vault: Vault | None = None
) -> Inventory:
    """Read an inventory file (or directory) and the group_vars/host_vars beside it.

    ``ssh_config``: an OpenSSH client config to resolve hosts through (docs/inventory.md,
    "SSH"); None reads none. ``vault``: decrypts Ansible Vault data (None: no password, so
    vault data is an error naming where it is).
    """
    vault = vault or Vault()
    given = Path(path)
    if not given.exists():
        _fail(
            "no such inventory file or directory",
            SourceLocation(str(given)),
            "check the path; inventories live under inventory/, e.g. inventory/lab.yml",
        )
    resolved = given.resolve()
    base = resolved if resolved.is_dir() else resolved.parent
    builder = _Builder()
    for source in _sources(resolved):
        _parse_source(source, builder)
    if not builder.hosts:
        _fail(
            "the inventory defines no hosts",
            SourceLocation(str(resolved)),
            "add hosts under all: hosts: (YAML) or in a [group] section (INI)",
        )
    graph = _link(builder)
    client = (
        _Client(load_client_config(ssh_config), str(Path(ssh_config).expanduser()))
        if ssh_config is not None
        else None
    )

    group_files = {
        name: _load_vars_files(base / "group_vars", name, vault) for name in builder.groups
    }
    fleet = _pick({**builder.groups["all"].vars, **group_files["all"]}, FLEET_VAR)
    for layer in (*(g.vars for n, g in builder.groups.items() if n != "all"),
                  *(v for n, v in group_files.items() if n != "all"),
                  *(h.vars for h in builder.hosts.values())):  # fmt: skip
        if FLEET_VAR in layer:
            _fail(
                f"{FLEET_VAR} names the whole inventory, not a group or a host",
                layer[FLEET_VAR].loc,
                "set it once under all: vars (or [all:vars], or group_vars/all.yml)",
            )
    priority = {name: _group_priority(group) for name, group in builder.groups.items()}
    hosts: list[Host] = []
    for name, host in builder.hosts.items():
        member_of = frozenset(g for g, members in graph.members.items() if name in members)
        ordered = sorted(
            (g for g in member_of if g != "all"), key=lambda g: (graph.depth[g], priority[g], g)
        )
        host_files = _load_vars_files(base / "host_vars", name, vault)
        layers: Iterable[_Vars] = [
            builder.groups["all"].vars,
            *(builder.groups[g].vars for g in ordered),
            group_files["all"],
            *(group_files[g] for g in ordered),
            host.vars,
            host_files,
        ]
        merged: _Vars = {}
        for layer in layers:
            merged.update(layer)
        if FLEET_VAR in host_files:
            _fail(
                f"{FLEET_VAR} names the whole inventory, not a host",
                host_files[FLEET_VAR].loc,
                "set it once under all: vars (or [all:vars], or group_vars/all.yml)",
            )
        rendered = _Rendered(name, member_of, merged, vault)
        hosts.append(_make_host(name, member_of, rendered, base, client))

    groups = {name: graph.members[name] for name in builder.groups}
    order = _group_order(builder)
    position = {name: i for i, name in enumerate(order["all"])}
    stem = resolved.stem if resolved.is_file() else resolved.name
    if fleet is not None:
        name = _fleet_name(fleet)
        legacy = None
    else:
        name = fleet_identity(resolved)
        legacy = stem if stem != name else None
    return Inventory(
        path=str(resolved),
        name=name,
        hosts=tuple(sorted(hosts, key=lambda h: position[h.name])),
        groups=MappingProxyType(groups),
        group_order=MappingProxyType(order),
        group_children=MappingProxyType(
            {name: tuple(group.children) for name, group in builder.groups.items()}
        ),
        legacy_name=legacy,
    )


def _group_order(builder: _Builder) -> dict[str, tuple[str, ...]]:
    """Each group's hosts in Ansible's ``Group.get_hosts()`` order: the group's own hosts,
    then its descendants' breadth first, each level in declaration order. (Ansible walks a
    level as a Python set, so below the first level its own order can vary from run to run;
    rollout's is the declared one, docs/inventory.md.)"""
    groups = builder.groups
    out: dict[str, tuple[str, ...]] = {}
    for name in groups:
        walk = [name, *groups[name].children]
        seen = set(walk)
        level = list(groups[name].children)
        while level:
            following: list[str] = []
            for group in level:
                for child in groups[group].children:
                    if child not in seen:
                        seen.add(child)
                        walk.append(child)
                        following.append(child)
            level = following
        hosts: dict[str, None] = {}
        for group in walk:
            hosts.update(dict.fromkeys(groups[group].hosts))
        out[name] = tuple(hosts)
    return out

def _fleet_name(value: _Value) -> str:
    text = value.value
    if not isinstance(text, str) or not FLEET_NAME_RE.fullmatch(text) or ".." in text:
        _fail(
            f"{FLEET_VAR} must be a name of letters, digits and '._/-' (at most 256, no '..'), "
            f"got {_show(text)}",
            value.loc,
            "e.g. rollout_fleet: eu-prod",
        )
    return text


def fleet_identity(path: Path) -> str:
    """The ledger key of an inventory without ``rollout_fleet``: its path relative to the
    project root (the nearest directory above it holding ``tasks.py`` or ``.git``), so two
    checkouts of one project agree; outside any project, its absolute path."""
    resolved = path.resolve()
    for parent in resolved.parents:
        if any((parent / marker).exists() for marker in _ROOT_MARKERS):
            return resolved.relative_to(parent).as_posix()
    return resolved.as_posix()
