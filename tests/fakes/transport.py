"""A scripted transport: every command a session runs goes to a handler as a :class:`Request`
(the exact command line the SSH transport would send, and the stdin bytes), and the handler's
:class:`~rollout.transport.base.CommandResult` comes back; nothing touches SSH."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from rollout.models import Host
from rollout.output import MAX_OUTPUT_BYTES
from rollout.transport.base import CommandResult, remote_command


@dataclass(frozen=True)
class Request:
    """One command as it would leave the controller: the host, the command line under the
    remote ``timeout`` (as ``transport.ssh`` sends it), the stdin, and the deadline."""

    host: Host
    argv: tuple[str, ...]
    command: str
    stdin: bytes
    timeout: float


Handler = Callable[[Request], CommandResult]
#: Called for every connection; raises a TransportError to refuse it.
Connector = Callable[[Host], None]


class ScriptedSession:
    """A :class:`~rollout.transport.base.Session` whose commands the handler answers."""

    def __init__(self, host: Host, transport: ScriptedTransport) -> None:
        self.host = host
        self.transport = transport
        self.closed = False

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float = 60.0,
        max_output: int = MAX_OUTPUT_BYTES,
    ) -> CommandResult:
        request = Request(self.host, tuple(argv), remote_command(argv, timeout), stdin or b"",
                          timeout)  # fmt: skip
        self.transport.record(request)
        result = self.transport.handler(request)
        # kept to max_output per stream, as the SSH session keeps them
        return replace(result, command=request.command, stdout=result.stdout[:max_output],
                       stderr=result.stderr[:max_output])  # fmt: skip

    def close(self) -> None:
        self.closed = True


class ScriptedTransport:
    """A :class:`~rollout.transport.base.Transport` over ``handler``; ``requests`` keeps every
    command sent, in order, for tests to inspect."""

    def __init__(self, handler: Handler, connect: Connector | None = None) -> None:
        self.handler = handler
        self.connector = connect
        self.requests: list[Request] = []
        self.connects: list[str] = []
        self._lock = threading.Lock()

    def connect(self, host: Host) -> ScriptedSession:
        with self._lock:
            self.connects.append(host.name)
        if self.connector is not None:
            self.connector(host)
        return ScriptedSession(host, self)

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)
