"""Events: what the engine tells the world. The engine emits them; it never prints.

Renderers (``report.py``) turn them into terminal text or JSON lines; the ledger stores them.
An event's ``ts`` is given by whoever builds it, read from the run's
:class:`~rollout.clock.Clock` (``clock.wall()``), so an injected clock stamps the events too.
The JSON form is documented in ``docs/events.md`` and validated by ``docs/events.schema.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .output import clip, clip_data


class Kind(Enum):
    RUN_START = "run.start"
    RUN_FINISH = "run.finish"
    LOCK = "lock"
    CONNECT = "host.connect"
    READ = "host.read"
    PLAN = "plan"
    CONFIRM = "confirm"
    BATCH = "batch"
    APPLY = "host.apply"
    VERIFY = "host.verify"
    UNDO = "undo"
    ROLLBACK = "rollback"
    RESTART = "host.restart"
    SOAK = "soak"
    SAMPLE = "sample"
    VERDICT = "verdict"
    WAVE = "wave"  # a wave of a phase applied (rollout.waves)
    JUDGEMENT = "judgement"  # a wave's canary judged against its baseline (rollout.canary)
    DRIFT = "drift"
    NOTIFY = "notify"
    CHECK = "check"
    BACKUP = "backup"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Event:
    kind: Kind
    message: str
    host: str | None = None
    ok: bool | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    #: when it happened (epoch seconds), read from the run's clock by whoever emits it
    ts: float = field(kw_only=True)

    def __post_init__(self) -> None:
        # host output reaches events (errors, opaque flag values): every string is bounded
        # here, so the terminal, --json and the ledger rows made from events are bounded too
        object.__setattr__(self, "message", clip(self.message))
        if self.data:
            object.__setattr__(self, "data", clip_data(self.data))

    def to_json(self, run_id: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"ts": round(self.ts, 3), "event": self.kind.value}
        if run_id:
            out["run"] = run_id
        if self.host is not None:
            out["host"] = self.host
        if self.ok is not None:
            out["ok"] = self.ok
        out["message"] = self.message
        if self.data:
            out["data"] = dict(self.data)
        return out


Emit = Callable[[Event], None]


def discard(_event: Event) -> None:
    """An emitter that drops every event (for library callers that want none)."""


class Collector:
    """An emitter that keeps every event (tests, and the ledger sink's buffer)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: Kind) -> list[Event]:
        return [e for e in self.events if e.kind is kind]
