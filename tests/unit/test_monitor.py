"""Pure verdicts and the failure budget."""

from __future__ import annotations

import math

from rollout.models import Direction, HealthPolicy, Threshold
from rollout.monitor import Budget, HostSample, Verdict, judge

T = (
    Threshold("error_rate", Direction.MAX, 5.0, "%"),
    Threshold("message_delivery_success", Direction.MIN, 95.0, "%"),
)
GOOD = {"error_rate": 0.5, "message_delivery_success": 99.9}


def sample(host: str, **values: float | None) -> HostSample:
    return HostSample(host, {**GOOD, **values})


def test_all_within_thresholds_is_healthy() -> None:
    """Every host within every threshold is a healthy poll."""
    assert judge([sample("a"), sample("b")], T).verdict is Verdict.HEALTHY


def test_worst_host_decides() -> None:
    """One host over a max threshold makes the poll a breach, naming host and value."""
    poll = judge([sample("a"), sample("b", error_rate=7.5)], T)
    assert poll.verdict is Verdict.BREACH
    assert [(b.host, b.metric, b.value) for b in poll.breaches] == [("b", "error_rate", 7.5)]
    summary = {m.metric: m for m in poll.summary}
    assert summary["error_rate"].worst == 7.5 and summary["error_rate"].worst_host == "b"


def test_min_threshold_breaches_below() -> None:
    """A min threshold is breached by a lower value, not by the limit itself."""
    assert judge([sample("a", message_delivery_success=94.9)], T).verdict is Verdict.BREACH
    assert judge([sample("a", message_delivery_success=95.0)], T).verdict is Verdict.HEALTHY


def test_missing_nan_and_unreachable_are_inconclusive_never_healthy() -> None:
    """A missing metric, NaN, None or an unreachable host makes the poll inconclusive."""
    missing = HostSample("a", {"error_rate": 0.1})
    assert judge([missing], T).verdict is Verdict.INCONCLUSIVE
    assert judge([sample("a", error_rate=math.nan)], T).verdict is Verdict.INCONCLUSIVE
    assert judge([sample("a", error_rate=None)], T).verdict is Verdict.INCONCLUSIVE
    down = HostSample("b", error="cannot reach host")
    assert judge([sample("a"), down], T).verdict is Verdict.INCONCLUSIVE
    assert judge([], T).verdict is Verdict.INCONCLUSIVE


def test_breach_beats_inconclusive() -> None:
    """A breach on one host wins over a gap on another."""
    poll = judge([sample("a", error_rate=9.0), HostSample("b", error="down")], T)
    assert poll.verdict is Verdict.BREACH


def test_budget_needs_consecutive_breaches() -> None:
    """A breach must hold on failure_limit consecutive polls; a healthy poll resets it."""
    budget = Budget(HealthPolicy(T, failure_limit=2, inconclusive_limit=4))
    bad = judge([sample("a", error_rate=9.0)], T)
    good = judge([sample("a")], T)
    assert not budget.update(bad).rollback
    assert not budget.update(good).rollback
    assert not budget.update(bad).rollback
    decision = budget.update(bad)
    assert decision.rollback and "error_rate" in decision.reason


def test_budget_counts_inconclusive_as_breach_at_limit() -> None:
    """inconclusive_limit inconclusive polls in a row act as a breach."""
    budget = Budget(HealthPolicy(T, failure_limit=2, inconclusive_limit=3))
    gap = judge([HostSample("a", error="console timeout")], T)
    assert [budget.update(gap).rollback for _ in range(3)] == [False, False, True]
