"""Host key verification that fails closed.

A known_hosts file is required and must parse completely: a missing file, an unreadable one
or a line that is not a valid entry is an error, never "no keys, accept all". Unknown keys are
rejected with the fingerprint and the command to pin it; changed keys are always rejected.
``accept_new`` behaves like OpenSSH's ``StrictHostKeyChecking=accept-new``: an unknown host's
key is appended to the file and reported; a changed key is still refused.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import paramiko
from paramiko.hostkeys import HostKeyEntry, InvalidHostKey

from ..errors import HostKeyError, InputError, SourceLocation
from .base import PinCallback

_append_lock = threading.Lock()


def known_hosts_name(address: str, port: int) -> str:
    """The name OpenSSH uses in known_hosts for ``address:port``."""
    return address if port == 22 else f"[{address}]:{port}"


def default_known_hosts() -> Path:
    return Path(os.path.expanduser("~/.ssh/known_hosts"))


def load_known_hosts(path: Path) -> paramiko.HostKeys:
    """Parse ``path`` strictly into paramiko HostKeys; any bad line is an InputError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(
            f"known_hosts file {path} does not exist",
            hint="set known_hosts_file in the inventory to a file holding the hosts' keys, "
            "or pass --accept-new-host-keys to pin keys on first contact",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read known_hosts file {path}: {exc}") from None
    keys = paramiko.HostKeys()
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            entry = HostKeyEntry.from_line(stripped, lineno)
        except (paramiko.SSHException, ValueError) as exc:
            entry = None
            reason = str(exc)
        except InvalidHostKey as exc:  # paramiko's "the key's base64 does not decode"
            entry = None
            reason = f"bad key data ({exc.exc})"
        else:
            reason = "not a known_hosts entry"
        if entry is None or entry.key is None:
            raise InputError(
                f"unparseable known_hosts line: {reason}",
                location=SourceLocation(str(path), lineno),
                hint="fix or delete the line; rollout refuses to guess which keys to trust",
            )
        for name in entry.hostnames:
            keys.add(name, entry.key.get_name(), entry.key)
    return keys


class VerifyingPolicy(paramiko.MissingHostKeyPolicy):
    """Rejects unknown keys (or pins them when ``accept_new``); paramiko rejects changed keys."""

    def __init__(self, host: str, path: Path, accept_new: bool, on_pin: PinCallback | None):
        self.host = host
        self.path = path
        self.accept_new = accept_new
        self.on_pin = on_pin

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        fingerprint = key.fingerprint
        if not self.accept_new:
            raise HostKeyError(
                self.host,
                f"unknown host key {key.get_name()} {fingerprint} for {hostname} "
                f"(not in {self.path})",
                hint=f"verify the fingerprint out of band, then pin it with "
                f"`ssh-keyscan -p PORT ADDRESS >> {self.path}`, "
                "or re-run with --accept-new-host-keys",
            )
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        with _append_lock, open(self.path, "a", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.write(line)
        client.get_host_keys().add(hostname, key.get_name(), key)
        if self.on_pin:
            self.on_pin(self.host, fingerprint, str(self.path))


def changed_key_error(host: str, exc: paramiko.BadHostKeyException, path: Path) -> HostKeyError:
    return HostKeyError(
        host,
        f"HOST KEY CHANGED for {exc.hostname}: offered {exc.key.get_name()} "
        f"{exc.key.fingerprint}, pinned {exc.expected_key.fingerprint} in {path}",
        hint="this may be an attack; confirm the new key out of band before editing "
        f"{path} (rollout never accepts a changed key)",
    )
