"""Waves: their planning (pure), their record in the ledger, and their evidence renderers."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rollout.canary import Comparison, WaveVerdict, judge_wave
from rollout.ledger import Ledger, WaveRecord
from rollout.models import Direction, FlagState, Phase, Risk, Wave
from rollout.playbook import load_playbook, load_playbook_text
from rollout.waveplan import plan_waves, wave_counts
from rollout.wavereport import (
    prometheus_text,
    wave_json,
    wave_lines,
    waves_junit,
    write_textfile,
)

REPO = Path(__file__).resolve().parents[2]
HOSTS = [f"h{i}" for i in range(1, 7)]


def phase(*waves: Wave) -> Phase:
    state = FlagState.of({"a": True})
    return Phase(1, "One", Risk.LOW, 60.0, state, state, waves=waves)


@pytest.mark.parametrize(
    ("total", "sizes", "counts"),
    [
        (6, [1, "25%"], [1, 2]),  # 25% of 6 rounds up to 2
        (6, [1, "10%"], [1]),  # 10% of 6 is 1 host: no host added, the wave is dropped
        (4, [1, "50%", "75%"], [1, 2, 3]),
        (3, [1, "90%"], [1]),  # 90% of 3 reaches every host: that is the final wave
        (2, [5], []),  # a wave as large as the fleet leaves no baseline
        (10, ["20%", 5], [2, 5]),
    ],
)
def test_wave_counts_are_cumulative_and_leave_a_baseline(
    total: int, sizes: list[int | str], counts: list[int]
) -> None:
    """Listed waves resolve to growing host counts below the fleet size (ceil of percentages)."""
    assert wave_counts(total, [Wave(s, 1.0) for s in sizes]) == counts


def test_plan_waves_adds_hosts_in_inventory_order_and_ends_with_the_rest() -> None:
    """Each wave adds the next hosts; the final wave takes the rest and the phase's soak."""
    plans = plan_waves(HOSTS, phase(Wave(1, 10.0), Wave("50%", 30.0)), 99.0)
    assert [(p.index, p.total, p.hosts, p.soak) for p in plans] == [
        (1, 3, ("h1",), 10.0),
        (2, 3, ("h2", "h3"), 30.0),
        (3, 3, ("h4", "h5", "h6"), 99.0),
    ]
    assert plans[1].canary == ("h1", "h2", "h3") and plans[-1].final


def test_a_phase_without_waves_or_a_single_host_is_one_final_wave() -> None:
    """No waves listed, or one host (no baseline possible): one final wave of every host."""
    assert [p.hosts for p in plan_waves(HOSTS, phase(), 5.0)] == [tuple(HOSTS)]
    assert [p.hosts for p in plan_waves(["h1"], phase(Wave(1, 1.0)), 5.0)] == [("h1",)]


def test_reference_playbook_rolls_production_out_in_waves() -> None:
    """Phases 4 and 5 of the reference playbook have waves; error_rate is compared."""
    reference = load_playbook(REPO / "playbooks" / "otp_refactor.yml")
    assert reference.phase(4).waves and reference.phase(5).waves
    assert not any(reference.phase(n).waves for n in (1, 2, 3))
    assert "error_rate" in {c.metric for c in reference.health.comparisons}


def test_compare_merges_per_metric_and_may_replace_a_threshold() -> None:
    """A phase's compare replaces the metric's comparison; compare without a bound adds a
    compared-only metric that has no absolute threshold."""
    pb = load_playbook_text(
        "rollout: demo\nflags: {a: false}\njudgement: {pass: 90, marginal: 60}\n"
        "health:\n  thresholds:\n    error_rate: {max: 5.0, compare: {allowed: '10%'}}\n"
        "phases:\n  - phase: 1\n    name: One\n    risk: low\n    soak: 1m\n    set: {a: true}\n"
        "    judgement: {pass: 99}\n    health:\n      thresholds:\n"
        "        latency: {compare: {direction: max, allowed: 5, min_samples: 3,"
        " weight: 2, critical: true}}\n"
    )
    assert pb.health.comparisons == (Comparison("error_rate", Direction.MAX, 10.0, percent=True),)
    phase_health = pb.health_for(1)
    assert [t.metric for t in phase_health.thresholds] == ["error_rate"]
    assert phase_health.comparisons[1] == Comparison(
        "latency", Direction.MAX, 5.0, min_samples=3, weight=2.0, critical=True
    )
    assert phase_health.metrics == ("error_rate", "latency")
    assert (pb.scoring_for(1).pass_score, pb.scoring_for(1).marginal_score) == (99.0, 60.0)


def test_ledger_records_waves_and_their_verdict_once(ledger_target: str) -> None:
    """start_wave records the phase and the wave together; a verdict, once set, is final
    (on SQLite and on PostgreSQL: schema 3 on both)."""
    with Ledger(ledger_target) as ledger:
        assert ledger.schema_version == 3
        run = ledger.start_run("inv", "deploy", (), None)
        wave = ledger.start_wave("inv", run.id, phase=4, from_phase=3, index=1, total=3,
                                 hosts=["h1"], canary=["h1"], soak=600.0)  # fmt: skip
        state = ledger.state("inv")
        assert (state.phase, state.phase_run_id, state.soak_required) == (4, run.id, 600.0)
        assert ledger.latest_wave("inv") == wave and wave.verdict is None
        done = ledger.finish_wave(wave.id, "fail", {"reason": "worse"})
        again = ledger.finish_wave(wave.id, "pass", {"reason": "later"})
        assert done.verdict == again.verdict == "fail" and again.judgement == {"reason": "worse"}
        assert ledger.run_waves(run.id) == [again] == ledger.waves("inv", run_id=run.id)


def _judged(verdict: str = "fail") -> WaveRecord:
    comparison = Comparison("error_rate", Direction.MAX, allowed=1.0)
    result = judge_wave([comparison], {"error_rate": [4.0, 4.2, 3.9, 4.1, 4.0]},
                        {"error_rate": [0.5, 0.4, 0.6, 0.5, 0.5, 0.4]})  # fmt: skip
    assert result.verdict is WaveVerdict.FAIL
    return WaveRecord(7, "inv", "r-1", 4, 3, 1, 3, ("h1",), ("h1",), 600.0, 1.0, 2.0, verdict,
                      result.as_data())  # fmt: skip


def test_report_table_json_and_junit_carry_the_evidence() -> None:
    """The table, the JSON line and the JUnit case each carry counts, medians, shift and p."""
    wave = _judged()
    text = "\n".join(wave_lines([wave]))
    assert "wave 1/3 of phase 4: fail" in text and "Mann-Whitney" in text
    assert "error_rate  fail" in text and "0.5" in text and "3.5" in text
    line = wave_json(wave)
    assert line["verdict"] == "fail" and line["judgement"]["metrics"][0]["canary_count"] == 5
    root = ET.fromstring(waves_junit([wave]))
    [case] = root.iter("testcase")
    failure = case.find("failure")
    assert failure is not None and "median=4" in (failure.text or "")
    assert root.get("failures") == "1" and case.get("name") == "wave 1/3 of phase 4: error_rate"


def test_inconclusive_metric_is_a_skipped_case_not_a_pass() -> None:
    """JUnit marks an inconclusive judgement as skipped: a CI page never shows it green."""
    wave = _judged("inconclusive")
    data = dict(wave.judgement)
    data["metrics"] = [{**data["metrics"][0], "outcome": "inconclusive"}]  # type: ignore[dict-item]
    root = ET.fromstring(waves_junit([WaveRecord(**{**wave.__dict__, "judgement": data})]))
    [case] = root.iter("testcase")
    assert case.find("skipped") is not None and case.find("failure") is None


def test_prometheus_text_is_valid_exposition_and_escapes_labels() -> None:
    """Each host's value is a gauge sample with host, metric and wave side; labels escaped;
    non-finite values are left out rather than written as NaN."""
    text = prometheus_text('in"v', 4, {
        "values": {"h1": {"error_rate": 3.5}, "h2": {"error_rate": 0.5, "bad": math.inf}},
        "verdict": "healthy", "counted": 12.0, "required": 600.0, "wave": 1,
        "canary": ["h1"],
    })  # fmt: skip
    assert (
        'rollout_soak_metric{inventory="in\\"v",phase="4",host="h1",metric="error_rate",'
        'side="canary"} 3.5' in text
    )
    assert 'side="baseline"} 0.5' in text and "inf" not in text
    assert "rollout_soak_healthy{" in text and text.endswith("\n")
    for line in text.splitlines():
        assert line.startswith("#") or line.startswith("rollout_")


def test_textfile_is_replaced_whole(tmp_path: Path) -> None:
    """The textfile is written through a temporary file and a rename: no partial file, no
    temporary file left behind."""
    target = tmp_path / "rollout.prom"
    write_textfile(target, "a 1\n")
    write_textfile(target, "a 2\n")
    assert target.read_text() == "a 2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["rollout.prom"]
