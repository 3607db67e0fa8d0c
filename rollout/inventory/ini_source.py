"""Ansible's INI inventory: ``[group]``, ``[group:vars]`` and ``[group:children]`` sections."""

from __future__ import annotations

import ast
import difflib
import re
import shlex
import warnings

from ..errors import SourceLocation
from .builder import Builder, fail, set_var, show
from .ranges import host_names

_INI_SECTION_KINDS = ("hosts", "vars", "children")
_INI_SECTION_RE = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_INI_CHILD_RE = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")


def _ini_value(text: str) -> object:
    """Ansible's INI value rule: a Python literal if it parses as one, else the text."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parse_ini(text: str, file: str, builder: Builder) -> None:
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
                fail(
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
                fail(f"unknown section type {kind!r}", section_loc, hint)
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
                fail(
                    f"expected key=value in [{group}:vars], got {show(line)}",
                    SourceLocation(file, lineno, key or line),
                    "hosts go in a [group] section; this section holds variables only",
                )
            var_loc = SourceLocation(file, lineno, key)
            set_var(builder.groups[group].vars, key, _ini_value(value.strip()), var_loc)
        else:
            match = _INI_CHILD_RE.match(line)
            if not match:
                fail(
                    f"expected a group name in [{group}:children], got {show(line)}",
                    SourceLocation(file, lineno, line),
                    f"list one group per line; hosts go in [{group}]",
                )
            child = match.group(1)
            child_loc = SourceLocation(file, lineno, child)
            builder.add_child(group, child, child_loc)
            pending_children.setdefault(child, (group, child_loc))
    for name, (parent, loc) in pending_children.items():
        if name not in declared:
            fail(
                f"[{parent}:children] includes {name!r}, which has no [{name}] section",
                loc,
                f"add a [{name}] section listing its hosts, or fix the group name",
            )
    for name, loc in pending_vars.items():
        if name not in declared:
            fail(
                f"[{name}:vars] is for a group that has no [{name}] or [{name}:children] section",
                loc,
                "fix the group name, or define the group's hosts",
            )


def _ini_host_line(line: str, loc: SourceLocation, group: str, builder: Builder) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        fail(
            f"cannot parse host line: {exc}",
            SourceLocation(loc.file, loc.line, line.split()[0]),
            "check the quoting of the values",
        )
    if not tokens:
        return
    token_loc = SourceLocation(loc.file, loc.line, tokens[0])
    names, port = host_names(tokens[0], token_loc)
    assignments: list[tuple[str, object]] = []
    previous: str | None = None
    for token in tokens[1:]:
        key, sep, text = token.partition("=")
        if not sep or not key:
            if previous == "release_env":
                # most likely the rest of a release_env value split at a space: a secret
                fail(
                    f"expected key=value after host {tokens[0]!r}, got a word without '=' "
                    "after release_env= (not shown: it may be part of a secret)",
                    SourceLocation(loc.file, loc.line, previous),
                    'quote the whole mapping: release_env=\'{"RELEASE_COOKIE": "..."}\'',
                )
            fail(
                f"expected key=value after host {tokens[0]!r}, got {token!r}",
                SourceLocation(loc.file, loc.line, token),
                'quote values that contain spaces: key="a b"',
            )
        previous = key
        assignments.append((key, _ini_value(text)))
    for name in names:
        host = builder.add_host(name, token_loc, group, port)
        for key, value in assignments:
            set_var(host.vars, key, value, SourceLocation(loc.file, loc.line, key))
