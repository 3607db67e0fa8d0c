"""A run's :class:`~rollout.evidence.values.Evidence` assembled from its ledger records.

Pure: :func:`build` takes what the ledger's read API returns (the run, its events, its intents
and the inventory-level events around it); :func:`gather` is the one function that reads a
:class:`~rollout.ledger.Ledger`, through its public methods only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..ledger import EventRecord, Intent, Ledger, RunRecord
from ..models import Direction
from .decode import JUDGEMENT_KINDS, LANES, judgements_in, sample_points, unpack, who_of
from .values import (
    Evidence,
    HostResult,
    Judgement,
    Lane,
    Mark,
    Point,
    PointState,
    Series,
    SoakWindow,
)


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
        message, ok, inner = unpack(event)
        verdict = str(inner["verdict"]) if event.kind == "sample" and "verdict" in inner else None
        lane = LANES.get(event.kind, Lane.OTHER)
        if lane is Lane.OTHER and "wave" in inner and event.kind in ("info", "soak"):
            lane = Lane.WAVE
        who = who_of(event.kind, inner) or (f"{run.who}@{run.where}" if event.kind == "run.start"
                                          else None)  # fmt: skip
        target = inner.get("target", inner.get("phase", inner.get("to")))
        phase = target if isinstance(target, int) and not isinstance(target, bool) else None
        marks.append(Mark(event.ts, event.kind, lane, message, event.host, ok, verdict, who, phase))
        if verdict is not None:
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
            for metric, point in sample_points(event.ts, inner):
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
            judgements.extend(judgements_in(event.ts, inner))
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
        from ..errors import UsageError

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
