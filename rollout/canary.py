"""Pure relative judgement: a wave's canary hosts against the baseline hosts of the same window.

During a wave the hosts already changed are the *canary* and the hosts still at the previous
phase are a same-time, same-fleet *baseline*. Absolute thresholds (``monitor.py``) are blind to
context: 4% errors pass when the baseline runs at 0.5%, and a fleet-wide incident that raises
every host's error rate breaches a phase that did nothing wrong. This module judges each metric
the way Spinnaker's Kayenta does:

- **NoData / inconclusive** when either side has fewer samples than the metric's minimum, or when
  the baseline is itself unhealthy while the canary is not (nothing trustworthy to compare with).
  Inconclusive is never a pass.
- **Fleet-wide** when the canary *and* the baseline both breach the metric's absolute threshold:
  reported as such, and it does not blame the phase.
- Otherwise a one-sided **Mann-Whitney U** test at the stated confidence asks whether the canary
  is worse than the baseline, and the Hodges-Lehmann estimate of the shift (the median of all
  pairwise differences, in the metric's unit) must exceed the allowed difference (absolute, or
  a percentage of the baseline median) for a **fail**. Statistically significant but smaller
  than allowed is a pass: a real but harmless shift must not roll a phase back.

A wave's verdict is a weighted score over the metrics that could be judged (Kayenta's
``pass``/``marginal`` thresholds): ``score >= pass_score`` passes, ``score >= marginal_score``
is marginal (a person decides), below is a fail; a failing *critical* metric fails the wave
whatever the score; a wave with no judged metric is inconclusive, and any fleet-wide metric
makes the wave fleet-wide.

SciPy is imported only when a comparison actually runs, so start-up of every command that
never judges a canary stays as fast as before.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from .models import Comparison, Direction, Scoring, Threshold


class Outcome(Enum):
    """One metric's judgement."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    FLEET_WIDE = "fleet-wide"


__all__ = [
    "Comparison", "MetricJudgement", "Outcome", "Scoring", "WaveJudgement", "WaveVerdict",
    "hodges_lehmann", "judge_metric", "judge_wave",
]  # fmt: skip


class WaveVerdict(Enum):
    """A wave's verdict from its metrics' judgements."""

    PASS = "pass"
    MARGINAL = "marginal"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    FLEET_WIDE = "fleet-wide"


@dataclass(frozen=True)
class MetricJudgement:
    """The evidence and outcome for one metric in one window."""

    metric: str
    outcome: Outcome
    canary_count: int
    baseline_count: int
    canary_median: float | None
    baseline_median: float | None
    shift: float | None  # Hodges-Lehmann estimate, canary minus baseline, in the metric's unit
    allowed: float | None  # the allowed shift in the metric's unit
    p_value: float | None
    reason: str

    def as_data(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "outcome": self.outcome.value,
            "canary_count": self.canary_count,
            "baseline_count": self.baseline_count,
            "canary_median": self.canary_median,
            "baseline_median": self.baseline_median,
            "shift": self.shift,
            "allowed": self.allowed,
            "p_value": self.p_value,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class WaveJudgement:
    verdict: WaveVerdict
    score: float | None  # None when no metric could be judged
    metrics: tuple[MetricJudgement, ...]
    reason: str

    def as_data(self) -> dict[str, object]:
        return {
            "verdict": self.verdict.value,
            "score": self.score,
            "reason": self.reason,
            "metrics": [m.as_data() for m in self.metrics],
        }


def _clean(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _harm(direction: Direction, delta: float) -> float:
    """A shift expressed so that positive is worse."""
    return delta if direction is Direction.MAX else -delta


def hodges_lehmann(canary: Sequence[float], baseline: Sequence[float]) -> float:
    """The median of all pairwise differences canary - baseline (the U test's shift estimate)."""
    return statistics.median(c - b for c in canary for b in baseline)


def _mann_whitney_p(canary: Sequence[float], baseline: Sequence[float], worse: Direction) -> float:
    """One-sided p-value that the canary is worse than the baseline."""
    from scipy.stats import mannwhitneyu  # only when a comparison runs: it costs ~0.3 s

    alternative = "greater" if worse is Direction.MAX else "less"
    if len(set(canary) | set(baseline)) == 1:
        return 1.0  # every sample equal: no evidence of any difference
    result = mannwhitneyu(canary, baseline, alternative=alternative, method="auto")
    return float(result.pvalue)


def judge_metric(
    comparison: Comparison,
    canary: Sequence[float | None],
    baseline: Sequence[float | None],
    threshold: Threshold | None = None,
) -> MetricJudgement:
    """Judge one metric's canary samples against the baseline's from the same window."""
    c, b = _clean(canary), _clean(baseline)
    c_med = statistics.median(c) if c else None
    b_med = statistics.median(b) if b else None

    def result(
        outcome: Outcome,
        reason: str,
        shift: float | None = None,
        allowed: float | None = None,
        p: float | None = None,
    ) -> MetricJudgement:
        return MetricJudgement(
            comparison.metric, outcome, len(c), len(b), c_med, b_med, shift, allowed, p, reason
        )

    if len(c) < comparison.min_samples or len(b) < comparison.min_samples:
        return result(
            Outcome.INCONCLUSIVE,
            f"too few samples (canary {len(c)}, baseline {len(b)}; "
            f"at least {comparison.min_samples} each)",
        )
    assert c_med is not None and b_med is not None
    if threshold is not None:
        baseline_bad = threshold.breached_by(b_med)
        canary_bad = threshold.breached_by(c_med)
        if baseline_bad and canary_bad:
            return result(
                Outcome.FLEET_WIDE,
                f"canary and baseline both breach {threshold.describe()} "
                f"(medians {c_med:g} and {b_med:g}): fleet-wide, not the phase",
            )
        if baseline_bad:
            return result(
                Outcome.INCONCLUSIVE,
                f"the baseline itself breaches {threshold.describe()} (median {b_med:g})",
            )
    shift = hodges_lehmann(c, b)
    allowed = comparison.allowed_shift(b_med)
    p = _mann_whitney_p(c, b, comparison.direction)
    alpha = 1.0 - comparison.confidence
    harm = _harm(comparison.direction, shift)
    if p < alpha and harm > allowed:
        return result(
            Outcome.FAIL,
            f"canary worse by {abs(shift):g} (allowed {allowed:g}), p = {p:.3g} < {alpha:.3g}",
            shift,
            allowed,
            p,
        )
    why = (
        f"no significant difference (p = {p:.3g})"
        if p >= alpha
        else f"significant but within the allowed {allowed:g} (shift {shift:g})"
    )
    return result(Outcome.PASS, why, shift, allowed, p)


def judge_wave(
    comparisons: Sequence[Comparison],
    canary: Mapping[str, Sequence[float | None]],
    baseline: Mapping[str, Sequence[float | None]],
    thresholds: Mapping[str, Threshold] | None = None,
    scoring: Scoring | None = None,
) -> WaveJudgement:
    """Judge every compared metric of a wave and score them into the wave's verdict."""
    scoring = scoring or Scoring()
    limits = thresholds or {}
    judged = tuple(
        judge_metric(cmp, canary.get(cmp.metric, ()), baseline.get(cmp.metric, ()),
                     limits.get(cmp.metric))
        for cmp in comparisons
    )
    by_metric = {cmp.metric: cmp for cmp in comparisons}
    fleet = [j for j in judged if j.outcome is Outcome.FLEET_WIDE]
    if fleet:
        names = ", ".join(j.metric for j in fleet)
        return WaveJudgement(
            WaveVerdict.FLEET_WIDE, None, judged, f"fleet-wide breach of {names}: not the phase"
        )
    scored = [j for j in judged if j.outcome in (Outcome.PASS, Outcome.FAIL)]
    if not scored:
        return WaveJudgement(
            WaveVerdict.INCONCLUSIVE, None, judged, "no metric could be judged"
        )
    total = sum(by_metric[j.metric].weight for j in scored)
    passed = sum(by_metric[j.metric].weight for j in scored if j.outcome is Outcome.PASS)
    score = 100.0 * passed / total if total > 0 else 0.0
    critical = [j for j in scored if j.outcome is Outcome.FAIL and by_metric[j.metric].critical]
    failed = ", ".join(j.metric for j in scored if j.outcome is Outcome.FAIL)
    if critical:
        names = ", ".join(j.metric for j in critical)
        return WaveJudgement(WaveVerdict.FAIL, score, judged, f"critical metric failed: {names}")
    if score >= scoring.pass_score:
        verdict, reason = WaveVerdict.PASS, f"score {score:.0f} >= {scoring.pass_score:g}"
    elif score >= scoring.marginal_score:
        verdict = WaveVerdict.MARGINAL
        reason = f"score {score:.0f} is marginal (failed: {failed})"
    else:
        verdict, reason = WaveVerdict.FAIL, f"score {score:.0f} (failed: {failed})"
    return WaveJudgement(verdict, score, judged, reason)
