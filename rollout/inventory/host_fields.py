"""Merged variables onto a :class:`~rollout.models.Host`, each field checked; what ``ssh``
would add from its arguments and client config.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypedDict

from ..errors import SourceLocation
from ..fields import is_control as _is_control
from ..models import ConsoleMode, Host, Jump, Secret
from ..sshopts import (
    ARG_VARIABLES,
    ClientConfig,
    parse_ssh_args,
    proxy_command_hops,
    resolve_jumps,
)
from ..yamlsrc import Node, NodeList
from .builder import Value, fail, show, show_value

ENV_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
REMOTE_PATH_RE = re.compile(r"^/[A-Za-z0-9._/+-]+$")
SERVICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@._-]*$")
USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._@-]*$")
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_DNS_NAME_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?$")


def pick(merged: Mapping[str, Value], *names: str) -> Value | None:
    """The last of ``names`` set (not null) wins, as in Ansible's ssh connection options."""
    found = None
    for name in names:
        value = merged.get(name)
        if value is not None and value.value is not None:
            found = value
    return found


def _text(value: Value, host: str) -> str:
    """The value as a non-empty, single-line string; else an error naming its key."""
    key = value.loc.key or "value"
    if not isinstance(value.value, str) or not value.value:
        fail(
            f"{key} for host {host!r} must be a non-empty string, got "
            f"{show_value(value, value.value)}",
            value.loc,
            f"set {key} to a quoted string, or remove it to use the default",
        )
    if any(_is_control(ch) for ch in value.value):
        fail(
            f"{key} for host {host!r} contains a control character or newline "
            "(or a bidi or zero-width one)",
            value.loc,
            f"write {key} on one line, without escapes like \\n",
        )
    return value.value


def _remote_path(text: str, loc: SourceLocation, host: str) -> str:
    if not REMOTE_PATH_RE.fullmatch(text) or ".." in text.split("/"):
        fail(
            f"{loc.key} for host {host!r} must be an absolute path of letters, digits and "
            f"._/+- with no '..' segment, got {show(text)}",
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
    console: ConsoleMode


def make_host(
    name: str,
    groups: frozenset[str],
    merged: Mapping[str, Value],
    base: Path,
    client: Client | None = None,
) -> Host:
    """Map merged variables onto a Host; defaults stay those of :class:`Host`."""
    changes: _HostFields = {}

    value = pick(merged, "ansible_host", "ansible_ssh_host")
    if value is not None:
        address = _text(value, name)
        if not _is_address(address):
            fail(
                f"{value.loc.key} for host {name!r} is not a hostname or IP address: "
                f"{show_value(value, address)}",
                value.loc,
                "set it to a DNS name like web1.example.com or an IP like 10.0.0.5",
            )
        changes["address"] = address

    value = pick(merged, "ansible_port", "ansible_ssh_port")
    if value is not None:
        port = value.value
        if isinstance(port, str) and port.strip().isdigit():
            port = int(port)
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            fail(
                f"{value.loc.key} for host {name!r} must be an integer 1..65535, "
                f"got {show_value(value, port)}",
                value.loc,
                "SSH listens on 22 unless the host's sshd says otherwise",
            )
        changes["port"] = port

    value = pick(merged, "ansible_user", "ansible_ssh_user")
    if value is not None:
        user = _text(value, name)
        if not USER_RE.fullmatch(user):
            fail(
                f"{value.loc.key} for host {name!r} is not a user name: {show_value(value, user)}",
                value.loc,
                "use letters, digits and ._@-, not starting with '-'",
            )
        changes["user"] = user

    value = pick(merged, "ansible_private_key_file", "ansible_ssh_private_key_file")
    if value is not None:
        changes["key_file"] = _local_path(_text(value, name), base)

    value = pick(merged, "known_hosts_file")
    if value is not None:
        changes["known_hosts_file"] = _local_path(_text(value, name), base)

    value = pick(merged, "release_bin")
    if value is not None:
        changes["release_bin"] = _remote_path(_text(value, name), value.loc, name)

    value = pick(merged, "rollout_state_dir")
    if value is not None:
        changes["rollout_state_dir"] = _remote_path(_text(value, name), value.loc, name)

    value = pick(merged, "rollout_console")
    if value is not None:
        text = _text(value, name)
        try:
            changes["console"] = ConsoleMode(text)
        except ValueError:
            fail(
                f"rollout_console for host {name!r} must be auto, erl_call or rpc, "
                f"got {show_value(value, text)}",
                value.loc,
                "auto (the default) uses the release's erl_call where it answers, else rpc",
            )

    value = pick(merged, "release_env")
    if value is not None:
        changes["release_env"] = _release_env(value, name)

    value = pick(merged, "restart_command")
    if value is not None:
        changes["restart_command"] = _text(value, name)

    value = pick(merged, "service")
    if value is not None:
        service = _text(value, name)
        if not SERVICE_RE.fullmatch(service):
            fail(
                f"service for host {name!r} is not a systemd unit name: "
                f"{show_value(value, service)}",
                value.loc,
                "use letters, digits and @._-, like foundation or foundation@blue",
            )
        changes["service"] = service

    value = pick(merged, "state_paths")
    if value is not None:
        changes["state_paths"] = _state_paths(value, name)

    _apply_ssh(name, merged, changes, base, client)
    return replace(Host(name=name, address=name, groups=groups), **changes)


@dataclass(frozen=True)
class Client:
    """The OpenSSH client config in force and where it came from."""

    config: ClientConfig
    path: str


def _apply_ssh(
    name: str,
    merged: Mapping[str, Value],
    changes: _HostFields,
    base: Path,
    client: Client | None,
) -> None:
    """What ``ssh`` would add: options from ``ansible_ssh_*_args``, then the client config,
    each only where the connection variables left the field unset (first value wins)."""
    args = [(v.value, v.loc) for k in ARG_VARIABLES if (v := merged.get(k)) is not None]
    for text, loc in args:
        if not isinstance(text, str):
            fail(f"{loc.key} for host {name!r} must be a string", loc, "quote the arguments")
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
            fail(f"HostName {show(got[0])} is not a hostname or IP address", got[1], "fix it")
        changes["address"] = got[0]
    if "port" not in changes and (got := first("port")) is not None:
        if not got[0].isdigit() or not 1 <= int(got[0]) <= 65535:
            fail(f"Port {show(got[0])} for host {name!r} is not 1..65535", got[1], "fix it")
        changes["port"] = int(got[0])
    if "user" not in changes and (got := first("user")) is not None:
        if not USER_RE.fullmatch(got[0]):
            fail(f"User {show(got[0])} for host {name!r} is not a user name", got[1], "fix it")
        changes["user"] = got[0]
    if "key_file" not in changes and (got := first("identityfile")) is not None:
        changes["key_file"] = _local_path(got[0], base)
    if "known_hosts_file" not in changes and (got := first("userknownhostsfile")) is not None:
        changes["known_hosts_file"] = _local_path(got[0].split()[0], base)

    proxy = opts.proxy
    if proxy is None and client is not None:
        both = [k for k in ("proxyjump", "proxycommand") if k in entry]
        if len(both) == 2:
            fail(
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


def _release_env(value: Value, host: str) -> tuple[tuple[str, Secret], ...]:
    env = value.value
    if not isinstance(env, Mapping):
        fail(
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
            fail(
                f"release_env name {show(key)} is not an environment variable name",
                loc,
                "use upper-case letters, digits and '_', like RELEASE_COOKIE",
            )
        # The value is a secret: say what is wrong with it, never what it is.
        if not isinstance(item, str):
            kind = "a number" if isinstance(item, (int, float)) else type(item).__name__
            fail(
                f"release_env value of {key} must be a quoted string, not {kind}",
                loc,
                f'quote it: {key}: "..."',
            )
        if any(_is_control(ch) for ch in item):
            fail(
                f"release_env value of {key} contains a control character or newline "
                "(or a bidi or zero-width one)",
                loc,
                "environment values must be one line of printable text",
            )
        out.append((key, Secret(item)))
    return tuple(sorted(out, key=lambda pair: pair[0]))


def _state_paths(value: Value, host: str) -> tuple[str, ...]:
    items = value.value
    if not isinstance(items, (list, tuple)):
        fail(
            f"state_paths for host {host!r} must be a list of absolute paths, got {show(items)}",
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
            fail(
                f"{key} for host {host!r} must be a path string, got {show(item)}",
                loc,
                "write each entry as an absolute path like /var/lib/foundation",
            )
        out.append(_remote_path(item, loc, host))
    return tuple(out)
