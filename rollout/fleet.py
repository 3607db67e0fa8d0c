"""The fleet: one open session per host, and parallel per-host work with a bounded pool.

Per-host results are values (:class:`Outcome`) until the caller decides what they mean.
:func:`each` is the one "connect, run everywhere, collect every host's outcome" helper;
:func:`run_parallel` is the same without the connect.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import HostError, HostOutcome, InputError, RightLost, RolloutError
from .models import Host
from .transport.base import Session, Transport

T = TypeVar("T")

#: Upper bound on concurrent connection set-ups and commands.
MAX_WORKERS = 64


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """One host's result: a value, or the error that prevented it."""

    host: str
    value: T | None = None
    error: HostError | None = None
    #: the error is the connection's (:func:`each`): the work never ran on this host
    unreachable: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def detail(self) -> str:
        """Why there is no value: the error's detail (``"no result"`` if none)."""
        return self.error.detail if self.error is not None else "no result"

    def summary(self) -> HostOutcome:
        """This outcome as the data a host-spanning error carries."""
        return HostOutcome(self.host, self.ok, None if self.ok else self.detail, self.unreachable)


class _Pool:
    """One thread pool for the whole process, so every wave reuses the same worker threads.

    Starting a thread waits for it to take the GIL; with a fresh pool per wave that was ~50
    thread starts per wave, contending with the SSH transports (BENCHMARKS.md). A wave
    started from inside a pool worker (nested) gets its own short-lived pool instead, so a
    worker never waits on tasks queued behind itself.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._local = threading.local()

    def _mark(self) -> None:
        self._local.worker = True

    def executor(self) -> ThreadPoolExecutor | None:
        """The shared pool, or None on a pool worker thread (nested waves)."""
        if getattr(self._local, "worker", False):
            return None
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.workers,
                    thread_name_prefix="rollout-host",
                    initializer=self._mark,
                )
            return self._pool


_POOL = _Pool(MAX_WORKERS)


def run_parallel(
    names: Sequence[str], work: Callable[[str], T], workers: int = MAX_WORKERS
) -> dict[str, Outcome[T]]:
    """Run ``work(name)`` for every name concurrently; results in the input order.

    Returns only when every ``work`` call has finished, even when the wait is interrupted.
    """

    def one(name: str) -> Outcome[T]:
        try:
            return Outcome(name, value=work(name))
        except RightLost:
            raise  # the run must stop: never one host's failure
        except HostError as exc:
            return Outcome(name, error=exc)
        except RolloutError as exc:
            return Outcome(name, error=HostError(name, exc.message, hint=exc.hint))

    if not names:
        return {}
    if len(names) == 1:
        return {names[0]: one(names[0])}
    shared = _POOL.executor() if workers >= MAX_WORKERS else None
    if shared is None:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(names)))) as pool:
            results = list(pool.map(one, names))
        return {r.host: r for r in results}
    futures = [shared.submit(one, name) for name in names]
    try:
        results = [f.result() for f in futures]
    finally:
        # like leaving a `with ThreadPoolExecutor` block: nothing outlives the wave
        for future in futures:
            future.cancel()
        wait(futures)
    return {r.host: r for r in results}


#: Connects to hosts and returns the ones that failed (``Executor.connect_all``, or
#: :func:`connect_failures` over a backend's ``connect``).
Connect = Callable[[Sequence[str]], Mapping[str, HostError]]


def each(
    names: Sequence[str], work: Callable[[str], T], *, connect: Connect
) -> dict[str, Outcome[T]]:
    """Connect to every host, then run ``work(name)`` on the ones that connected, in parallel.

    Every name gets an outcome, in the input order: a host that did not connect comes back
    with its connection error and ``unreachable`` set (``work`` never ran there).
    """
    names = list(names)
    failed = connect(names) if names else {}
    done = run_parallel([n for n in names if n not in failed], work)
    return {
        n: Outcome(n, error=failed[n], unreachable=True) if n in failed else done[n] for n in names
    }


def connect_failures(connect: Callable[[Sequence[str]], Mapping[str, Outcome[T]]]) -> Connect:
    """A :data:`Connect` over a ``connect`` that returns an outcome per host (a backend's)."""

    def failures(names: Sequence[str]) -> dict[str, HostError]:
        results = connect(names)
        out: dict[str, HostError] = {}
        for name in names:
            error = results[name].error if name in results else HostError(name, "failed")
            if error is not None:
                out[name] = error
        return out

    return failures


class Fleet:
    """Sessions to a set of hosts, opened in parallel and kept for the whole run."""

    def __init__(self, hosts: Iterable[Host], transport: Transport) -> None:
        self.hosts = {h.name: h for h in hosts}
        self.transport = transport
        self.sessions: dict[str, Session] = {}

    @property
    def names(self) -> list[str]:
        return list(self.hosts)

    def connect(self, names: Sequence[str] | None = None) -> dict[str, Outcome[Session]]:
        """Open (or reuse) a session per host; failures come back as outcomes.

        Bad input met while connecting (a missing or unparseable known_hosts file) is raised,
        not returned: it is the operator's to fix, not one host's failure.
        """
        todo = [n for n in (names or self.names) if n not in self.sessions]
        bad_input: list[InputError] = []

        def open_one(name: str) -> Session:
            try:
                session = self.transport.connect(self.hosts[name])
            except InputError as exc:
                bad_input.append(exc)
                raise
            self.sessions[name] = session
            return session

        results = run_parallel(todo, open_one)
        if bad_input:
            raise bad_input[0]
        out: dict[str, Outcome[Session]] = {}
        for name in names or self.names:
            if name in results:
                out[name] = results[name]
            else:
                out[name] = Outcome(name, value=self.sessions[name])
        return out

    def drop(self, name: str) -> None:
        """Forget a host's session (after a transport failure), so the next use reconnects."""
        session = self.sessions.pop(name, None)
        if session is not None:
            # closing a broken session must not mask the failure that broke it
            with contextlib.suppress(Exception):
                session.close()

    def close(self) -> None:
        for name in list(self.sessions):
            self.drop(name)
