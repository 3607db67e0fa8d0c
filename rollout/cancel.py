"""Cancellation: SIGINT, SIGTERM, SIGHUP and SIGQUIT stop new changes; the current step is
finished or undone.

The first signal sets the token: the engine notices between steps (and at once while it
waits), settles what it was doing, records it and raises :class:`Interrupted`. A second
signal raises KeyboardInterrupt for an operator who really means "stop now"; even then the
host calls under way finish and are recorded (``fleet.run_parallel`` waits for them), and a
rollback has recorded its target and paused the rollout before it changed the first host.

SIGTERM is what CI runners send on cancel, SIGHUP what a closed terminal or SSH session
sends, SIGQUIT what Ctrl-\\ sends: none of them is a hard kill any more. Only SIGKILL is, and
the ledger's intents cover it (docs/safety.md, "Crash safety").
"""

from __future__ import annotations

import atexit
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from .errors import Interrupted


class Cancel:
    """A cancellation token; its :meth:`wait` is the engine's only way to pause."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None
        self._closing = False
        self.late = False  # a second signal came while the run was closing its record

    @contextmanager
    def closing(self) -> Iterator[None]:
        """While a run gives its leases back and writes its outcome, a second signal does not
        stop it half-way (a run left RUNNING, a lease held): it is noted in ``late`` and the
        run ends as it was going to, its outcome recorded."""
        self._closing = True
        try:
            yield
        finally:
            self._closing = False

    def set(self, why: str = "cancelled") -> None:
        self.signal_name = why
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True as soon as the run is cancelled."""
        return self._event.wait(max(0.0, seconds))

    def check(self, what: str) -> None:
        if self.is_set():
            raise Interrupted(f"{self.signal_name or 'cancelled'}: stopped before {what}")

    def install(self) -> None:
        """Route SIGINT, SIGTERM, SIGHUP and SIGQUIT to this token."""
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, _frame: FrameType | None) -> None:
            if self.is_set():
                if self._closing:
                    self.late = True
                    return
                raise KeyboardInterrupt
            self.set(signal.Signals(signum).name)

        for signum in SIGNALS:
            signal.signal(signum, handler)
        global _EXIT_HOOKED
        if not _EXIT_HOOKED:  # once a process, however many runs install a token
            atexit.register(_ignore_while_exiting)
            _EXIT_HOOKED = True


_EXIT_HOOKED = False


def _ignore_while_exiting() -> None:
    """Once the process is exiting (its run over, its outcome recorded), a late signal is
    ignored: the interpreter's finalization would otherwise restore the default action and a
    SIGTERM would end the process as killed (exit -15) instead of with the run's own code."""
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


#: The signals that cancel a run (the first settles, a second stops at once).
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
