"""A run's evidence as typed values: timeline marks, metric series, per-host results, judgements.

Pure: :func:`build` takes what the ledger's read API returns (the run, its events, its intents
and the inventory-level events around it) and returns an :class:`Evidence`; :func:`gather`
is the one function that reads a :class:`~rollout.ledger.Ledger`, through its public methods
only. The HTML page (``htmlreport.py``) and its charts (``charts.py``) draw from this.

Sample events hold each host's raw values and each threshold as its ``describe()`` text
(``"error_rate > 5%"``: the breach side); :func:`parse_limit` turns that text back into a
:class:`~rollout.models.Threshold`, so each point is judged again here exactly as the monitor
judged it. A value that cannot be judged (host error, metric missing, not a number) is an
*inconclusive* point, as in ``monitor.judge``.

Canary/baseline judgements (issue 16) are read from ``judgement`` events when a run has any;
the shape this module accepts is documented in ``docs/report-page.md``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property

from .ledger import EventRecord, Intent, Ledger, RunRecord
from .models import Direction, Threshold


class Lane(Enum):
    """The rows of the timeline, top to bottom."""

    RUN = "run"
    PEOPLE = "people"
    PHASE = "phase"
    WAVE = "waves"
    BATCH = "batches"
    HOSTS = "hosts"
    SOAK = "soak"
    HEALTH = "health"
    DRIFT = "drift repairs"
    RESTART = "restarts"
    ROLLBACK = "rollback"
    NOTIFY = "notifications"
    OTHER = "other"


_LANES = {
    "run.start": Lane.RUN, "run.finish": Lane.RUN, "run.crashed": Lane.RUN, "lock": Lane.RUN,
    "lock.takeover": Lane.PEOPLE, "lock.lost": Lane.PEOPLE, "lock.unlocked": Lane.PEOPLE,
    "phase.approved": Lane.PEOPLE, "inventory.paused": Lane.PEOPLE,
    "inventory.resumed": Lane.PEOPLE, "confirm": Lane.PEOPLE,
    "plan": Lane.PHASE, "phase.set": Lane.PHASE, "soak.required": Lane.PHASE,
    "check": Lane.PHASE, "backup": Lane.PHASE,
    "wave": Lane.WAVE, "batch": Lane.BATCH,
    "host.connect": Lane.HOSTS, "host.read": Lane.HOSTS, "host.apply": Lane.HOSTS,
    "host.verify": Lane.HOSTS,
    "soak": Lane.SOAK, "sample": Lane.HEALTH, "verdict": Lane.HEALTH, "judgement": Lane.HEALTH,
    "drift": Lane.DRIFT, "host.restart": Lane.RESTART,
    "rollback": Lane.ROLLBACK, "undo": Lane.ROLLBACK, "notify": Lane.NOTIFY,
}  # fmt: skip


#: Event kinds that may carry canary/baseline judgements (the engine's choice is issue 16's).
JUDGEMENT_KINDS = ("judgement", "verdict", "wave")


class PointState(Enum):
    OK = "ok"
    BREACH = "breach"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Mark:
    """One timeline entry: an event of the run (or about its inventory while it ran)."""

    ts: float
    kind: str
    lane: Lane
    message: str
    host: str | None = None
    ok: bool | None = None
    verdict: str | None = None  # samples: healthy / breach / inconclusive
    who: str | None = None  # who did it, where the event says
    phase: int | None = None  # the phase it is about (a rollback's target)

    @property
    def notable(self) -> bool:
        """Shown in the key moments: fleet-level steps, people, and every host-level problem."""
        if self.lane is Lane.HOSTS:
            return self.ok is False
        if self.lane is Lane.HEALTH:
            return self.verdict not in (None, "healthy")
        return True


@dataclass(frozen=True)
class Point:
    """One host's value of one metric at one poll, judged against that poll's threshold."""

    ts: float
    host: str
    value: float | None
    state: PointState
    limit: Threshold | None
    note: str = ""


@dataclass(frozen=True)
class Series:
    """Every host's samples of one health metric over the run."""

    metric: str
    unit: str
    points: tuple[Point, ...]
    hosts: tuple[str, ...]

    def of(self, host: str) -> tuple[Point, ...]:
        """``host``'s points, oldest first."""
        return self._by_host.get(host, ())

    @cached_property
    def _by_host(self) -> dict[str, tuple[Point, ...]]:  # computed once: fleets are large
        grouped: dict[str, list[Point]] = {}
        for p in self.points:
            grouped.setdefault(p.host, []).append(p)
        return {host: tuple(pts) for host, pts in grouped.items()}

    @cached_property
    def first_breach(self) -> Point | None:
        return next((p for p in self.points if p.state is PointState.BREACH), None)

    @cached_property
    def inconclusive(self) -> tuple[Point, ...]:
        return tuple(p for p in self.points if p.state is PointState.INCONCLUSIVE)

    @cached_property
    def worst_host(self) -> str | None:
        """The host that breached first, else the one with the worst value (by the limit's side)."""
        if self.first_breach is not None:
            return self.first_breach.host
        best: tuple[float, str] | None = None
        for p in self.points:
            if p.value is None:
                continue
            side = -1.0 if p.limit is not None and p.limit.direction is Direction.MIN else 1.0
            if best is None or side * p.value > best[0]:
                best = (side * p.value, p.host)
        return None if best is None else best[1]


@dataclass(frozen=True)
class HostResult:
    """What happened to one host in the run, for the per-host table."""

    host: str
    outcome: str  # verified / failed / unreachable / sampled / open change / -
    ok: bool | None
    phase: int | None  # the phase last verified on it
    detail: str
    changes: int
    drift_repairs: int
    restarts: int
    breaches: int
    inconclusive: int
    worst: tuple[tuple[str, float | None, PointState], ...]  # per metric: worst value, state


@dataclass(frozen=True)
class Side:
    """One side of a canary/baseline judgement."""

    hosts: tuple[str, ...]
    count: int | None
    median: float | None
    values: tuple[float, ...] = ()


@dataclass(frozen=True)
class Judgement:
    """A canary-vs-baseline judgement of one metric (issue 16's evidence), as recorded."""

    ts: float
    metric: str
    verdict: str
    canary: Side
    baseline: Side
    wave: str | None = None
    difference: float | None = None
    allowed: str | None = None
    test: str | None = None
    p_value: float | None = None
    score: float | None = None
    note: str | None = None
    wave_verdict: str | None = None  # the wave's verdict from all its metrics, when recorded


@dataclass(frozen=True)
class SoakWindow:
    """From a soak's start to its end: complete, interrupted, rolled back, or still open."""

    start: float
    end: float
    phase: int | None
    outcome: str  # complete / interrupted / rolled back / unfinished


@dataclass(frozen=True)
class Evidence:
    """Everything the page shows about one run."""

    run: RunRecord
    start: float
    end: float
    marks: tuple[Mark, ...]
    series: tuple[Series, ...]
    hosts: tuple[HostResult, ...]
    judgements: tuple[Judgement, ...]
    open_intents: tuple[Intent, ...]
    verdicts: Mapping[str, int] = field(default_factory=dict)  # sample verdict -> count
    soaks: tuple[SoakWindow, ...] = ()

    @property
    def rollback(self) -> Mark | None:
        """The first rollback step of the run (automatic, emergency or requested)."""
        return next((m for m in self.marks if m.kind == "rollback"), None)

    @cached_property
    def breach(self) -> Point | None:
        """The earliest breaching point across metrics."""
        found = [s.first_breach for s in self.series if s.first_breach is not None]
        return min(found, key=lambda p: p.ts) if found else None

    @property
    def lanes(self) -> tuple[Lane, ...]:
        used = {m.lane for m in self.marks}
        return tuple(lane for lane in Lane if lane in used)


_LIMIT_RE = re.compile(r"^(?P<metric>.+) (?P<op>[<>]) (?P<limit>[-+]?(?:inf|nan|[0-9.]+(?:e[-+]?[0-9]+)?))(?P<unit>.*)$")  # fmt: skip  # noqa: E501


def parse_limit(text: str) -> Threshold | None:
    """The :class:`Threshold` whose ``describe()`` is ``text``; None if it is not one."""
    found = _LIMIT_RE.match(text.strip())
    if found is None:
        return None
    try:
        limit = float(found["limit"])
    except ValueError:
        return None
    direction = Direction.MAX if found["op"] == ">" else Direction.MIN
    return Threshold(found["metric"], direction, limit, found["unit"])


def _inner(event: EventRecord) -> tuple[str, bool | None, dict[str, object]]:
    """(message, ok, details) of an event, whether written by ``emit`` or by the ledger."""
    data = event.data
    if "message" in data and "event" in data:
        inner = data.get("data")
        ok = data.get("ok")
        return (
            str(data.get("message") or ""),
            ok if isinstance(ok, bool) else None,
            dict(inner) if isinstance(inner, dict) else {},
        )
    return _describe(event.kind, data), _raw_ok(event.kind, data), dict(data)


def _raw_ok(kind: str, data: Mapping[str, object]) -> bool | None:
    if kind == "notify":
        delivery = data.get("delivery")
        return None if delivery in (None, "not_configured") else delivery == "sent"
    if kind in ("run.crashed", "lock.lost"):
        return False
    return None


def _describe(kind: str, data: Mapping[str, object]) -> str:
    """A sentence for the events the ledger (or a notifier) journals as bare data."""
    get = data.get
    texts = {
        "phase.set": f"recorded phase {get('to')} (was {get('from')}); "
        f"soak {get('soak_required')}s starts",
        "soak.required": f"soak requirement changed from {get('from')}s to {get('to')}s",
        "run.crashed": f"run marked crashed: {get('why')} (by {get('reaped_by')})",
        "lock.takeover": f"lock taken over ({get('reason')}) by {get('by')}",
        "lock.lost": f"this run lost its lock to {get('by')}",
        "lock.unlocked": f"lock removed by {get('by')}",
        "inventory.paused": f"rollouts paused by {get('who')}: {get('reason') or 'no reason'}",
        "inventory.resumed": f"rollouts resumed by {get('who')}",
        "phase.approved": f"phase {get('phase')} approved by {get('who')}"
        + (f": {get('note')}" if get("note") else ""),
        "notify": f"notification {get('kind') or ''}: {get('delivery') or 'recorded'}"
        + (f" ({get('error')})" if get("error") else ""),
    }
    return texts.get(kind, kind)


def _who(kind: str, data: Mapping[str, object]) -> str | None:
    for key in ("who", "by", "reaped_by"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _number(value: object) -> float | None:
    """A finite number as a float; None for anything else (bools, text, NaN, infinities)."""
    if type(value) is float:  # exact types: fast on fleets, and a bool is not a number here
        return value if math.isfinite(value) else None
    if type(value) is int:
        return float(value)
    return None


def _points(ts: float, inner: Mapping[str, object]) -> Iterable[tuple[str, Point]]:
    """Every (metric, point) of one sample event."""
    thresholds = inner.get("thresholds")
    values = inner.get("values")
    if not isinstance(thresholds, dict) or not isinstance(values, dict):
        return
    for metric, text in thresholds.items():
        limit = parse_limit(str(text))
        for host, got in values.items():
            host = str(host)
            if not isinstance(got, dict):
                yield metric, Point(ts, host, None, PointState.INCONCLUSIVE, limit, "no values")
            elif "error" in got and metric not in got:
                note = str(got.get("error"))
                yield metric, Point(ts, host, None, PointState.INCONCLUSIVE, limit, note)
            elif metric not in got:
                yield metric, Point(ts, host, None, PointState.INCONCLUSIVE, limit, "missing")
            else:
                value = _number(got[metric])
                if value is None:
                    note = f"not a number ({got[metric]})"
                    yield metric, Point(ts, host, None, PointState.INCONCLUSIVE, limit, note)
                    continue
                hit = limit is not None and limit.breached_by(value)
                state = PointState.BREACH if hit else PointState.OK
                yield metric, Point(ts, host, value, state, limit)


def _side(value: object) -> Side:
    data = value if isinstance(value, dict) else {}
    hosts = data.get("hosts")
    raw = data.get("values")
    count = data.get("count")
    return Side(
        hosts=tuple(str(h) for h in hosts) if isinstance(hosts, list) else (),
        count=count if isinstance(count, int) and not isinstance(count, bool) else None,
        median=_number(data.get("median")),
        values=tuple(v for v in (_number(x) for x in raw) if v is not None)
        if isinstance(raw, list)
        else (),
    )


def _judgements(ts: float, inner: Mapping[str, object]) -> Iterable[Judgement]:
    """Judgements in an event: one, a list under ``judgements`` (docs/report-page.md), or a
    ``canary.WaveJudgement.as_data()`` (``verdict``, ``score``, ``metrics``)."""
    wave = None if inner.get("wave") is None else str(inner.get("wave"))
    metrics = inner.get("metrics")
    if isinstance(metrics, list) and any(isinstance(m, dict) and "outcome" in m for m in metrics):
        canary_hosts, baseline_hosts = inner.get("canary"), inner.get("baseline")
        for m in metrics:
            if not isinstance(m, dict):
                continue
            allowed = _number(m.get("allowed"))
            p_value = _number(m.get("p_value"))
            yield Judgement(
                ts=ts, metric=str(m.get("metric") or "-"),
                verdict=str(m.get("outcome") or "inconclusive"),
                canary=_side({"hosts": canary_hosts, "count": m.get("canary_count"),
                              "median": m.get("canary_median")}),
                baseline=_side({"hosts": baseline_hosts, "count": m.get("baseline_count"),
                                "median": m.get("baseline_median")}),
                wave=wave, difference=_number(m.get("shift")),
                allowed=None if allowed is None else f"{allowed:g}",
                test=None if p_value is None else "Mann-Whitney U", p_value=p_value,
                score=_number(inner.get("score")),
                note=None if m.get("reason") is None else str(m.get("reason")),
                wave_verdict=None if inner.get("verdict") is None else str(inner.get("verdict")),
            )  # fmt: skip
        return
    many = inner.get("judgements")
    items = many if isinstance(many, list) else [inner]
    for item in items:
        if not isinstance(item, dict) or "canary" not in item or "baseline" not in item:
            continue
        text = {k: (None if item.get(k) is None else str(item.get(k)))
                for k in ("wave", "allowed", "test", "note")}  # fmt: skip
        yield Judgement(
            ts=ts, metric=str(item.get("metric") or "-"),
            verdict=str(item.get("verdict") or "inconclusive"),
            canary=_side(item.get("canary")), baseline=_side(item.get("baseline")),
            wave=text["wave"] if text["wave"] is not None else wave,
            difference=_number(item.get("difference")), allowed=text["allowed"],
            test=text["test"], p_value=_number(item.get("p_value")),
            score=_number(item.get("score")), note=text["note"],
            wave_verdict=None if inner.get("wave_verdict") is None
            else str(inner.get("wave_verdict")),
        )  # fmt: skip


def build(
    run: RunRecord,
    events: Sequence[EventRecord],
    intents: Sequence[Intent] = (),
    around: Sequence[EventRecord] = (),
) -> Evidence:
    """The evidence of ``run`` from its events and intents; ``around`` adds the inventory's own
    events (pauses, approvals, unlocks: no run id) that fall within the run's time."""
    end = run.finished if run.finished is not None else max([run.started, *(e.ts for e in events)])
    extra = [e for e in around if e.run_id is None and run.started <= e.ts <= end]
    ordered = sorted([*events, *extra], key=lambda e: (e.ts, e.id))
    marks: list[Mark] = []
    by_metric: dict[str, list[Point]] = {}
    judgements: list[Judgement] = []
    verdicts: dict[str, int] = {}
    counts: dict[str, dict[str, int]] = {}
    last_verify: dict[str, tuple[bool, int | None, str]] = {}
    failures: dict[str, str] = {}
    seen_hosts: list[str] = []

    def host_seen(name: str) -> dict[str, int]:
        if name not in counts:
            counts[name] = {"changes": 0, "drift": 0, "restarts": 0}
            seen_hosts.append(name)
        return counts[name]

    soaks: list[SoakWindow] = []
    soaking: tuple[float, int | None] | None = None  # (start, phase) of the open soak

    def close(ts: float, outcome: str) -> None:
        nonlocal soaking
        if soaking is not None:
            soaks.append(SoakWindow(soaking[0], ts, soaking[1], outcome))
            soaking = None

    for event in ordered:
        message, ok, inner = _inner(event)
        verdict = str(inner["verdict"]) if event.kind == "sample" and "verdict" in inner else None
        lane = _LANES.get(event.kind, Lane.OTHER)
        if lane is Lane.OTHER and "wave" in inner and event.kind in ("info", "soak"):
            lane = Lane.WAVE
        who = _who(event.kind, inner) or (f"{run.who}@{run.where}" if event.kind == "run.start"
                                          else None)  # fmt: skip
        target = inner.get("target", inner.get("phase", inner.get("to")))
        phase = target if isinstance(target, int) and not isinstance(target, bool) else None
        marks.append(Mark(event.ts, event.kind, lane, message, event.host, ok, verdict, who, phase))
        if verdict is not None:
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
            for metric, point in _points(event.ts, inner):
                by_metric.setdefault(metric, []).append(point)
                host_seen(point.host)
        if event.kind == "soak":
            if inner.get("complete") or inner.get("interrupted"):
                close(event.ts, "complete" if inner.get("complete") else "interrupted")
            else:
                close(event.ts, "unfinished")
                soaking = (event.ts, phase)
        elif event.kind == "rollback":
            close(event.ts, "rolled back")
        if event.kind in JUDGEMENT_KINDS:
            judgements.extend(_judgements(event.ts, inner))
        if event.host is None:
            continue
        tally = host_seen(event.host)
        if event.kind == "host.apply":
            tally["changes"] += 1
        elif event.kind == "drift" and ok is True:
            tally["drift"] += 1
        elif event.kind == "host.restart" and ok is not False:
            tally["restarts"] += 1 if "command" in inner else 0
        if event.kind == "host.verify" and ok is not None:
            verified = inner.get("phase")
            at = verified if isinstance(verified, int) else None
            last_verify[event.host] = (ok, at, message)
        if event.kind in ("host.connect", "host.read") and ok is False:
            failures[event.host] = message
        elif event.kind == "host.connect" and ok is True:
            failures.pop(event.host, None)

    series = tuple(
        Series(metric, next((p.limit.unit for p in pts if p.limit is not None), ""),
               tuple(pts), tuple(dict.fromkeys(p.host for p in pts)))
        for metric, pts in by_metric.items()
    )  # fmt: skip
    open_intents = tuple(i for i in intents if i.finished is None)
    hosts = tuple(
        _host_result(name, counts[name], last_verify.get(name), failures.get(name), series,
                     [i for i in open_intents if i.host == name])
        for name in seen_hosts
    )  # fmt: skip
    close(end, "unfinished")
    return Evidence(run, run.started, max(end, run.started), tuple(marks), series, hosts,
                    tuple(judgements), open_intents, verdicts, tuple(soaks))  # fmt: skip


def _host_result(
    name: str,
    tally: Mapping[str, int],
    verify: tuple[bool, int | None, str] | None,
    failure: str | None,
    series: Sequence[Series],
    open_intents: Sequence[Intent],
) -> HostResult:
    worst: list[tuple[str, float | None, PointState]] = []
    breaches = inconclusive = 0
    for s in series:
        pts = s.of(name)
        breaches += sum(p.state is PointState.BREACH for p in pts)
        inconclusive += sum(p.state is PointState.INCONCLUSIVE for p in pts)
        valued = [p for p in pts if p.value is not None]
        if not valued:
            worst.append((s.metric, None, PointState.INCONCLUSIVE if pts else PointState.OK))
            continue
        sign = -1.0 if valued[0].limit and valued[0].limit.direction is Direction.MIN else 1.0
        top = max(valued, key=lambda p: (p.state is PointState.BREACH, sign * (p.value or 0.0)))
        worst.append((s.metric, top.value, top.state))
    if open_intents:
        outcome, ok, phase = "open change", False, None
        detail = f"{open_intents[0].action} to phase {open_intents[0].target_phase} never settled"
    elif failure is not None:
        outcome, ok, phase, detail = "unreachable", False, None, failure
    elif verify is not None:
        outcome = "verified" if verify[0] else "failed"
        ok, phase, detail = verify[0], verify[1], verify[2]
    else:
        sampled = any(s.of(name) for s in series)
        outcome, ok, phase = ("sampled" if sampled else "-"), None, None
        detail = "health sampled; no change made" if sampled else ""
    return HostResult(name, outcome, ok, phase, detail, tally["changes"], tally["drift"],
                      tally["restarts"], breaches, inconclusive, tuple(worst))  # fmt: skip


def gather(ledger: Ledger, run_id: str | None = None, inventory: str | None = None) -> Evidence:
    """Read one run's evidence from ``ledger`` (``run_id``, else ``inventory``'s latest run)."""
    if run_id is None:
        from .errors import UsageError

        latest = ledger.runs(inventory, 1)
        if not latest:
            raise UsageError(
                f"no runs recorded for inventory {inventory!r} in the ledger {ledger.location}",
                hint="run a command first, or pass --ledger to point at the right file",
            )
        run_id = latest[0].id
    run = ledger.run(run_id)
    return build(run, ledger.events(run_id), ledger.intents(run_id),
                 ledger.inventory_events(run.inventory))  # fmt: skip
