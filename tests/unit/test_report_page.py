"""The report page's pure parts: evidence from ledger records, chart geometry, escaping."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rollout.charts import _path, metric_chart, nice_ticks, offset_label, time_ticks
from rollout.clock import PartsClock
from rollout.evidence import PointState, build, gather, parse_limit
from rollout.htmlreport import render_html, visible
from rollout.ledger import EventRecord, Ledger, RunRecord, RunStatus
from rollout.models import Direction, Threshold

T0 = 1_800_000_000.0


def _run(status: RunStatus = RunStatus.SUCCEEDED) -> RunRecord:
    return RunRecord("r-1", "prod", "invoke deploy --phase 1", (), "ann", "ci", 1, T0, T0 + 60,
                     status, None, None)  # fmt: skip


def _sample(n: int, dt: float, values: dict[str, object], verdict: str = "healthy") -> EventRecord:
    inner = {
        "verdict": verdict,
        "values": values,
        "thresholds": {"error_rate": "error_rate > 5%", "delivery": "delivery < 99%"},
    }
    return EventRecord(n, "r-1", T0 + dt, "sample",
                       None, {"event": "sample", "message": verdict, "data": inner})  # fmt: skip


@pytest.mark.parametrize(
    "threshold",
    [Threshold("error_rate", Direction.MAX, 5.0, "%"), Threshold("lat", Direction.MAX, 1e6, "ms"),
     Threshold("delivery_success", Direction.MIN, 99.5, "%"), Threshold("x", Direction.MIN, -3, ""),
     Threshold("restarts", Direction.MAX, 10, "/min"), Threshold("tiny", Direction.MAX, 2.5e-07)],
)  # fmt: skip
def test_parse_limit_inverts_describe(threshold: Threshold) -> None:
    """parse_limit reads back exactly the Threshold whose describe() text a sample event holds."""
    assert parse_limit(threshold.describe()) == threshold


def test_parse_limit_refuses_other_text() -> None:
    """Text that is not a describe() gives None, so no threshold line is drawn from a guess."""
    assert parse_limit("error_rate is high") is None
    assert parse_limit("") is None


def test_points_are_judged_like_the_monitor() -> None:
    """Each host's value is a breach past the limit, ok inside it, and inconclusive when the
    host errored, the metric is missing, or the value is not a number."""
    events = [
        _sample(1, 1, {"a": {"error_rate": 1.0, "delivery": 99.9}, "b": {"error": "timed out"}}),
        _sample(
            2, 2, {"a": {"error_rate": 7.0, "delivery": 98.0}, "b": {"error_rate": "nan"}}, "breach"
        ),  # fmt: skip
    ]
    ev = build(_run(), events)
    rate = next(s for s in ev.series if s.metric == "error_rate")
    states = [(p.host, p.state, p.note) for p in rate.points]
    assert states == [
        ("a", PointState.OK, ""), ("b", PointState.INCONCLUSIVE, "timed out"),
        ("a", PointState.BREACH, ""), ("b", PointState.INCONCLUSIVE, "not a number (nan)"),
    ]  # fmt: skip
    delivery = next(s for s in ev.series if s.metric == "delivery")
    assert [p.state for p in delivery.of("a")] == [PointState.OK, PointState.BREACH]
    assert [p.note for p in delivery.of("b")] == ["timed out", "missing"]
    assert ev.breach is not None and (ev.breach.host, ev.breach.ts) == ("a", T0 + 2)
    assert ev.verdicts == {"healthy": 1, "breach": 1}
    assert {h.host: (h.breaches, h.inconclusive) for h in ev.hosts} == {"a": (2, 0), "b": (0, 4)}


def test_chart_breaks_lines_at_missing_values_and_steps_the_threshold() -> None:
    """A host's line is interrupted where it had no value, breaches become dots and the
    threshold follows the limit each poll used."""
    assert _path([(1, 2), (3, 4), None, (5, 6)]) == "M1 2 L3 4 M5 6"
    events = [_sample(i, i * 10, {"a": {"error_rate": v, "delivery": 99.9}})
              for i, v in enumerate([1.0, None, 2.0, 9.0])]  # fmt: skip
    ev = build(_run(), events)
    chart = metric_chart(ev.series[0], ev.start, ev.end)
    assert chart.lines[0].d.count("M") == 2
    assert len(chart.dots) == 1 and chart.dots[0].title.startswith("a: error_rate = 9%")
    assert len(chart.strip) == 1 and "a: not a number (None)" in chart.strip[0].title
    assert chart.threshold.startswith(f"M{chart.left:g} ") and chart.threshold_label == "> 5%"
    assert not chart.summarised


def test_ticks_are_round_and_cover_the_range() -> None:
    """Value ticks are round numbers spanning the data; time ticks are round offsets."""
    assert nice_ticks(0, 7.4) == [0, 2, 4, 6, 8]
    assert nice_ticks(98.6, 100.2)[0] <= 98.6 and nice_ticks(98.6, 100.2)[-1] >= 100.2
    assert nice_ticks(5, 5) == [5, 7.5, 10] or nice_ticks(5, 5)[0] <= 5
    assert time_ticks(70) == [0, 10, 20, 30, 40, 50, 60, 70]
    assert [offset_label(s) for s in (4, 150, 3900)] == ["+4s", "+2m30s", "+1h05m"]
    assert all(math.isfinite(t) for t in nice_ticks(-1e9, 1e9))


def test_visible_shows_control_and_bidi_characters_as_escapes() -> None:
    """Terminal escapes, bells and bidi overrides from the ledger are shown, not obeyed."""
    assert visible("a\x1b[31mb\x07\u202ec\tok\n") == "a\\x1b[31mb\\x07\\u202ec\tok\n"
    assert visible("plain") == "plain" and visible(3) == 3


def _judgement_ledger(path: Path, with_judgement: bool) -> tuple[Ledger, str]:
    clock = [T0]
    ledger = Ledger(path, clock=PartsClock(wall=lambda: clock[0]))
    run = ledger.start_run("prod", "invoke advance", [], None)
    clock[0] += 5
    if with_judgement:
        ledger.event(run.id, "judgement", {"event": "judgement", "message": "wave 2 judged",
            "data": {"wave": "2 (25%)", "judgements": [
                {"metric": "error_rate", "verdict": "fail", "difference": 2.1, "allowed": "1%",
                 "test": "Mann-Whitney U", "p_value": 0.003, "score": 40,
                 "canary": {"hosts": ["c1"], "count": 12, "median": 3.1},
                 "baseline": {"hosts": ["b1", "b2"], "count": 24, "median": 1.0}},
                {"metric": "latency", "verdict": "pass", "canary": {"count": 12, "median": 40},
                 "baseline": {"count": 24, "median": 41}}]}})  # fmt: skip
    clock[0] += 5
    ledger.finish_run(run.id, RunStatus.SUCCEEDED, None)
    return ledger, run.id


def test_baseline_judgements_render_side_by_side_when_recorded(tmp_path: Path) -> None:
    """A judgement event (issue 16's evidence) becomes a canary-vs-baseline table per wave with
    both medians, counts, the test and the verdict; a run without one has no such section."""
    ledger, run_id = _judgement_ledger(tmp_path / "a.db", True)
    ev = gather(ledger, run_id)
    assert [(j.metric, j.verdict, j.wave) for j in ev.judgements] == [
        ("error_rate", "fail", "2 (25%)"),
        ("latency", "pass", "2 (25%)"),
    ]
    first = ev.judgements[0]
    assert (first.canary.median, first.baseline.count, first.p_value) == (3.1, 24, 0.003)
    page = render_html(ev)
    assert 'id="judgements"' in page and "wave 2 (25%)" in page
    assert 'data-verdict="fail"' in page and "Mann-Whitney U" in page and "p = 0.003" in page
    plain, plain_id = _judgement_ledger(tmp_path / "b.db", False)
    assert 'id="judgements"' not in render_html(gather(plain, plain_id))


def test_page_loads_nothing_and_forbids_loading() -> None:
    """The page has no script, no external reference, and a CSP that forbids fetching."""
    page = render_html(build(_run(), [_sample(1, 1, {"a": {"error_rate": 1, "delivery": 100}})]))
    assert "<script" not in page
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page
    assert "default-src 'none'" in page
    assert " src=" not in page and " href=" not in page


def test_latest_run_is_the_default(tmp_path: Path) -> None:
    """Without a run id, the evidence is the inventory's newest run; no run is a usage error."""
    ledger, run_id = _judgement_ledger(tmp_path / "a.db", False)
    assert gather(ledger, None, "prod").run.id == run_id
    from rollout.errors import UsageError

    with pytest.raises(UsageError, match="no runs recorded for inventory 'other'"):
        gather(ledger, None, "other")


def test_wave_judgement_as_recorded_by_the_canary_module_renders(tmp_path: Path) -> None:
    """A ``canary.WaveJudgement.as_data()`` in a verdict event renders per metric with the
    wave's verdict and score, so issue 16's engine needs no extra shape for the page."""
    clock = [T0]
    ledger = Ledger(tmp_path / "w.db", clock=PartsClock(wall=lambda: clock[0]))
    run = ledger.start_run("prod", "invoke advance", [], None)
    data = {"wave": "1 (1 host)", "canary": ["c1"], "baseline": ["b1", "b2"],
            "verdict": "fail", "score": 0.0, "reason": "error_rate failed",
            "metrics": [{"metric": "error_rate", "outcome": "fail", "canary_count": 10,
                         "baseline_count": 20, "canary_median": 4.0, "baseline_median": 0.5,
                         "shift": 3.4, "allowed": 1.0, "p_value": 0.0001,
                         "reason": "canary higher by 3.4"}]}  # fmt: skip
    ledger.event(run.id, "verdict", {"event": "verdict", "message": "wave 1: fail", "data": data})
    ledger.finish_run(run.id, RunStatus.ROLLED_BACK, None)
    ev = gather(ledger, run.id)
    (j,) = ev.judgements
    assert (j.metric, j.verdict, j.wave_verdict, j.canary.hosts, j.baseline.count) == (
        "error_rate",
        "fail",
        "fail",
        ("c1",),
        20,
    )
    page = render_html(ev)
    assert 'data-wave-verdict="fail"' in page and "canary higher by 3.4" in page


def test_soak_windows_end_where_the_soak_ended() -> None:
    """A soak window runs from the soak's start event to its completion, or to the rollback
    that cut it short; charts shade it with that outcome."""

    def soak(n: int, dt: float, **data: object) -> EventRecord:
        inner = {"phase": 3, **data}
        return EventRecord(n, "r-1", T0 + dt, "soak", None,
                           {"event": "soak", "message": "soak", "data": inner})  # fmt: skip

    rollback = EventRecord(5, "r-1", T0 + 40, "rollback", None,
                           {"event": "rollback", "message": "AUTOMATIC ROLLBACK to Phase 2",
                            "ok": False, "data": {"target": 2}})  # fmt: skip
    events = [soak(1, 5), _sample(2, 10, {"a": {"error_rate": 9.0, "delivery": 100}}, "breach"),
              rollback]  # fmt: skip
    ev = build(_run(RunStatus.ROLLED_BACK), events)
    assert [(w.start - T0, w.end - T0, w.phase, w.outcome) for w in ev.soaks] == [
        (5, 40, 3, "rolled back")
    ]
    chart = metric_chart(ev.series[0], ev.start, ev.end, soaks=ev.soaks)
    assert [b.label for b in chart.soaks] == ["soak of phase 3, +5s to +40s: rolled back"]
    assert 'class="soak"' in render_html(ev)
    done = build(_run(), [soak(1, 5), soak(2, 30, complete=True)])
    assert [(w.end - T0, w.outcome) for w in done.soaks] == [(30, "complete")]


def test_readme_shows_the_page_screenshot() -> None:
    """README embeds docs/report-page.png, and that file is a real PNG of a page."""
    root = Path(__file__).resolve().parents[2]
    assert "](docs/report-page.png)" in (root / "README.md").read_text()
    png = (root / "docs" / "report-page.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
