"""The executor's shared state: what one run drives and how it tells the world.

:class:`ExecutorCore` holds the playbook, hosts, backend, ledger, run, emitter, clock, retry
deadline and cancel flag of one command's run, plus the ledger lock and fleet side it must
keep to change hosts; :meth:`~ExecutorCore.emit` stamps an event with the run's clock and
records it in the ledger before the terminal sees it. The concerns are its subclasses
(:mod:`.claims`, :mod:`.preflight`, :mod:`.converging`), composed into
:class:`rollout.executor.Executor`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from ..backend import Backend
from ..cancel import Cancel
from ..clock import SYSTEM, Clock
from ..errors import CommandTimeout, HostError, TransportError
from ..events import Emit, Event, Kind
from ..fleetstate import FleetSide
from ..ledger import Ledger, LockRecord, RunRecord
from ..models import Playbook


class ExecutorCore:
    """One command's run over one inventory: its inputs, its right to change hosts, its events."""

    def __init__(
        self,
        *,
        playbook: Playbook,
        inventory_name: str,
        hosts: Sequence[str],
        backend: Backend,
        ledger: Ledger,
        run: RunRecord,
        emit: Emit,
        clock: Clock = SYSTEM,
        retry_deadline: float = 60.0,
        cancel: Cancel | None = None,
    ) -> None:
        self.playbook = playbook
        self.inventory = inventory_name
        self.hosts = list(hosts)
        self.backend = backend
        self.ledger = ledger
        self.run = run
        self.emit_raw = emit
        # event stamps (its wall time), retry deadlines and lease races (monotonic, sleep)
        self.clock = clock
        self.retry_deadline = retry_deadline
        self.cancel = cancel or Cancel()
        #: the ledger lock this run holds (set by ``commands.running``): checked before changes
        self.lock: LockRecord | None = None
        #: this run's side of the hosts' records and leases (None: a backend without them)
        self.side: FleetSide | None = getattr(backend, "side", None)
        self._announced: set[tuple[str, str]] = set()  # lease takeovers already announced

    # -- events --------------------------------------------------------------------------

    def emit(
        self,
        kind: Kind,
        message: str,
        *,
        host: str | None = None,
        ok: bool | None = None,
        **data: object,
    ) -> None:
        event = Event(kind, message, host=host, ok=ok, data=data, ts=self.clock.wall())
        self.ledger.event(self.run.id, kind.value, event.to_json(), host=host)
        # the terminal is a side output (a closed pipe, a full disk): it must never stop a
        # change from being verified and recorded
        with contextlib.suppress(Exception):
            self.emit_raw(event)

    def _console_data(self, name: str) -> dict[str, object]:
        """Which console path ``name`` uses (and why rpc, when erl_call was wanted)."""
        choice = self.backend.console_path(name)
        if choice is None:
            return {}
        data: dict[str, object] = {"console": choice.path.value}
        if choice.fallback:
            data["console_fallback"] = choice.fallback
        return data

    def forget_if_broken(self, name: str, error: HostError) -> None:
        """Drop ``name``'s connection when ``error`` says it is broken (the next call redials)."""
        if isinstance(error, (TransportError, CommandTimeout)):
            self.backend.reset(name)
