"""The fleet: one open session per host, and parallel per-host work with a bounded pool.

Per-host results are values (:class:`Outcome`) until the caller decides what they mean.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import HostError, InputError, RolloutError
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

    @property
    def ok(self) -> bool:
        return self.error is None


def run_parallel(
    names: Sequence[str], work: Callable[[str], T], workers: int = MAX_WORKERS
) -> dict[str, Outcome[T]]:
    """Run ``work(name)`` for every name concurrently; results in the input order."""

    def one(name: str) -> Outcome[T]:
        try:
            return Outcome(name, value=work(name))
        except HostError as exc:
            return Outcome(name, error=exc)
        except RolloutError as exc:
            return Outcome(name, error=HostError(name, exc.message, hint=exc.hint))

    if not names:
        return {}
    if len(names) == 1:
        return {names[0]: one(names[0])}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(names)))) as pool:
        results = list(pool.map(one, names))
    return {r.host: r for r in results}


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
