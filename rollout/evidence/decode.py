"""One ledger event read back: its sentence, its outcome, who did it, its timeline lane, and
the health points and canary/baseline judgements it carries.

Sample events hold each host's raw values and each threshold as its ``describe()`` text
(``"error_rate > 5%"``: the breach side); :func:`parse_limit` turns that text back into a
:class:`~rollout.models.Threshold`, so each point is judged again here exactly as the monitor
judged it. A value that cannot be judged (host error, metric missing, not a number) is an
*inconclusive* point, as in ``monitor.judge``. The judgement shapes accepted are documented
in ``docs/report-page.md``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

from ..ledger import EventRecord
from ..models import Direction, Threshold
from .values import Judgement, Lane, Point, PointState, Side

LANES = {
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


def unpack(event: EventRecord) -> tuple[str, bool | None, dict[str, object]]:
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


def who_of(kind: str, data: Mapping[str, object]) -> str | None:
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


def sample_points(ts: float, inner: Mapping[str, object]) -> Iterable[tuple[str, Point]]:
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


def judgements_in(ts: float, inner: Mapping[str, object]) -> Iterable[Judgement]:
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
