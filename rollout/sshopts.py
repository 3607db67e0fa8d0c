"""How OpenSSH would reach a host: ``ansible_ssh_*_args`` and ``ssh_config``, resolved up front.

Ansible's ssh connection runs ``ssh [ansible_ssh_args] -o Port= -o User= -o IdentityFile=
[ansible_ssh_common_args] [ansible_ssh_extra_args] ADDRESS``, and OpenSSH then reads
``~/.ssh/config`` for ``ADDRESS``. For every option OpenSSH keeps the **first** value it is
given, so the order above is the precedence: connection variables, then the three argument
variables, then the client config. This module reproduces that for the options that decide
where rollout connects (``HostName``, ``Port``, ``User``, ``IdentityFile``,
``UserKnownHostsFile``, ``ProxyJump`` and ``ProxyCommand ssh -W %h:%p``), ignores options that
only tune a connection (``ControlPersist``, ``ServerAliveInterval``, ...), and refuses
everything else: an option rollout does not understand might route around a bastion.

The client config is parsed by paramiko's :class:`~paramiko.SSHConfig` (``Host`` and
``Match`` blocks, tokens such as ``%h``). A jump host is resolved through the same config, its
own ``ProxyJump`` included, so a chain of bastions is followed the way OpenSSH follows it.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .errors import InventoryError, SourceLocation
from .models import Jump

__all__ = [
    "ARG_VARIABLES",
    "ClientConfig",
    "SSHOptions",
    "client_config_path",
    "load_client_config",
    "parse_ssh_args",
    "resolve_jumps",
]

#: The inventory variables holding ssh command-line arguments, in OpenSSH's order of use.
ARG_VARIABLES = ("ansible_ssh_args", "ansible_ssh_common_args", "ansible_ssh_extra_args")

#: Options rollout applies.
_APPLIED = (
    "hostname", "port", "user", "identityfile", "userknownhostsfile", "proxyjump",
    "proxycommand",
)  # fmt: skip
#: Options that tune a connection but never change where it goes or what it trusts.
_IGNORED = frozenset(
    [
        "addkeystoagent",
        "addressfamily",
        "batchmode",
        "checkhostip",
        "ciphers",
        "compression",
        "connectionattempts",
        "connecttimeout",
        "controlmaster",
        "controlpath",
        "controlpersist",
        "forwardagent",
        "forwardx11",
        "gssapiauthentication",
        "gssapidelegatecredentials",
        "hashknownhosts",
        "hostkeyalgorithms",
        "identitiesonly",
        "kbdinteractiveauthentication",
        "kexalgorithms",
        "loglevel",
        "macs",
        "passwordauthentication",
        "preferredauthentications",
        "pubkeyacceptedalgorithms",
        "pubkeyacceptedkeytypes",
        "pubkeyauthentication",
        "requesttty",
        "serveralivecountmax",
        "serveraliveinterval",
        "stricthostkeychecking",
        "tcpkeepalive",
        "updatehostkeys",
        "visualhostkey",
        "nohostauthenticationforlocalhost",
        "sendenv",
        "setenv",
    ]
)
#: ssh flags without a value that change nothing about the destination.
_FLAGS = frozenset("46AaCgKkNnqsTtvXxYy")
#: ssh flags with a value: option name each stands for (None: refused).
_VALUED = {"o": None, "J": "proxyjump", "p": "port", "l": "user", "i": "identityfile"}
_MAX_HOPS = 8
_HOP_ADDRESS_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._:-]*")
_HOP_USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@-]*")


class ClientConfig(Protocol):
    """What rollout needs of an OpenSSH client config (paramiko's SSHConfig has it)."""

    def lookup(self, hostname: str) -> Mapping[str, object]: ...


@dataclass(frozen=True)
class SSHOptions:
    """Options from the argument variables, first value kept (lower-case names).

    ``proxy`` is the first of ProxyJump and ProxyCommand given: as in OpenSSH, whichever
    comes first prevents the other from taking effect.
    """

    values: Mapping[str, tuple[str, SourceLocation]]
    proxy: tuple[str, str, SourceLocation] | None = None

    def get(self, name: str) -> tuple[str, SourceLocation] | None:
        return self.values.get(name)


def _refuse(message: str, loc: SourceLocation, hint: str) -> InventoryError:
    return InventoryError(message, location=loc, hint=hint)


def parse_ssh_args(args: Sequence[tuple[str, SourceLocation]]) -> SSHOptions:
    """Parse ``ansible_ssh_args``/``_common_args``/``_extra_args`` values, in that order."""
    values: dict[str, tuple[str, SourceLocation]] = {}
    proxy: tuple[str, str, SourceLocation] | None = None
    for text, loc in args:
        try:
            words = shlex.split(text)
        except ValueError as exc:
            raise _refuse(
                f"{loc.key}: cannot split the ssh arguments: {exc}",
                loc,
                "check the quoting, as a shell would read it",
            ) from None
        i = 0
        while i < len(words):
            word = words[i]
            i += 1
            if not word.startswith("-") or len(word) < 2:
                raise _refuse(
                    f"{loc.key}: unexpected word {word!r} in the ssh arguments",
                    loc,
                    "write options as -o Name=value",
                )
            flag, rest = word[1], word[2:]
            if flag in _FLAGS and not rest:
                continue
            if flag not in _VALUED:
                raise _refuse(
                    f"{loc.key}: ssh option {word!r} is not supported",
                    loc,
                    "use -o Name=value for ProxyJump, ProxyCommand, User, Port, IdentityFile",
                )
            if not rest:
                if i >= len(words):
                    raise _refuse(f"{loc.key}: {word} needs a value", loc, f"write {word} VALUE")
                rest = words[i]
                i += 1
            name = _VALUED[flag]
            if name is None:
                name, value = _split_option(rest, loc)
            else:
                value = rest
            if name in _IGNORED:
                continue
            if name not in _APPLIED:
                raise _refuse(
                    f"{loc.key}: ssh option {name!r} is not supported",
                    loc,
                    "rollout applies HostName, Port, User, IdentityFile, UserKnownHostsFile, "
                    "ProxyJump and ProxyCommand (ssh -W %h:%p only); remove the option or "
                    "move it to ~/.ssh/config if it only tunes the connection",
                )
            if name in ("proxyjump", "proxycommand"):
                proxy = proxy or (name, value, loc)
            else:
                values.setdefault(name, (value, loc))
    return SSHOptions(values, proxy)


def _split_option(text: str, loc: SourceLocation) -> tuple[str, str]:
    """``Name=value`` or ``Name value`` -> (lower-case name, value)."""
    name, sep, value = text.partition("=")
    if not sep:
        name, _, value = text.strip().partition(" ")
    name, value = name.strip().lower(), value.strip()
    if not name or not value:
        raise _refuse(f"{loc.key}: -o {text!r} is not Name=value", loc, "write -o Name=value")
    return name, value


def client_config_path(option: str | None) -> str | None:
    """The client config to read: ``--ssh-config`` (``none``: none), else
    ``$ROLLOUT_SSH_CONFIG``, else ``~/.ssh/config`` when it exists, as ``ssh`` reads it."""
    chosen = option or os.environ.get("ROLLOUT_SSH_CONFIG")
    if chosen:
        return None if chosen.strip().lower() == "none" else chosen
    default = Path("~/.ssh/config").expanduser()
    return str(default) if default.is_file() else None


def load_client_config(path: str | Path) -> ClientConfig:
    """Parse an OpenSSH client config with paramiko; errors name the file."""
    import paramiko

    file = Path(path).expanduser()
    try:
        return paramiko.SSHConfig.from_path(str(file))
    except FileNotFoundError:
        raise InventoryError(
            "no such ssh client config",
            location=SourceLocation(str(file)),
            hint="give an existing file to --ssh-config, or --ssh-config none",
        ) from None
    except (OSError, UnicodeDecodeError, paramiko.SSHException, ValueError) as exc:
        raise InventoryError(
            f"cannot read the ssh client config: {exc}",
            location=SourceLocation(str(file)),
            hint="fix the file, or pass --ssh-config none",
        ) from None


def _hop_words(spec: str, loc: SourceLocation) -> list[str]:
    hops = [hop.strip() for hop in spec.split(",")]
    if not all(hops):
        raise _refuse(f"ProxyJump {spec!r} has an empty hop", loc, "write host1,host2")
    return hops


def _parse_hop(hop: str, loc: SourceLocation) -> tuple[str | None, str, int | None]:
    """``[user@]host[:port]`` (or ``ssh://[user@]host[:port]``) -> (user, host, port)."""
    text = hop.removeprefix("ssh://")
    user, _, rest = text.rpartition("@")
    host, port_text = rest, None
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port_text = tail.removeprefix(":") or None
    elif rest.count(":") == 1:
        host, port_text = rest.split(":")
    if not host or (port_text is not None and not port_text.isdigit()):
        raise _refuse(
            f"ProxyJump hop {hop!r} is not [user@]host[:port]", loc, "write user@bastion:22"
        )
    return user or None, host, int(port_text) if port_text else None


def proxy_command_hops(
    command: str, loc: SourceLocation, target: tuple[str, int] | None = None
) -> str:
    """The ProxyJump equivalent of ``ssh [-p N] [-l U] -W %h:%p [U@]HOST``; else refused.

    ``target``: the (address, port) the command must forward to once ``%h:%p`` is expanded
    (paramiko expands the tokens of a ProxyCommand read from ssh_config).
    """
    forwards = {"%h:%p", "[%h]:%p"}
    if target is not None:
        forwards |= {f"{target[0]}:{target[1]}", f"[{target[0]}]:{target[1]}"}
    try:
        words = shlex.split(command)
    except ValueError:
        words = []
    port = user = dest = None
    ok = bool(words) and os.path.basename(words[0]) == "ssh"
    forward = False
    i = 1
    while ok and i < len(words):
        word = words[i]
        if word in ("-W", "-p", "-l") and i + 1 < len(words):
            value = words[i + 1]
            if word == "-W":
                forward = value in forwards
            elif word == "-p":
                port = value
            else:
                user = value
            i += 2
        elif word in ("-q", "-T", "-4", "-6", "-C"):
            i += 1
        elif dest is None and not word.startswith("-"):
            dest = word
            i += 1
        else:
            ok = False
    if ok and forward and dest and (port is None or port.isdigit()):
        if user and "@" not in dest:
            dest = f"{user}@{dest}"
        return f"{dest}:{port}" if port else dest
    raise _refuse(
        f"ProxyCommand {command!r} is not supported",
        loc,
        "rollout runs no local command to connect; use ProxyJump (or ProxyCommand "
        "ssh -W %h:%p bastion, which it reads as ProxyJump bastion)",
    )


def resolve_jumps(
    spec: str,
    loc: SourceLocation,
    config: ClientConfig | None,
    *,
    depth: int = 0,
) -> tuple[Jump, ...]:
    """The hops of a ProxyJump value, each resolved through ``config`` (its own ProxyJump
    first, as OpenSSH does); ``none`` means no hop."""
    if spec.strip().lower() == "none":
        return ()
    if depth > _MAX_HOPS:
        raise _refuse(
            f"ProxyJump chain deeper than {_MAX_HOPS} hops (a loop?)",
            loc,
            "check the ProxyJump lines of the ssh client config",
        )
    out: list[Jump] = []
    for hop in _hop_words(spec, loc):
        user, host, port = _parse_hop(hop, loc)
        entry: Mapping[str, object] = config.lookup(host) if config is not None else {}
        before = entry.get("proxyjump")
        if isinstance(before, str) and depth < _MAX_HOPS and before.lower() != "none":
            if not out:  # a hop's own jump applies where the chain starts
                out.extend(resolve_jumps(before, loc, config, depth=depth + 1))
        elif entry.get("proxycommand") and not out:
            command = str(entry["proxycommand"])
            hops = proxy_command_hops(command, loc, (str(entry.get("hostname") or host), 22))
            out.extend(resolve_jumps(hops, loc, config, depth=depth + 1))
        address = str(entry.get("hostname") or host)
        cfg_port = entry.get("port")
        identity = entry.get("identityfile")
        key_file = None
        if isinstance(identity, list) and identity:
            key_file = os.path.expanduser(str(identity[0]))
        try:
            hop_port = port or (int(str(cfg_port)) if cfg_port else 22)
        except ValueError:
            raise _refuse(f"ProxyJump hop {host!r}: Port {cfg_port!r}", loc, "fix it") from None
        if not 1 <= hop_port <= 65535:
            raise _refuse(f"ProxyJump hop {host!r}: port {hop_port} out of range", loc, "1..65535")
        hop_user = user or (str(entry["user"]) if entry.get("user") else None)
        if not _HOP_ADDRESS_RE.fullmatch(address) or (
            hop_user is not None and not _HOP_USER_RE.fullmatch(hop_user)
        ):
            raise _refuse(
                f"ProxyJump hop {hop!r} resolves to an address or user that is not allowed",
                loc,
                "use a DNS name or IP address and a plain user name for the bastion",
            )
        out.append(Jump(host, address, hop_port, hop_user, key_file))
    return tuple(out)
