"""Host key verification that fails closed.

A known_hosts file is required and must parse completely: a missing file, an unreadable one
or a line that is not a valid entry is an error, never "no keys, accept all". Unknown keys are
rejected with the fingerprint and the command to pin it; changed keys are always rejected.
``accept_new`` behaves like OpenSSH's ``StrictHostKeyChecking=accept-new``: an unknown host's
key is appended to the file and reported; a changed key is still refused.

Marker lines are read as OpenSSH reads them: ``@revoked`` keys are never accepted, whatever
else the files say (and never pinned); ``@cert-authority`` lines parse, but host certificates
are not verified (paramiko, the SSH client, cannot negotiate them), so a host known only by
its CA is an unknown host with a hint to pin its own key: fail-closed, never accepted.
``/etc/ssh/ssh_known_hosts`` (OpenSSH's GlobalKnownHostsFile) is read besides the user's file.
"""

from __future__ import annotations

import fcntl
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import paramiko
from paramiko.hostkeys import HostKeyEntry, InvalidHostKey

from ..errors import HostKeyError, InputError, SourceLocation
from ..yamlsrc import read_input
from .base import PinCallback

_append_lock = threading.Lock()

#: OpenSSH's GlobalKnownHostsFile.
SYSTEM_KNOWN_HOSTS = Path("/etc/ssh/ssh_known_hosts")


@dataclass(frozen=True)
class KnownHosts:
    """One known_hosts file: the pinned keys, the revoked keys, the CA lines seen."""

    keys: paramiko.HostKeys
    revoked: frozenset[tuple[str, str]] = frozenset()  # (key type, base64)
    authorities: int = 0


#: The largest known_hosts file read.
MAX_KNOWN_HOSTS_BYTES = 10_000_000


def known_hosts_name(address: str, port: int) -> str:
    """The name OpenSSH uses in known_hosts for ``address:port``."""
    return address if port == 22 else f"[{address}]:{port}"


def default_known_hosts() -> Path:
    return Path(os.path.expanduser("~/.ssh/known_hosts"))


def load_known_hosts(path: Path) -> paramiko.HostKeys:
    """Parse ``path`` strictly into paramiko HostKeys; any bad line is an InputError."""
    return load_known_hosts_file(path).keys


def load_known_hosts_file(path: Path) -> KnownHosts:
    """Parse ``path`` strictly, markers included; any bad line is an InputError."""
    if not path.exists():
        raise InputError(
            f"known_hosts file {path} does not exist",
            hint="set known_hosts_file in the inventory to a file holding the hosts' keys, "
            "or pass --accept-new-host-keys to pin keys on first contact",
        )
    try:  # a regular file only (a FIFO would hang the run), at most 10 MB
        text = read_input(path, MAX_KNOWN_HOSTS_BYTES)
    except InputError as exc:
        raise InputError(f"cannot read known_hosts file {exc.message}", hint=exc.hint) from None
    keys = paramiko.HostKeys()
    revoked: set[tuple[str, str]] = set()
    authorities = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        marker = None
        if stripped.startswith("@"):
            marker, _, stripped = stripped.partition(" ")
            stripped = stripped.strip()
            if marker not in ("@revoked", "@cert-authority"):
                raise InputError(
                    f"unknown known_hosts marker {marker!r}",
                    location=SourceLocation(str(path), lineno),
                    hint="OpenSSH knows @revoked and @cert-authority; fix or delete the line",
                )
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
        if marker == "@revoked":
            revoked.add((entry.key.get_name(), entry.key.get_base64()))
            continue
        if marker == "@cert-authority":
            authorities += 1
            continue
        for name in entry.hostnames:
            keys.add(name, entry.key.get_name(), entry.key)
    return KnownHosts(keys, frozenset(revoked), authorities)


class VerifyingPolicy(paramiko.MissingHostKeyPolicy):
    """Rejects unknown keys (or pins them when ``accept_new``); paramiko rejects changed keys."""

    def __init__(
        self,
        host: str,
        path: Path,
        accept_new: bool,
        on_pin: PinCallback | None,
        revoked: frozenset[tuple[str, str]] = frozenset(),
        authorities: int = 0,
    ):
        self.host = host
        self.path = path
        self.accept_new = accept_new
        self.on_pin = on_pin
        self.revoked = revoked
        self.authorities = authorities

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        fingerprint = key.fingerprint
        if (key.get_name(), key.get_base64()) in self.revoked:
            raise HostKeyError(
                self.host,
                f"host key {key.get_name()} {fingerprint} of {hostname} is marked @revoked "
                f"in {self.path}",
                hint="the key was revoked on purpose: do not connect until the host has a "
                "new key, confirmed out of band",
            )
        if not self.accept_new and self.authorities:
            raise HostKeyError(
                self.host,
                f"unknown host key {key.get_name()} {fingerprint} for {hostname} (not in "
                f"{self.path}; its @cert-authority lines are not used: rollout cannot verify "
                "host certificates)",
                hint=f"pin the host's own key: `ssh-keyscan -p PORT ADDRESS >> {self.path}` "
                "after checking the fingerprint out of band",
            )
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
