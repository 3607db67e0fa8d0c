"""Pure chart geometry for the report page: numbers in, SVG coordinates and labels out.

Nothing here writes markup. A chart is a frozen value of paths (``d`` strings made only of
numbers and the letters M and L), dots, ticks and labels; ``templates/report.html.j2`` turns it
into inline SVG, and Jinja2's autoescape escapes every label (host names, messages) there. So a
hostile host name can only ever reach the page as text.

Why not a charting library: the page must open without network and without script. Plotly,
Bokeh and Altair draw in the browser with JavaScript (megabytes to inline, and script is what
the page forbids); matplotlib is a large dependency for a handful of line charts and renders
text as paths; pygal links its tooltip script from a CDN. Line charts with a threshold and some
marks are a page of arithmetic, tested here.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from .evidence import Evidence, Mark, Point, PointState, Series, SoakWindow
from .models import Threshold

WIDTH = 960
HEIGHT = 260
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 64, 16, 14, 46
STRIP = 24  # room for the "no value" strip under the plot
MAX_LINES = 8  # more hosts than this: draw the median and the worst host, band the rest


@dataclass(frozen=True)
class Tick:
    pos: float
    label: str


@dataclass(frozen=True)
class Line:
    d: str
    cls: str
    label: str


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    cls: str
    title: str


@dataclass(frozen=True)
class VMark:
    x: float
    cls: str
    label: str
    anchor: str = "start"  # "end": the label sits left of the line (near the right edge)


@dataclass(frozen=True)
class Band:
    """A shaded span of time (a soak window) with its label."""

    x0: float
    x1: float
    label: str


@dataclass(frozen=True)
class Chart:
    """One metric over the run: host lines (or median/worst/band), threshold, marks."""

    title: str
    unit: str
    width: int
    height: int
    left: float
    top: float
    right: float
    bottom: float
    xticks: tuple[Tick, ...]
    yticks: tuple[Tick, ...]
    lines: tuple[Line, ...]
    band: str  # polygon points of the min-max band ("" when hosts are drawn one by one)
    threshold: str  # path of the threshold (a step line when phases change it)
    threshold_label: str
    threshold_y: float | None  # where the threshold ends at the right edge (for its label)
    dots: tuple[Dot, ...]
    strip: tuple[Dot, ...]  # inconclusive samples, under the plot
    vmarks: tuple[VMark, ...]
    summarised: bool  # True: median and worst host drawn, the others in the table
    soaks: tuple[Band, ...] = ()


@dataclass(frozen=True)
class LaneRow:
    label: str
    y: float


@dataclass(frozen=True)
class Timeline:
    width: int
    height: int
    left: float
    right: float
    rows: tuple[LaneRow, ...]
    xticks: tuple[Tick, ...]
    dots: tuple[Dot, ...]
    vmarks: tuple[VMark, ...]
    soaks: tuple[Band, ...] = ()


def _bands(soaks: Sequence[SoakWindow], start: float, x: _Scale) -> tuple[Band, ...]:
    out = []
    for w in soaks:
        what = f"soak of phase {w.phase}" if w.phase is not None else "soak"
        span = f"{offset_label(w.start - start)} to {offset_label(w.end - start)}"
        label = f"{what}, {span}: {w.outcome}"
        out.append(Band(x(w.start - start), x(w.end - start), label))
    return tuple(out)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2, 2.5 or 5 times a power of ten apart)."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


def time_ticks(span: float, count: int = 8) -> list[float]:
    """Offsets (seconds) for the time axis, on round seconds, minutes or hours."""
    span = max(span, 1.0)
    steps = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
             43200, 86400)  # fmt: skip
    step = next((s for s in steps if span / s <= count), 86400 * math.ceil(span / 86400 / count))
    return [float(i * step) for i in range(int(span // step) + 1)]


def offset_label(seconds: float) -> str:
    """``+45s``, ``+2m30s``, ``+1h05m``: an offset from the run's start."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"+{seconds:.0f}s"
    if seconds < 3600:
        m, s = divmod(int(round(seconds)), 60)
        return f"+{m}m" + (f"{s:02d}s" if s else "")
    h, rem = divmod(int(round(seconds)), 3600)
    return f"+{h}h" + (f"{rem // 60:02d}m" if rem // 60 else "")


def short(text: str, width: int = 28) -> str:
    """``text`` cut to ``width`` characters for a label drawn inside a chart (the page shows
    it in full elsewhere)."""
    return text if len(text) <= width else text[: width - 1] + "…"


def value_label(value: float) -> str:
    return f"{value:.4g}"


class _Scale:
    def __init__(self, d0: float, d1: float, r0: float, r1: float) -> None:
        self.d0, self.d1, self.r0, self.r1 = d0, d1, r0, r1

    def __call__(self, value: float) -> float:
        span = self.d1 - self.d0 or 1.0
        return round(self.r0 + (value - self.d0) / span * (self.r1 - self.r0), 1)


def _path(coords: Sequence[tuple[float, float] | None]) -> str:
    """An SVG path through ``coords``; None breaks the line (a sample with no value)."""
    parts: list[str] = []
    pen_down = False
    for xy in coords:
        if xy is None:
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{xy[0]:g} {xy[1]:g}")
        pen_down = True
    return " ".join(parts)


def _domain(points: Sequence[Point]) -> tuple[float, float]:
    values = [p.value for p in points if p.value is not None]
    values += [p.limit.limit for p in points
               if p.limit is not None and math.isfinite(p.limit.limit)]  # fmt: skip
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    pad = (high - low) * 0.12 or abs(high) * 0.12 or 1.0
    low = 0.0 if low >= 0 and low - pad < 0 else low - pad
    return low, high + pad


def metric_chart(
    series: Series,
    start: float,
    end: float,
    *,
    rollback: float | None = None,
    soaks: Sequence[SoakWindow] = (),
    max_lines: int = MAX_LINES,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Chart:
    """The chart of one metric: every host's samples (or median, worst host and the band of
    all hosts when there are more than ``max_lines``), its threshold, breaches, inconclusive
    samples and the rollback."""
    left, top = float(PAD_LEFT), float(PAD_TOP)
    right, bottom = float(width - PAD_RIGHT), float(height - PAD_BOTTOM - STRIP)
    span = max(end - start, 1.0)
    x = _Scale(0.0, span, left, right)
    low, high = _domain(series.points)
    yt = nice_ticks(low, high)
    y = _Scale(yt[0], yt[-1], bottom, top)

    def at(p: Point) -> tuple[float, float] | None:
        return None if p.value is None else (x(p.ts - start), y(p.value))

    unit = series.unit
    summarised = len(series.hosts) > max_lines
    lines: list[Line] = []
    band = ""
    times = sorted({p.ts for p in series.points})
    if not summarised:
        for index, host in enumerate(series.hosts):
            lines.append(Line(_path([at(p) for p in series.of(host)]), f"c{index % 8}", host))
    else:
        by_ts: dict[float, list[float]] = {}
        for p in series.points:
            if p.value is not None:
                by_ts.setdefault(p.ts, []).append(p.value)
        valued = [t for t in times if by_ts.get(t)]
        upper = [(x(t - start), y(max(by_ts[t]))) for t in valued]
        lower = [(x(t - start), y(min(by_ts[t]))) for t in reversed(valued)]
        band = " ".join(f"{a:g},{b:g}" for a, b in upper + lower)
        median = [(x(t - start), y(statistics.median(by_ts[t]))) if by_ts.get(t) else None
                  for t in times]  # fmt: skip
        lines.append(Line(_path(median), "median", f"median of {len(series.hosts)} hosts"))
        worst = series.worst_host
        if worst is not None:
            lines.append(Line(_path([at(p) for p in series.of(worst)]), "worst",
                              f"worst host: {worst}"))  # fmt: skip
    # the threshold as a step line through each poll's limit (phases may change it)
    steps: list[tuple[float, float] | None] = []
    label = ""
    limits: dict[float, Threshold] = {}
    for p in series.points:
        if p.limit is not None:
            limits.setdefault(p.ts, p.limit)
    for t in times:
        limit = limits.get(t)
        if limit is None or not math.isfinite(limit.limit):
            steps.append(None)
            continue
        label = limit.describe().removeprefix(limit.metric + " ")
        ly = y(limit.limit)
        if steps and steps[-1] is not None:
            steps.append((x(t - start), steps[-1][1]))
        steps.append((x(t - start), ly))
    if steps and steps[0] is not None:
        steps.insert(0, (left, steps[0][1]))
    if steps and steps[-1] is not None:
        steps.append((right, steps[-1][1]))
    dots = [
        Dot(*xy, "breach", f"{p.host}: {series.metric} = {value_label(p.value or 0.0)}{unit} "
            f"at {offset_label(p.ts - start)} (breach: {p.limit.describe() if p.limit else ''})")
        for p in series.points
        if p.state is PointState.BREACH and (xy := at(p)) is not None
    ]  # fmt: skip
    strip = _strip(series, start, x, bottom + 14)
    vmarks = []
    first = series.first_breach
    if first is not None:
        text = f"first breach {offset_label(first.ts - start)} on {short(first.host)}"
        vmarks.append(_vmark(x(first.ts - start), "breach", left, right, text))
    if rollback is not None and start <= rollback <= start + span:
        vmarks.append(_vmark(x(rollback - start), "rollback", left, right,
                             f"rollback {offset_label(rollback - start)}"))  # fmt: skip
    last = steps[-1] if steps else None
    return Chart(
        series.metric, unit, width, height, left, top, right, bottom,
        tuple(Tick(x(t), offset_label(t)) for t in time_ticks(span)),
        tuple(Tick(y(v), value_label(v)) for v in yt),
        tuple(lines), band, _path(steps), label, None if last is None else last[1], tuple(dots),
        strip, tuple(vmarks), summarised, _bands(soaks, start, x),
    )  # fmt: skip


def _vmark(x: float, cls: str, left: float, right: float, label: str) -> VMark:
    """A vertical marker whose label stays inside the plot."""
    return VMark(x, cls, label, "end" if x > left + (right - left) * 0.6 else "start")


def _strip(series: Series, start: float, x: _Scale, y: float) -> tuple[Dot, ...]:
    """One marker per poll with inconclusive samples, naming the hosts and why."""
    grouped: dict[float, list[Point]] = {}
    for p in series.inconclusive:
        grouped.setdefault(p.ts, []).append(p)
    out = []
    for ts, pts in sorted(grouped.items()):
        shown = "; ".join(f"{p.host}: {p.note}" for p in pts[:5])
        more = f" and {len(pts) - 5} more" if len(pts) > 5 else ""
        text = f"{offset_label(ts - start)} no value ({len(pts)} host(s)): {shown}{more}"
        out.append(Dot(x(ts - start), y, "inconclusive", text))
    return tuple(out)


_VERDICT_CLS = {"healthy": "ok", "breach": "bad", "inconclusive": "unknown"}


def _mark_cls(mark: Mark) -> str:
    if mark.verdict is not None:
        return _VERDICT_CLS.get(mark.verdict, "neutral")
    return {True: "ok", False: "bad", None: "neutral"}[mark.ok]


def timeline(evidence: Evidence, *, width: int = WIDTH, row: int = 22) -> Timeline:
    """One row per lane that has events; one dot per event at its time."""
    lanes = evidence.lanes
    left, right = 120.0, float(width - PAD_RIGHT)
    top = 8.0
    rows = tuple(LaneRow(lane.value, top + row * (i + 0.5)) for i, lane in enumerate(lanes))
    ys = {lane: r.y for lane, r in zip(lanes, rows, strict=True)}
    span = max(evidence.end - evidence.start, 1.0)
    x = _Scale(0.0, span, left, right)
    height = int(top + row * len(lanes) + 30)
    dots = []
    for mark in evidence.marks:
        where = f" {mark.host}" if mark.host else ""
        title = f"{offset_label(mark.ts - evidence.start)} {mark.kind}{where}: {mark.message}"
        dots.append(Dot(x(mark.ts - evidence.start), ys[mark.lane], _mark_cls(mark), title))
    vmarks = []
    breach = evidence.breach
    if breach is not None:
        vmarks.append(VMark(x(breach.ts - evidence.start), "breach", "first breach"))
    if evidence.rollback is not None:
        vmarks.append(VMark(x(evidence.rollback.ts - evidence.start), "rollback", "rollback"))
    ticks = tuple(Tick(x(t), offset_label(t)) for t in time_ticks(span))
    return Timeline(width, height, left, right, rows, ticks, tuple(dots), tuple(vmarks),
                    _bands(evidence.soaks, evidence.start, x))  # fmt: skip
