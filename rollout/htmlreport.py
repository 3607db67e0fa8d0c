"""A run's evidence as one self-contained HTML page (``invoke report --html FILE``).

The page is rendered from ``templates/report.html.j2`` with autoescape on; the charts are
inline SVG drawn from ``charts.py`` geometry. It loads nothing (no script, no font, no image
from anywhere) and says so to the browser: its Content-Security-Policy is ``default-src
'none'`` with inline styles only, so even a value that slipped past escaping could not run or
fetch anything. Text from the ledger passes :func:`visible` (control and bidi characters are
shown as escapes) and then Jinja2's escaping. ``docs/report-page.md`` explains the page.
"""

from __future__ import annotations

import statistics
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

from . import resources
from .charts import Chart, metric_chart, offset_label, timeline, value_label
from .clock import SYSTEM, Clock
from .evidence import Evidence, HostResult, Judgement, Lane, Mark, PointState, Series
from .ledger import RunStatus
from .templating import jinja_environment

TEMPLATES = resources.TEMPLATES  # found in a checkout and in an installed package
TEMPLATE = "report.html.j2"
MAX_MOMENTS = 300  # key moments listed before "and N more" (all are in the full event list)
MAX_EVENTS = 5000  # rows of the full event list
ATTENTION = 25  # more hosts than this: problem hosts first, the full table collapsed

_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def visible(value: object) -> object:
    """Strings with control and bidi-override characters replaced by their escapes."""
    if not isinstance(value, str) or isinstance(value, markupsafe.Markup):
        return value  # Markup is the template's own output (a macro), already escaped
    if value.isprintable() and not (_BIDI & set(value)):
        return value
    out = []
    for ch in value:
        if ch in "\n\t":
            out.append(ch)
        elif ch in _BIDI or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def _env() -> jinja2.Environment:
    return jinja_environment(
        TEMPLATES,
        autoescape=True,
        finalize=visible,
        trim_blocks=True,
        filters={"num": lambda v: "-" if v is None else value_label(float(v))},
    )


def wall(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + "Z"


@dataclass(frozen=True)
class MetricView:
    chart: Chart
    series: Series
    rows: tuple[dict[str, Any], ...]  # per host: samples, breaches, inconclusive, min/median/max


_STATUS = {
    RunStatus.SUCCEEDED: ("ok", "Succeeded"),
    RunStatus.ROLLED_BACK: ("bad", "Rolled back"),
    RunStatus.FAILED: ("bad", "Failed"),
    RunStatus.CRASHED: ("bad", "Crashed"),
    RunStatus.INTERRUPTED: ("warn", "Interrupted"),
    RunStatus.REFUSED: ("warn", "Refused"),
    RunStatus.RUNNING: ("warn", "Running (or died without a record)"),
}


def _headline(ev: Evidence) -> str:
    """One sentence: what the tool saw and what it did."""
    parts = []
    breach = ev.breach
    if breach is not None:
        metric = next(s for s in ev.series if s.first_breach is breach)
        limit = breach.limit.describe() if breach.limit else ""
        value = value_label(breach.value or 0)
        parts.append(f"Breach on {breach.host}: {metric.metric} = {value}{metric.unit} ({limit})"
                     f" at {offset_label(breach.ts - ev.start)}")  # fmt: skip
    rollback = ev.rollback
    if rollback is not None:
        what = {"AUTOMATIC": "automatic rollback", "EMERGENCY": "emergency rollback"}.get(
            rollback.message.split(" ", 1)[0], "rollback")
        to = f" to phase {rollback.phase}" if rollback.phase is not None else ""
        parts.append(f"{what}{to} at {offset_label(rollback.ts - ev.start)}")
    if not parts:
        total = sum(ev.verdicts.values())
        if total:
            bad = ev.verdicts.get("inconclusive", 0)
            parts.append(f"{total} health round(s), {ev.verdicts.get('healthy', 0)} healthy"
                         + (f", {bad} inconclusive" if bad else "") + ", no breach")  # fmt: skip
        else:
            parts.append("no health samples in this run")
    return "; ".join(parts)


def _metric_rows(series: Series) -> tuple[dict[str, Any], ...]:
    rows: list[dict[str, Any]] = []
    for host in series.hosts:
        pts = series.of(host)
        values = [p.value for p in pts if p.value is not None]
        breach = next((p for p in pts if p.state is PointState.BREACH), None)
        rows.append({
            "host": host, "samples": len(pts),
            "breaches": sum(p.state is PointState.BREACH for p in pts),
            "inconclusive": sum(p.state is PointState.INCONCLUSIVE for p in pts),
            "min": min(values) if values else None,
            "median": statistics.median(values) if values else None,
            "max": max(values) if values else None,
            "last": values[-1] if values else None,
            "first_breach": None if breach is None else breach.ts,
        })  # fmt: skip
    rows.sort(key=lambda r: (-int(r["breaches"]), -int(r["inconclusive"]), str(r["host"])))
    return tuple(rows)


def _concern(series: Series) -> tuple[int, int]:
    """Charts of breached metrics first, then those with the most samples missing."""
    return (0 if series.first_breach else 1 if series.inconclusive else 2,
            -len(series.inconclusive))  # fmt: skip


def _host_order(host: HostResult) -> tuple[int, str]:
    """Failed hosts first, then breaching, then those with samples missing, then the rest."""
    rank = 0 if host.ok is False else 1 if host.breaches else 2 if host.inconclusive else 3
    return rank, host.host


def _waves(judgements: Sequence[Judgement]) -> list[tuple[str, list[Judgement]]]:
    grouped: dict[str, list[Judgement]] = {}
    for j in judgements:
        grouped.setdefault(j.wave or "-", []).append(j)
    return list(grouped.items())


def page_context(
    ev: Evidence, *, generated: float | None = None, clock: Clock = SYSTEM
) -> dict[str, Any]:
    """Everything the template needs, computed here so the template only lays it out;
    ``generated`` (default: ``clock``'s wall time now) is when the page says it was made."""
    rollback_ts = ev.rollback.ts if ev.rollback is not None else None
    metrics = [
        MetricView(metric_chart(s, ev.start, ev.end, rollback=rollback_ts, soaks=ev.soaks), s,
                   _metric_rows(s))  # fmt: skip
        for s in sorted(ev.series, key=_concern)
    ]
    moments = [m for m in ev.marks if m.notable]
    hosts = sorted(ev.hosts, key=_host_order)
    attention = [h for h in hosts if _host_order(h)[0] < 3]
    status_cls, status_text = _STATUS[ev.run.status]
    people: list[Mark] = [
        m if m.who is not None else replace(m, who=f"{ev.run.who}@{ev.run.where}")
        for m in ev.marks
        if m.lane in (Lane.RUN, Lane.PEOPLE) or m.kind in ("rollback", "phase.set")
    ]
    return {
        "ev": ev, "run": ev.run, "status_cls": status_cls, "status_text": status_text,
        "headline": _headline(ev), "timeline": timeline(ev), "metrics": metrics,
        "moments": moments[:MAX_MOMENTS], "moments_left": max(0, len(moments) - MAX_MOMENTS),
        "events": ev.marks[:MAX_EVENTS], "events_left": max(0, len(ev.marks) - MAX_EVENTS),
        "hosts": hosts, "attention": attention, "many_hosts": len(hosts) > ATTENTION,
        "people": people, "waves": _waves(ev.judgements),
        "duration": offset_label(ev.end - ev.start).lstrip("+"),
        "wall": wall, "offset": lambda ts: offset_label(ts - ev.start),
        "generated": wall(generated if generated is not None else clock.wall()),
        "breach": ev.breach, "rollback": ev.rollback,
        "states": PointState,
    }  # fmt: skip


def render_html(ev: Evidence, *, generated: float | None = None, clock: Clock = SYSTEM) -> str:
    """The page for ``ev`` as one HTML string."""
    context = page_context(ev, generated=generated, clock=clock)
    return _env().get_template(TEMPLATE).render(**context)


def write_html(ev: Evidence, path: str | Path, *, clock: Clock = SYSTEM) -> Path:
    """Write the page to ``path`` (its directory is created); return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(render_html(ev, clock=clock), encoding="utf-8")
    tmp.replace(target)
    return target
