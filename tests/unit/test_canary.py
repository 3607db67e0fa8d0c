"""The relative judgement of a wave's canary hosts against its baseline hosts (``rollout.canary``).

Each case is a data file in ``tests/data/judgements/``: comparisons, optional absolute
thresholds and scoring, the canary's and the baseline's samples, and the expected verdicts.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollout.canary import (
    Comparison,
    Outcome,
    Scoring,
    WaveVerdict,
    hodges_lehmann,
    judge_metric,
    judge_wave,
)
from rollout.models import Direction, Threshold

CASES = sorted((Path(__file__).parent.parent / "data" / "judgements").glob("*.yml"))


def _comparison(spec: dict[str, Any]) -> Comparison:
    spec = dict(spec)
    spec["direction"] = Direction(spec["direction"])
    return Comparison(**spec)


def _samples(spec: dict[str, list[Any]]) -> dict[str, list[float | None]]:
    return {k: [None if v is None else float(v) for v in vs] for k, vs in spec.items()}


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_recorded_sample_sets(path: Path) -> None:
    """Every recorded sample set gets exactly its expected wave verdict and per-metric outcomes."""
    case = yaml.safe_load(path.read_text())
    comparisons = [_comparison(c) for c in case["comparisons"]]
    thresholds = {
        metric: Threshold(metric, Direction(t["direction"]), float(t["limit"]))
        for metric, t in (case.get("thresholds") or {}).items()
    }
    scoring = Scoring(**case["scoring"]) if "scoring" in case else None
    result = judge_wave(
        comparisons, _samples(case["canary"]), _samples(case["baseline"]), thresholds, scoring
    )
    assert result.verdict is WaveVerdict(case["expect"]["verdict"]), result.reason
    outcomes = {m.metric: m.outcome.value for m in result.metrics}
    assert outcomes == case["expect"]["metrics"], [m.reason for m in result.metrics]


def test_evidence_records_counts_medians_shift_and_p() -> None:
    """A judgement carries the evidence an approver needs: counts, medians, shift, p-value."""
    cmp = Comparison("error_rate", Direction.MAX, allowed=1.0)
    j = judge_metric(cmp, [4.0, 4.1, 3.9, 4.2, 4.0], [0.5, 0.4, 0.6, 0.5, 0.5, 0.5])
    data = j.as_data()
    assert data["canary_count"] == 5 and data["baseline_count"] == 6
    assert data["canary_median"] == 4.0 and data["baseline_median"] == 0.5
    assert data["shift"] == pytest.approx(3.5)
    assert isinstance(data["p_value"], float) and data["p_value"] < 0.05
    assert data["outcome"] == "fail"


def test_nan_and_inf_never_count_as_samples() -> None:
    """NaN and infinities are dropped before counting, so they can never make up a minimum."""
    cmp = Comparison("m", Direction.MAX, min_samples=3)
    j = judge_metric(cmp, [1.0, math.nan, math.inf, -math.inf], [1.0, 1.0, 1.0])
    assert j.outcome is Outcome.INCONCLUSIVE and j.canary_count == 1


def test_identical_samples_pass_without_a_test_error() -> None:
    """All-equal samples on both sides (a flat 0% error rate) pass: no difference to find."""
    cmp = Comparison("error_rate", Direction.MAX, allowed=0.0)
    j = judge_metric(cmp, [0.0] * 6, [0.0] * 8)
    assert j.outcome is Outcome.PASS and j.p_value == 1.0


def test_percent_allowance_scales_with_the_baseline() -> None:
    """A percentage allowance is taken of the baseline's median, in the metric's unit."""
    cmp = Comparison("latency", Direction.MAX, allowed=10, percent=True)
    assert cmp.allowed_shift(200.0) == pytest.approx(20.0)


def test_hodges_lehmann_is_the_median_pairwise_difference() -> None:
    """The shift estimate is the median of every canary-minus-baseline difference."""
    assert hodges_lehmann([3.0, 5.0], [1.0, 2.0]) == pytest.approx(2.5)


def test_no_comparisons_is_inconclusive() -> None:
    """A wave with nothing compared is inconclusive, never a pass."""
    assert judge_wave([], {}, {}).verdict is WaveVerdict.INCONCLUSIVE
