"""``health`` and a phase's ``health`` override: the soak's interval and limits, the per-metric
thresholds (``max``/``min``) and relative judgements (``compare``), and ``judgement`` scores.

A phase's ``health`` merges over the top-level one per metric; its ``judgement`` over the
top-level ``judgement`` (docs/playbook.md, "Health" and "Waves").
"""

from __future__ import annotations

import re

from ..models import Comparison, Direction, HealthPolicy, Scoring, Threshold
from ..yamlsrc import Node
from .metrics_source import read_metric_name
from .reader import (
    check_keys,
    fail,
    read_bool,
    read_choice,
    read_duration,
    read_int,
    read_mapping,
    read_number,
    read_text,
)

__all__ = ["HEALTH_KEYS", "PHASE_HEALTH_KEYS", "read_health", "read_scoring", "read_unit"]

#: What a phase's ``health`` may set; the top-level ``health`` also takes the source.
PHASE_HEALTH_KEYS = ("interval", "failure_limit", "inconclusive_limit", "thresholds")
HEALTH_KEYS = ("source", *PHASE_HEALTH_KEYS, "textfile")
_THRESHOLD_KEYS = ("max", "min", "unit", "compare")
_COMPARE_KEYS = ("direction", "allowed", "confidence", "min_samples", "weight", "critical")
_JUDGEMENT_KEYS = ("pass", "marginal")


def read_health(
    node: Node, path: str, base: HealthPolicy, queries: frozenset[str] | None
) -> HealthPolicy:
    """The health mapping at ``path`` (its keys already checked), merged over ``base``;
    ``queries`` is what the source can answer for (None: anything)."""
    interval = base.interval
    if "interval" in node:
        interval = read_duration(node, "interval", f"{path}.interval", positive=True)
    failure_limit = base.failure_limit
    if "failure_limit" in node:
        failure_limit = read_int(node, "failure_limit", f"{path}.failure_limit", low=1)
    inconclusive_limit = base.inconclusive_limit
    if "inconclusive_limit" in node:
        inconclusive_limit = read_int(
            node, "inconclusive_limit", f"{path}.inconclusive_limit", low=1
        )
    thresholds, comparisons = base.thresholds, base.comparisons
    if "thresholds" in node:
        tnode = read_mapping(node, "thresholds", f"{path}.thresholds")
        thresholds, comparisons = _thresholds(tnode, f"{path}.thresholds", base, queries)
    return HealthPolicy(thresholds, interval, failure_limit, inconclusive_limit, comparisons)


def _thresholds(
    node: Node, path: str, base: HealthPolicy, queries: frozenset[str] | None
) -> tuple[tuple[Threshold, ...], tuple[Comparison, ...]]:
    """Parse ``node`` and merge it over ``base`` per metric (an entry replaces its metric's
    threshold; its ``compare``, when given, replaces the metric's comparison)."""
    merged: dict[str, Threshold] = {t.metric: t for t in base.thresholds}
    compared: dict[str, Comparison] = {c.metric: c for c in base.comparisons}
    for metric in node:
        read_metric_name(node, metric, path)
        mpath = f"{path}.{metric}"
        if queries is not None and metric not in queries:
            fail(
                node.loc(metric, mpath),
                f"no query for metric `{metric}`",
                "add it under health.source.queries, or drop the threshold",
            )
        tnode = read_mapping(node, metric, mpath)
        check_keys(tnode, _THRESHOLD_KEYS, mpath)
        if "compare" in tnode and queries is not None:
            fail(
                tnode.loc("compare", f"{mpath}.compare"),
                "a relative judgement (`compare`) needs one sample per host, and the "
                "prometheus source gives one for the whole fleet",
                "use the console or command source, or drop `compare`",
            )
        bounds = [key for key in ("max", "min") if key in tnode]
        if not bounds and "compare" in tnode:  # a relative judgement instead of a threshold
            merged.pop(metric, None)
            compared[metric] = _comparison(tnode, f"{mpath}.compare", metric, None)
            continue
        if len(bounds) != 1:
            fail(
                tnode.loc(bounds[-1] if bounds else None, mpath),
                f"threshold `{metric}` needs exactly one of `max` and `min`",
                "max: N breaches when the value is above N; min: N when it is below N",
            )
        direction = Direction(bounds[0])
        limit = read_number(tnode, bounds[0], f"{mpath}.{bounds[0]}")
        old = merged.get(metric)
        kept = old.unit if old is not None and old.direction is direction else ""
        unit = read_unit(tnode, mpath, kept)
        merged[metric] = Threshold(metric, direction, limit, unit)
        if "compare" in tnode:
            compared[metric] = _comparison(tnode, f"{mpath}.compare", metric, direction)
    return tuple(merged.values()), tuple(compared.values())


def read_unit(node: Node, path: str, default: str) -> str:
    """A threshold's ``unit`` at ``path.unit`` (may be empty), or ``default`` without one."""
    if "unit" in node:
        return read_text(node, "unit", f"{path}.unit", max_len=16, empty=True)
    return default


def _comparison(node: Node, path: str, metric: str, direction: Direction | None) -> Comparison:
    cnode = read_mapping(node, "compare", path)
    check_keys(cnode, _COMPARE_KEYS, path)
    if "direction" in cnode:
        direction = read_choice(
            cnode,
            "direction",
            path,
            Direction,
            what="direction",
            hint="max: higher is worse (error rate); min: lower is worse",
            max_len=8,
        )
    if direction is None:
        fail(
            cnode.loc(None, f"{path}.direction"),
            f"`compare` of `{metric}` has no threshold to take its direction from",
            "add `direction: max` (higher is worse) or `direction: min`, or a max/min threshold",
        )
    allowed, percent = 0.0, False
    if "allowed" in cnode:
        raw = cnode["allowed"]
        match = re.fullmatch(r"(\d+(?:\.\d+)?)%", raw.strip()) if isinstance(raw, str) else None
        if match:
            allowed, percent = float(match.group(1)), True
        else:
            allowed = read_number(cnode, "allowed", f"{path}.allowed")
        if allowed < 0:
            fail(cnode.loc("allowed", f"{path}.allowed"), "`allowed` is negative",
                 "the largest harmless shift, >= 0: in the metric's unit, or \"10%\"")  # fmt: skip
    confidence = 0.95
    if "confidence" in cnode:
        confidence = read_number(cnode, "confidence", f"{path}.confidence")
        if not 0.5 <= confidence < 1:
            fail(cnode.loc("confidence", f"{path}.confidence"),
                 f"confidence {confidence:g} is outside 0.5..0.999",
                 "write it as a fraction: 0.95 for 95%")  # fmt: skip
    min_samples = 5
    if "min_samples" in cnode:
        min_samples = read_int(cnode, "min_samples", f"{path}.min_samples", low=3)
    weight = 1.0
    if "weight" in cnode:
        weight = read_number(cnode, "weight", f"{path}.weight")
        if weight <= 0:
            fail(cnode.loc("weight", f"{path}.weight"), "`weight` must be above zero",
                 "a metric's share of the wave's score, e.g. 1 or 3")  # fmt: skip
    critical = read_bool(cnode, "critical", f"{path}.critical") if "critical" in cnode else False
    return Comparison(metric, direction, allowed, percent, confidence, min_samples, weight,
                      critical)  # fmt: skip


def read_scoring(node: Node, key: str, path: str, base: Scoring) -> Scoring:
    """``judgement`` (``node[key]`` at ``path``): the pass and marginal scores over ``base``."""
    jnode = read_mapping(node, key, path)
    check_keys(jnode, _JUDGEMENT_KEYS, path)
    values = {"pass": base.pass_score, "marginal": base.marginal_score}
    for name in _JUDGEMENT_KEYS:
        if name in jnode:
            values[name] = read_number(jnode, name, f"{path}.{name}")
            if not 0 <= values[name] <= 100:
                fail(jnode.loc(name, f"{path}.{name}"), f"`{name}` {values[name]:g} is outside "
                     "0..100", "scores are percentages of the judged metrics' weight")  # fmt: skip
    if values["marginal"] > values["pass"]:
        fail(
            jnode.loc("marginal", f"{path}.marginal"),
            f"marginal {values['marginal']:g} is above pass {values['pass']:g}",
            "a score >= pass passes, >= marginal asks a person, below marginal fails",
        )
    return Scoring(values["pass"], values["marginal"])
