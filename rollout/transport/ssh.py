"""SSH sessions over Fabric and paramiko: one connection per host for the whole run.

Fabric's :class:`fabric.Connection` opens the connection (hermetic config: no
``~/.ssh/config``, no Fabric config files), with three changes to its defaults:

* host keys are verified and fail closed (:mod:`.hostkeys`); Fabric's default accepts any key;
* the TCP socket is ours, with ``TCP_NODELAY`` (paramiko leaves Nagle on, which costs a
  delayed ACK, ~40 ms, per command) and a connect deadline; banner and auth have deadlines too;
* commands run on paramiko channels directly instead of through Invoke's ``Runner``, which
  polls every 10 ms and starts a stdin thread per command. Environment never goes through
  Fabric's unescaped ``env=``: anything a command needs comes quoted in argv or on stdin.

Every command runs under the host's coreutils ``timeout`` (see :func:`.base.remote_command`),
so a command whose deadline passed is killed on the host, not only abandoned by the client.

One module (~400 lines) on purpose: it is the transport seam's only paramiko/Fabric side
(``base.py``: nothing else imports them), and its two halves, opening a verified connection
(direct or through bastions) and running a command on it, share paramiko's sockets, channels
and the mapping of its exceptions to :class:`~rollout.errors.TransportError`; host keys
already live apart in :mod:`.hostkeys`.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import paramiko

from ..errors import CommandTimeout, HostKeyError, TransportError
from ..models import Host, Jump
from ..output import MAX_OUTPUT_BYTES, Capture, Redactor
from .base import (
    CLIENT_GRACE,
    REMOTE_TIMEOUT_STATUSES,
    CommandResult,
    PinCallback,
    remote_command,
)
from .hostkeys import (
    SYSTEM_KNOWN_HOSTS,
    KnownHosts,
    VerifyingPolicy,
    changed_key_error,
    default_known_hosts,
    known_hosts_name,
    load_known_hosts_file,
)

_READ_CHUNK = 65536

# paramiko logs a failed handshake or a reset connection from its own thread, tracebacks
# included; with no handler configured, Python would print those to the operator's stderr.
# Every such failure already reaches the caller as a TransportError.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class SSHSession:
    """An open SSH connection to one host."""

    def __init__(
        self,
        host: Host,
        client: paramiko.SSHClient,
        fabric_conn: object,
        hops: Sequence[paramiko.SSHClient] = (),
        redact: Redactor | None = None,
    ) -> None:
        self.host = host
        self._client = client
        self._conn = fabric_conn  # keeps Fabric's Connection (and its config) alive
        self._hops = list(hops)  # bastion connections, first hop first
        self._lock = threading.Lock()
        self._redact = redact or Redactor()

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float = 60.0,
        max_output: int = MAX_OUTPUT_BYTES,
    ) -> CommandResult:
        command = remote_command(argv, timeout)
        # the system's monotonic clock, not an injected Clock: these deadlines bound real
        # socket reads (select, settimeout), which only real time can end
        started = time.monotonic()
        deadline = started + timeout + CLIENT_GRACE
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise TransportError(
                self.host.name, "connection lost", hint="check the host and re-run"
            )
        try:
            chan = transport.open_session(timeout=min(timeout, 30.0))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(
                self.host.name, f"cannot open a channel: {exc or type(exc).__name__}"
            ) from None
        try:
            chan.settimeout(max(1.0, deadline - time.monotonic()))
            chan.exec_command(command)
            if stdin:
                chan.sendall(stdin)
            chan.shutdown_write()
            out, err = Capture(max_output), Capture(max_output)
            status = _collect(chan, deadline, out, err)
        except TimeoutError:
            out, err, status = Capture(0), Capture(0), None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(self.host.name, f"command failed in transit: {exc}") from None
        finally:
            chan.close()
        elapsed = time.monotonic() - started
        # bounded as read, and cleaned of every secret the tool knows before anyone sees it
        stdout = self._redact(out.text())
        stderr = self._redact(err.text())
        timed_out = status is None or status in REMOTE_TIMEOUT_STATUSES
        if status is None:
            raise CommandTimeout(
                self.host.name,
                f"no answer within {timeout + CLIENT_GRACE:.0f}s (the host or its sshd may be "
                "frozen); the outcome is unknown until the host is read back",
            )
        if status == -1 and not transport.is_active():
            # paramiko's "no exit status": the connection died under the command
            raise TransportError(
                self.host.name,
                "connection lost while the command ran; the outcome is unknown until the "
                "host is read back",
            )
        return CommandResult(self.host.name, command, status, stdout, stderr, elapsed, timed_out)

    def close(self) -> None:
        self._client.close()
        for hop in reversed(self._hops):
            hop.close()


def _collect(chan: paramiko.Channel, deadline: float, out: Capture, err: Capture) -> int | None:
    """Read both streams until the command exits and its output ends, or the deadline; the
    captures keep a bounded part of each (the rest is read, counted and dropped)."""
    fd = chan.fileno()
    while True:
        while chan.recv_ready():
            out.add(chan.recv(_READ_CHUNK))
        while chan.recv_stderr_ready():
            err.add(chan.recv_stderr(_READ_CHUNK))
        finished = chan.exit_status_ready() and (chan.eof_received or chan.closed)
        if finished and not chan.recv_ready() and not chan.recv_stderr_ready():
            return chan.recv_exit_status()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        select.select([fd], [], [], min(remaining, 0.5))


class SSHTransport:
    """Opens :class:`SSHSession` objects with verified host keys and strict deadlines."""

    def __init__(
        self,
        *,
        connect_timeout: float = 10.0,
        accept_new_host_keys: bool = False,
        on_pin: PinCallback | None = None,
        keepalive: int = 15,
        system_known_hosts: Path | None = SYSTEM_KNOWN_HOSTS,
        redact: Redactor | None = None,
    ) -> None:
        self.system_known_hosts = system_known_hosts
        self.redact = redact or Redactor()
        self.connect_timeout = connect_timeout
        self.accept_new = accept_new_host_keys
        self.on_pin = on_pin
        self.keepalive = keepalive
        # known_hosts files parsed once per run, keyed by path and mtime: parsing the whole
        # file for every connection (and copying every entry into every client) grew as N^2
        # per connection, ~1.7 s of GIL-held CPU at 100 hosts (BENCHMARKS.md)
        self._known: dict[tuple[str, int], KnownHosts] = {}
        self._known_lock = threading.Lock()

    def _parsed(self, path: Path) -> KnownHosts:
        with self._known_lock:
            key = (str(path), path.stat().st_mtime_ns if path.exists() else -1)
            if key not in self._known:
                self._known[key] = load_known_hosts_file(path)
            return self._known[key]

    def _files(self, path: Path) -> list[KnownHosts]:
        """The user's file (required unless only the default is missing and the system file
        exists) and the system-wide one, parsed strictly once per run."""
        files = []
        system = self.system_known_hosts
        if path.exists() or not (path == default_known_hosts() and system and system.exists()):
            files.append(self._parsed(path))
        if system is not None and system.exists():
            files.append(self._parsed(system))
        return files

    def _host_keys(self, path: Path, host: Host | Jump) -> paramiko.HostKeys:
        """The pinned keys for ``host`` only, revoked ones left out (once per run)."""
        name = known_hosts_name(host.address, host.port)
        mine = paramiko.HostKeys()
        files = self._files(path)
        revoked = frozenset().union(*(f.revoked for f in files))
        for known in files:
            for keytype, pkey in (known.keys.lookup(name) or {}).items():
                if (keytype, pkey.get_base64()) not in revoked:
                    mine.add(name, keytype, pkey)
        return mine

    def _policy(self, host: Host, path: Path) -> VerifyingPolicy:
        files = self._files(path)
        return VerifyingPolicy(
            host.name,
            path,
            self.accept_new,
            self.on_pin,
            revoked=frozenset().union(*(f.revoked for f in files)),
            authorities=sum(f.authorities for f in files),
        )

    def connect(self, host: Host) -> SSHSession:
        from fabric import Config, Connection  # lazy: fabric costs ~0.3 s to import

        known_hosts = (
            Path(host.known_hosts_file) if host.known_hosts_file else default_known_hosts()
        )
        if self.accept_new and not known_hosts.exists():
            known_hosts.parent.mkdir(parents=True, exist_ok=True)
            known_hosts.touch(mode=0o600)
        keys = self._host_keys(known_hosts, host)
        sock, hops = self._open_path(host, known_hosts)
        connect_kwargs: dict[str, object] = {
            "sock": sock,
            "banner_timeout": self.connect_timeout,
            "auth_timeout": self.connect_timeout,
            "channel_timeout": self.connect_timeout,
        }
        connect_kwargs.update(_key_options(host.key_file))
        config = Config(lazy=True, overrides={"load_ssh_configs": False})
        conn = Connection(
            host.address,
            user=host.user,
            port=host.port,
            config=config,
            connect_kwargs=connect_kwargs,
        )
        client: paramiko.SSHClient = conn.client
        client.get_host_keys().update(keys)
        client.set_missing_host_key_policy(
            self._policy(host, known_hosts)
        )
        try:
            conn.open()
        except HostKeyError:
            _close(sock, hops)
            raise
        except paramiko.BadHostKeyException as exc:
            _close(sock, hops)
            raise changed_key_error(host.name, exc, known_hosts) from None
        except paramiko.AuthenticationException as exc:
            _close(sock, hops)
            raise TransportError(
                host.name,
                f"authentication failed as {host.user or 'the current user'}: {exc}",
                hint="check ansible_user and ansible_ssh_private_key_file in the inventory; "
                "a passphrase-protected key must be loaded in ssh-agent or its passphrase set "
                f"in ${PASSPHRASE_ENV}",
            ) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            _close(sock, hops)
            raise TransportError(
                host.name,
                f"SSH handshake with {host.address}:{host.port} failed: "
                f"{exc or type(exc).__name__}",
                hint="is sshd answering? (a frozen sshd shows up as a banner timeout)",
            ) from None
        transport = client.get_transport()
        if transport is not None and self.keepalive:
            transport.set_keepalive(self.keepalive)
        return SSHSession(host, client, conn, hops, self.redact)

    def _open_socket(self, host: Host, via: Host | Jump | None = None) -> socket.socket:
        target = via or host
        what = (
            f"bastion {via.name} ({via.address}:{via.port})"
            if via
            else (f"{host.address}:{host.port}")
        )
        try:
            sock = socket.create_connection(
                (target.address, target.port), timeout=self.connect_timeout
            )
        except OSError as exc:
            raise TransportError(
                host.name,
                f"cannot reach {what}: {exc.strerror or exc}",
                hint="check the address and port in the inventory (and ProxyJump), and that "
                "sshd runs; rollout never goes around a bastion",
            ) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _open_path(
        self, host: Host, known_hosts: Path
    ) -> tuple[socket.socket | paramiko.Channel, list[paramiko.SSHClient]]:
        """A socket to ``host``'s sshd: direct, or a channel through each of its bastions in
        turn (OpenSSH's ProxyJump). Each bastion's host key is verified like the host's, from
        the same known_hosts file; a bastion that fails is an error, never a direct path."""
        if not host.jumps:
            return self._open_socket(host), []
        hops: list[paramiko.SSHClient] = []
        sock: socket.socket | paramiko.Channel = self._open_socket(host, host.jumps[0])
        try:
            for i, hop in enumerate(host.jumps):
                client = paramiko.SSHClient()
                client.get_host_keys().update(self._host_keys(known_hosts, hop))
                client.set_missing_host_key_policy(
                    self._policy(host, known_hosts)
                )
                hops.append(client)
                self._connect_hop(host, hop, client, sock, known_hosts)
                after: Host | Jump = host.jumps[i + 1] if i + 1 < len(host.jumps) else host
                transport = client.get_transport()
                assert transport is not None
                try:
                    sock = transport.open_channel(
                        "direct-tcpip",
                        (after.address, after.port),
                        ("127.0.0.1", 0),
                        timeout=self.connect_timeout,
                    )
                except (paramiko.SSHException, OSError, EOFError) as exc:
                    raise TransportError(
                        host.name,
                        f"bastion {hop.name} cannot open a tunnel to {after.address}:"
                        f"{after.port}: {exc or type(exc).__name__}",
                        hint="check that the bastion allows TCP forwarding and reaches the host",
                    ) from None
        except BaseException:
            _close(sock, hops)
            raise
        return sock, hops

    def _connect_hop(
        self,
        host: Host,
        hop: Jump,
        client: paramiko.SSHClient,
        sock: socket.socket | paramiko.Channel,
        known_hosts: Path,
    ) -> None:
        keys = _key_options(hop.key_file)
        try:
            client.connect(
                hop.address,
                port=hop.port,
                username=hop.user,
                sock=sock,
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
                channel_timeout=self.connect_timeout,
                **keys,  # type: ignore[arg-type]
            )
        except HostKeyError:
            raise
        except paramiko.BadHostKeyException as exc:
            raise changed_key_error(host.name, exc, known_hosts) from None
        except paramiko.AuthenticationException as exc:
            raise TransportError(
                host.name,
                f"authentication to bastion {hop.name} as {hop.user or 'the current user'} "
                f"failed: {exc}",
                hint="set User and IdentityFile for the bastion in the ssh client config",
            ) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(
                host.name,
                f"SSH handshake with bastion {hop.name} ({hop.address}:{hop.port}) failed: "
                f"{exc or type(exc).__name__}",
                hint="is the bastion's sshd answering?",
            ) from None


#: The passphrase of a protected key file, when it is not loaded in ssh-agent.
PASSPHRASE_ENV = "ROLLOUT_SSH_KEY_PASSPHRASE"


def _key_options(key_file: str | None) -> dict[str, object]:
    """How to authenticate, as OpenSSH does: the key file (if any) and the keys in ssh-agent
    (``$SSH_AUTH_SOCK``), so a passphrase-protected key loaded in the agent works; without a
    key file, the default keys too. A key file's passphrase may come from the environment."""
    options: dict[str, object] = {"allow_agent": True, "look_for_keys": key_file is None}
    if key_file:
        options["key_filename"] = [key_file]
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if passphrase:
        options["passphrase"] = passphrase
    return options


def _close(sock: socket.socket | paramiko.Channel, hops: Sequence[paramiko.SSHClient]) -> None:
    sock.close()
    for hop in reversed(hops):
        hop.close()
