"""Walks plans through a backend: connect, read, diff, apply, read back, verify, undo.

The executor emits events and records intent and outcome in the ledger; it never prints,
sleeps on its own clock or exits. Every success it reports was read back from the host.

One :class:`Executor` composes the concerns, each a module of this package: :mod:`.core`
(``ExecutorCore``: the run's inputs, its lock and fleet side, its events), :mod:`.claims`
(the right to change hosts: the lock and lease checks, claiming and giving back the fleet
lease), :mod:`.preflight` (connecting, reading and claiming every host before a change) and
:mod:`.converging` (plan, confirm, converge with read-back, retry, undo). :mod:`.results`
holds the per-host results and the pure judgements of them.
"""

from __future__ import annotations

from .claims import RACE_WAIT
from .converging import RETRY_PAUSE, RETRY_PAUSE_MAX, Confirm, Converging
from .preflight import Preflight
from .results import HostResult, StepReport

__all__ = [
    "RACE_WAIT",
    "RETRY_PAUSE",
    "RETRY_PAUSE_MAX",
    "Confirm",
    "Executor",
    "HostResult",
    "StepReport",
]


class Executor(Preflight, Converging):
    """Runs one command's steps for one inventory, inside a run recorded in the ledger."""
