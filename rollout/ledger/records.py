"""The ledger's records: frozen values for what it holds, and the rows they are read from.

A run (:class:`RunRecord`, :class:`RunStatus`), its journal (:class:`EventRecord`,
:class:`Intent`), an inventory's phase and soak window (:class:`InventoryState`), approvals
(:class:`Approval`) and waves (:class:`WaveRecord`); the ``*_COLUMNS`` each is selected with,
the converters from a row, and the JSON that event data, intent details and judgements are
stored as. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from enum import Enum
from typing import Any, cast


class RunStatus(Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    INTERRUPTED = "interrupted"  # a signal stopped it after settling the current step
    CRASHED = "crashed"  # its process vanished without finishing (set by ``reap``)
    REFUSED = "refused"  # a gate, confirmation or the lock turned it away


@dataclass(frozen=True)
class RunRecord:
    """One invocation of a mutating command against one inventory."""

    id: str
    inventory: str
    command: str
    argv: tuple[str, ...]
    who: str
    where: str
    pid: int
    started: float
    finished: float | None
    status: RunStatus
    reason: str | None
    summary: str | None


@dataclass(frozen=True)
class EventRecord:
    """One journal entry. ``run_id`` is None for inventory-level events (unlock, pause...)."""

    id: int
    run_id: str | None
    ts: float
    kind: str
    host: str | None
    data: dict[str, object]
    inventory: str = ""


@dataclass(frozen=True)
class Intent:
    """A remote change announced before it was made; ``finished``/``ok`` once settled."""

    id: int
    run_id: str
    host: str
    action: str
    target_phase: int | None
    detail: dict[str, object]
    started: float
    finished: float | None
    ok: bool | None
    result: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class InventoryState:
    """The inventory's recorded phase, its soak window and whether it is paused."""

    inventory: str
    phase: int | None  # None: never deployed
    phase_run_id: str | None
    phase_changed: float | None
    soak_phase: int | None
    soak_required: float
    soak_counted: float
    soak_updated: float | None
    soak_complete: bool
    paused: bool
    paused_by: str | None
    paused_reason: str | None


@dataclass(frozen=True)
class Approval:
    """Someone's go-ahead for a phase; it counts until the inventory's phase next changes."""

    id: int
    inventory: str
    phase: int
    who: str
    note: str | None
    ts: float


@dataclass(frozen=True)
class WaveRecord:
    """One wave of a phase's rollout: the hosts it changed, the canary so far, its verdict."""

    id: int
    inventory: str
    run_id: str  # the run that applied it (and recorded the phase for it)
    phase: int
    from_phase: int  # where the baseline hosts are, and where a failed wave goes back to
    index: int  # 1-based
    total: int  # waves in this rollout of the phase, the final one included
    hosts: tuple[str, ...]  # changed by this wave
    canary: tuple[str, ...]  # every host changed in this phase so far (this wave's included)
    soak: float
    started: float
    finished: float | None
    verdict: str | None  # a canary.WaveVerdict value once judged
    judgement: dict[str, object] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.index >= self.total

    @property
    def title(self) -> str:
        return f"wave {self.index}/{self.total} of phase {self.phase}"


_WAVE_COLUMNS = (
    "id, inventory, run_id, phase, from_phase, idx, total, hosts, canary, soak, started,"
    " finished, verdict, judgement"
)


def _wave(row: Any) -> WaveRecord:
    def names(text: str) -> tuple[str, ...]:
        value = json.loads(text)
        return tuple(str(v) for v in value) if isinstance(value, list) else ()

    return WaveRecord(int(row[0]), row[1], row[2], int(row[3]), int(row[4]), int(row[5]),
                      int(row[6]), names(row[7]), names(row[8]), float(row[9]), float(row[10]),
                      row[11], row[12], _load(row[13]))  # fmt: skip


def _jsonable(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)  # a journal write must never fail a rollout over formatting


def _dump(data: Mapping[str, object] | None) -> str:
    return json.dumps(dict(data or {}), sort_keys=True, default=_jsonable)


def _load(text: str | None) -> dict[str, object]:
    return cast(dict[str, object], json.loads(text)) if text else {}


_RUN_COLUMNS = (
    "id, inventory, command, argv, who, origin, pid, started, finished, status, reason, summary"
)
_INTENT_COLUMNS = "id, run_id, host, action, target_phase, detail, started, finished, ok, result"
_EVENT_COLUMNS = "id, run_id, ts, kind, host, data, inventory"


def _run(row: Any) -> RunRecord:
    return RunRecord(
        id=row[0],
        inventory=row[1],
        command=row[2],
        argv=tuple(json.loads(row[3])),
        who=row[4],
        where=row[5],
        pid=row[6],
        started=row[7],
        finished=row[8],
        status=RunStatus(row[9]),
        reason=row[10],
        summary=row[11],
    )


def _intent(row: Any) -> Intent:
    return Intent(
        id=row[0],
        run_id=row[1],
        host=row[2],
        action=row[3],
        target_phase=row[4],
        detail=_load(row[5]),
        started=row[6],
        finished=row[7],
        ok=None if row[8] is None else bool(row[8]),
        result=_load(row[9]),
    )


def _event(row: Any) -> EventRecord:
    return EventRecord(row[0], row[1], row[2], row[3], row[4], _load(row[5]), row[6])
