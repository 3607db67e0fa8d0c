"""Load and validate rollout playbooks; resolve every phase to its full flag state.

A playbook lists each phase as a *delta* (the flags it changes). Deploys and rollbacks must
converge hosts to a phase's *full* state, so the loader resolves it here, once: the flags'
defaults (phase 0, the baseline) merged with every delta up to and including that phase.
``Phase.delta`` keeps what the file lists; ``Phase.state`` is what hosts must end up with.

Every mistake raises :class:`~rollout.errors.PlaybookError` carrying ``file:line (key)`` and
a hint; ``key`` is the path to the offending value, e.g. ``phases[3].soak`` (phase entries
count from 1) or ``health.thresholds.error_rate.max``. The format and the table of rules are
in ``docs/playbook.md``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

from .errors import InputError, PlaybookError, SourceLocation
from .fields import is_control as _is_control
from .fields import is_number, is_whole, show
from .models import (
    FLAG_NAME_RE,
    METRIC_NAME_RE,
    BalanceCheck,
    BatchSize,
    Check,
    CheckCategory,
    CheckKind,
    ChecksConfig,
    CommandCheck,
    CommandWhere,
    Comparison,
    Direction,
    EmergencyPolicy,
    FlagState,
    FlagValue,
    Gates,
    HealthPolicy,
    MetricCheck,
    MetricsSource,
    NotifyConfig,
    NotifyKind,
    PatternCheck,
    Phase,
    Playbook,
    ReachabilityCheck,
    Risk,
    RolloutPolicy,
    Scoring,
    SourceKind,
    Threshold,
    Wave,
    WaveSize,
    WebhookConfig,
)
from .yamlsrc import Node, NodeList, load_file, load_text, parse_duration

__all__ = ["load_playbook", "load_playbook_text"]

ROLLOUT_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,63}")
ENV_NAME_RE = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
PERCENT_RE = re.compile(r"(\d{1,3})%")
MAX_FILE_BYTES = 1_000_000

_TOP_KEYS = (
    "rollout", "description", "flags", "health", "policy", "emergency", "phases", "checks",
    "notify", "judgement",
)  # fmt: skip
_PHASE_HEALTH_KEYS = ("interval", "failure_limit", "inconclusive_limit", "thresholds")
_HEALTH_KEYS = ("source", *_PHASE_HEALTH_KEYS, "textfile")
_SOURCE_KEYS: dict[SourceKind, tuple[str, ...]] = {
    SourceKind.CONSOLE: ("kind", "timeout"),
    SourceKind.COMMAND: ("kind", "timeout", "command"),
    SourceKind.PROMETHEUS: ("kind", "timeout", "url_env", "url_file", "queries"),
}
_THRESHOLD_KEYS = ("max", "min", "unit", "compare")
_COMPARE_KEYS = ("direction", "allowed", "confidence", "min_samples", "weight", "critical")
_WAVE_KEYS = ("hosts", "soak")
_JUDGEMENT_KEYS = ("pass", "marginal")
_POLICY_KEYS = ("serial", "max_fail_percentage", "connect_timeout", "command_timeout", "lease_ttl")
_EMERGENCY_KEYS = ("phase", "restart")
_PHASE_KEYS = (
    "phase", "name", "risk", "soak", "set", "validation", "health", "gates", "waves", "judgement",
)  # fmt: skip
_GATE_KEYS = ("backup", "checks", "approval")
_CHECKS_KEYS = ("source_root", "categories")
_CHECK_KEYS: dict[CheckKind, tuple[str, ...]] = {
    CheckKind.PATTERN: ("name", "kind", "paths", "exclude", "forbid", "require"),
    CheckKind.BALANCE: ("name", "kind", "paths", "exclude", "open", "close"),
    CheckKind.REACHABILITY: ("name", "kind"),
    CheckKind.METRIC: ("name", "kind", "metric", "max", "min", "unit"),
    CheckKind.COMMAND: ("name", "kind", "where", "command", "cwd", "expect_exit", "timeout"),
}
_NOTIFY_KEYS = ("webhook", "events")
#: Where a secret URL may come from (a literal URL is refused: it may carry a token).
URL_FROM = "url_env: NAME (an environment variable) or url_file: path"
_WEBHOOK_KEYS = ("url_env", "url_file", "timeout", "template")
MAX_NOTIFY_TIMEOUT = 60.0
_ZERO_HINT = "use false: a percentage of 0 is truthy wherever the service calls enabled?/1"


def load_playbook(path: str | Path) -> Playbook:
    """Read, validate and resolve the playbook at ``path``."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError:
        size = 0  # load_file reports a missing or unreadable file
    if size > MAX_FILE_BYTES:
        _fail(SourceLocation(str(p)), f"file is {size} bytes", "a playbook is at most 1 MB")
    try:
        data = load_file(p, MAX_FILE_BYTES)  # a regular file only, capped as it is read
    except InputError as exc:
        raise _as_playbook_error(exc) from None
    return _playbook(data, str(p), p.parent)


def load_playbook_text(text: str, source: str = "<string>") -> Playbook:
    """Validate and resolve playbook YAML given as text; ``source`` names it in errors."""
    try:
        data = load_text(text, source)
    except InputError as exc:
        raise _as_playbook_error(exc) from None
    return _playbook(data, source, None)


# -- the document -------------------------------------------------------------------------


def _playbook(data: object, source: str, base_dir: Path | None) -> Playbook:
    if not isinstance(data, Node):
        what = "empty" if data is None else f"a {_kind(data)}, not a mapping"
        _fail(
            SourceLocation(source, 1),
            f"the playbook is {what}",
            "a playbook is a mapping with rollout, flags and phases at the top level",
        )
    _check_keys(data, _TOP_KEYS, "", required=("rollout", "flags", "phases"))
    name = _text(data, "rollout", "rollout", max_len=64)
    if not ROLLOUT_NAME_RE.fullmatch(name):
        _fail(
            data.loc("rollout"),
            f"rollout name {_show(name)} is not a plain identifier",
            "use lowercase letters, digits, '_' and '-', starting with a letter",
        )
    description = ""
    if "description" in data:
        description = _text(data, "description", "description", max_len=2000, lines=True)
    flags_node = _mapping(data, "flags", "flags")
    defaults = _flags(flags_node)
    source_ = MetricsSource()
    health = HealthPolicy(thresholds=())
    textfile: str | None = None
    if "health" in data:
        node = _mapping(data, "health", "health")
        _check_keys(node, _HEALTH_KEYS, "health")
        if "source" in node:
            source_ = _source(_mapping(node, "source", "health.source"), base_dir)
        health = _health(node, "health", health, _query_metrics(source_))
        if "textfile" in node:
            textfile = _text(node, "textfile", "health.textfile", max_len=4096)
    scoring = Scoring()
    if "judgement" in data:
        scoring = _scoring(data, "judgement", "judgement", scoring)
    phases = _phases(data, defaults, health, _query_metrics(source_), scoring)
    policy = RolloutPolicy()
    if "policy" in data:
        policy = _policy(_mapping(data, "policy", "policy"))
    emergency = EmergencyPolicy()
    if "emergency" in data:
        emergency = _emergency(_mapping(data, "emergency", "emergency"), len(phases))
    checks = ChecksConfig()
    if "checks" in data:
        checks = _checks(_mapping(data, "checks", "checks"), base_dir, health, phases)
    notify = NotifyConfig()
    if "notify" in data:
        notify = _notify(_mapping(data, "notify", "notify"), base_dir)
    return Playbook(
        path=source,
        name=name,
        description=description,
        defaults=defaults,
        phases=phases,
        health=health,
        source=source_,
        policy=policy,
        emergency=emergency,
        checks=checks,
        notify=notify,
        flag_lines=MappingProxyType({k: flags_node.key_lines.get(k, 0) for k in flags_node}),
        scoring=scoring,
        textfile=textfile,
    )


def _flags(node: Node) -> FlagState:
    if not node:
        _fail(node.loc(None, "flags"), "`flags` lists no flags", "list every flag with its default")
    for name, default in node.items():
        loc = node.loc(name, f"flags.{_seg(name)}")
        if not FLAG_NAME_RE.fullmatch(name):
            _fail(
                loc,
                f"flag name {_show(name)} is not a plain identifier",
                "use lowercase letters, digits and '_', starting with a letter (at most 63)",
            )
        if not isinstance(default, bool):
            _fail(
                loc,
                f"the default of `{name}` must be true or false, not {_show(default)}",
                "defaults are phase 0, the baseline: write true or false",
            )
    return FlagState.of(dict(node))


# -- phases ---------------------------------------------------------------------------------


def _phases(
    data: Node,
    defaults: FlagState,
    health: HealthPolicy,
    queries: frozenset[str] | None,
    scoring: Scoring,
) -> tuple[Phase, ...]:
    items = data["phases"]
    if not isinstance(items, NodeList) or not items:
        _fail(
            data.loc("phases", "phases"),
            "`phases` must be a non-empty list",
            "list phases 1..N, each with phase, name, risk, soak and set",
        )
    seen: dict[int, int] = {}
    previous = defaults
    out: list[Phase] = []
    for index, item in enumerate(items):
        path = f"phases[{index + 1}]"
        if not isinstance(item, Node):
            _fail(
                items.loc(index, path),
                f"a phase must be a mapping, not a {_kind(item)}",
                "each entry is a mapping with phase, name, risk, soak and set",
            )
        _check_keys(item, _PHASE_KEYS, path, required=("phase", "name", "risk", "soak", "set"))
        number = _int(item, "phase", f"{path}.phase", low=1)
        if number in seen:
            _fail(
                item.loc("phase", f"{path}.phase"),
                f"phase {number} appears twice (first at line {seen[number]})",
                "give each phase its own number",
            )
        if number != index + 1:
            _fail(
                item.loc("phase", f"{path}.phase"),
                f"expected phase {index + 1} here, got phase {number}",
                "number phases 1..N in ascending order, without gaps",
            )
        seen[number] = item.key_lines["phase"]
        phase = _phase(item, path, number, previous, health, queries, scoring)
        out.append(phase)
        previous = phase.state
    return tuple(out)


def _phase(
    node: Node,
    path: str,
    number: int,
    previous: FlagState,
    health: HealthPolicy,
    queries: frozenset[str] | None,
    base_scoring: Scoring,
) -> Phase:
    name = _text(node, "name", f"{path}.name", max_len=80)
    risk_text = _text(node, "risk", f"{path}.risk", max_len=16)
    try:
        risk = Risk(risk_text)
    except ValueError:
        _fail(
            node.loc("risk", f"{path}.risk"),
            f"unknown risk {_show(risk_text)}",
            f"use one of: {', '.join(r.value for r in Risk)}",
        )
    soak = _duration(node, "soak", f"{path}.soak", positive=False)
    delta = _delta(_mapping(node, "set", f"{path}.set"), f"{path}.set", previous)
    state = previous.merged(delta.as_dict())
    if not state.changes_from(previous.as_dict()):
        _fail(
            node.loc("set", f"{path}.set"),
            f"phase {number} changes nothing: every flag in `set` already has that value",
            f"change at least one flag relative to phase {number - 1}, or drop the phase",
        )
    validation = ""
    if "validation" in node:
        validation = _text(node, "validation", f"{path}.validation", max_len=500)
    override: HealthPolicy | None = None
    if "health" in node:
        hnode = _mapping(node, "health", f"{path}.health")
        _check_keys(
            hnode,
            _PHASE_HEALTH_KEYS,
            f"{path}.health",
            hint="the metrics source is set once, under the top-level `health`",
        )
        override = _health(hnode, f"{path}.health", health, queries)
    gates = Gates()
    if "gates" in node:
        gnode = _mapping(node, "gates", f"{path}.gates")
        _check_keys(gnode, _GATE_KEYS, f"{path}.gates")
        values = {k: _bool(gnode, k, f"{path}.gates.{k}") for k in gnode}
        gates = Gates(**values)
    waves: tuple[Wave, ...] = ()
    if "waves" in node:
        waves = _waves(node, f"{path}.waves")
    scoring = None
    if "judgement" in node:
        scoring = _scoring(node, "judgement", f"{path}.judgement", base_scoring)
    return Phase(
        number, name, risk, soak, delta, state, validation, override, gates, waves, scoring
    )


# -- waves and relative judgement (docs/playbook.md, "Waves") --------------------------------


def _waves(node: Node, path: str) -> tuple[Wave, ...]:
    items = node["waves"]
    hint = 'list waves like [{hosts: 1, soak: 10m}, {hosts: "25%", soak: 30m}]'
    if not isinstance(items, NodeList) or not items:
        _fail(node.loc("waves", path), "`waves` must be a non-empty list", hint)
    out: list[Wave] = []
    last: dict[type, tuple[int, int]] = {}  # kind of size -> (previous value, its wave number)
    for index, item in enumerate(items):
        wpath = f"{path}[{index + 1}]"
        if not isinstance(item, Node):
            _fail(items.loc(index, wpath), f"a wave must be a mapping, not a {_kind(item)}", hint)
        _check_keys(item, _WAVE_KEYS, wpath, required=("hosts", "soak"))
        size = _wave_size(item, f"{wpath}.hosts")
        amount = int(size[:-1]) if isinstance(size, str) else size
        before = last.get(type(size))
        if before is not None and amount <= before[0]:
            _fail(
                item.loc("hosts", f"{wpath}.hosts"),
                f"wave {index + 1} ({_show(size)}) does not grow past wave {before[1]}",
                "wave sizes are cumulative (how much of the fleet has the phase once the wave "
                "is applied), so each must be larger than the one before",
            )
        last[type(size)] = (amount, index + 1)
        out.append(Wave(size, _duration(item, "soak", f"{wpath}.soak", positive=False)))
    return tuple(out)


def _wave_size(node: Node, path: str) -> WaveSize:
    value = node["hosts"]
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    match = PERCENT_RE.fullmatch(value) if isinstance(value, str) else None
    if match and 1 <= int(match.group(1)) <= 99:
        return f"{int(match.group(1))}%"
    _fail(
        node.loc("hosts", path),
        f"bad wave size {_show(value)}",
        'write a host count (1, 5) or a share of the fleet below 100% ("25%"); the hosts '
        "left after the last wave form the final wave, soaked for the phase's `soak`",
    )


def _scoring(node: Node, key: str, path: str, base: Scoring) -> Scoring:
    jnode = _mapping(node, key, path)
    _check_keys(jnode, _JUDGEMENT_KEYS, path)
    values = {"pass": base.pass_score, "marginal": base.marginal_score}
    for name in _JUDGEMENT_KEYS:
        if name in jnode:
            values[name] = _number(jnode, name, f"{path}.{name}")
            if not 0 <= values[name] <= 100:
                _fail(jnode.loc(name, f"{path}.{name}"), f"`{name}` {values[name]:g} is outside "
                      "0..100", "scores are percentages of the judged metrics' weight")  # fmt: skip
    if values["marginal"] > values["pass"]:
        _fail(
            jnode.loc("marginal", f"{path}.marginal"),
            f"marginal {values['marginal']:g} is above pass {values['pass']:g}",
            "a score >= pass passes, >= marginal asks a person, below marginal fails",
        )
    return Scoring(values["pass"], values["marginal"])


def _comparison(node: Node, path: str, metric: str, direction: Direction | None) -> Comparison:
    cnode = _mapping(node, "compare", path)
    _check_keys(cnode, _COMPARE_KEYS, path)
    if "direction" in cnode:
        text = _text(cnode, "direction", f"{path}.direction", max_len=8)
        if text not in ("max", "min"):
            _fail(cnode.loc("direction", f"{path}.direction"), f"unknown direction {_show(text)}",
                  "max: higher is worse (error rate); min: lower is worse")  # fmt: skip
        direction = Direction(text)
    if direction is None:
        _fail(
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
            allowed = _number(cnode, "allowed", f"{path}.allowed")
        if allowed < 0:
            _fail(cnode.loc("allowed", f"{path}.allowed"), "`allowed` is negative",
                  "the largest harmless shift, >= 0: in the metric's unit, or \"10%\"")  # fmt: skip
    confidence = 0.95
    if "confidence" in cnode:
        confidence = _number(cnode, "confidence", f"{path}.confidence")
        if not 0.5 <= confidence < 1:
            _fail(cnode.loc("confidence", f"{path}.confidence"),
                  f"confidence {confidence:g} is outside 0.5..0.999",
                  "write it as a fraction: 0.95 for 95%")  # fmt: skip
    min_samples = 5
    if "min_samples" in cnode:
        min_samples = _int(cnode, "min_samples", f"{path}.min_samples", low=3)
    weight = 1.0
    if "weight" in cnode:
        weight = _number(cnode, "weight", f"{path}.weight")
        if weight <= 0:
            _fail(cnode.loc("weight", f"{path}.weight"), "`weight` must be above zero",
                  "a metric's share of the wave's score, e.g. 1 or 3")  # fmt: skip
    critical = _bool(cnode, "critical", f"{path}.critical") if "critical" in cnode else False
    return Comparison(metric, direction, allowed, percent, confidence, min_samples, weight,
                      critical)  # fmt: skip


def _delta(node: Node, path: str, previous: FlagState) -> FlagState:
    known = previous.names()
    for flag, value in node.items():
        loc = node.loc(flag, f"{path}.{_seg(flag)}")
        if flag not in known:
            close = difflib.get_close_matches(flag, known, n=1)
            guess = f"did you mean `{close[0]}`? " if close else ""
            _fail(
                loc,
                f"flag {_show(flag)} is not in `flags`",
                f"{guess}known flags: {', '.join(known)}",
            )
        _flag_value(value, loc)
    return FlagState.of(dict(node))


def _flag_value(value: object, loc: SourceLocation) -> FlagValue:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value == 0:
            _fail(loc, "a percentage of 0 is refused", _ZERO_HINT)
        if not 1 <= value <= 100:
            _fail(
                loc,
                f"percentage {value} is outside 1..100",
                "write true, false, or a whole percentage from 1 to 100",
            )
        return value
    if isinstance(value, float):
        hint = "percentages are whole numbers from 1 to 100, e.g. 10"
    elif isinstance(value, str) and PERCENT_RE.fullmatch(value.strip()):
        hint = f"write the number without quotes or '%': {value.strip()[:-1]}"
    elif isinstance(value, str):
        hint = "write true or false without quotes, or a whole percentage from 1 to 100"
    else:
        hint = "write true, false, or a whole percentage from 1 to 100"
    _fail(loc, f"a flag value must be true, false or a percentage, not {_show(value)}", hint)


# -- health ---------------------------------------------------------------------------------


def _source(node: Node, base_dir: Path | None) -> MetricsSource:
    path = "health.source"
    kinds = ", ".join(k.value for k in SourceKind)
    if "url" in node:
        _fail(
            node.loc("url", f"{path}.url"),
            "a literal `url` is refused: a URL may carry a secret",
            "put the URL in an environment variable (url_env: NAME) or a file (url_file: path)",
        )
    if "kind" not in node:
        _fail(node.loc(None, path), "`source` needs a `kind`", f"use one of: {kinds}")
    kind_text = _text(node, "kind", f"{path}.kind", max_len=16)
    try:
        kind = SourceKind(kind_text)
    except ValueError:
        _fail(
            node.loc("kind", f"{path}.kind"),
            f"unknown source kind {_show(kind_text)}",
            f"use one of: {kinds}",
        )
    _check_keys(
        node,
        _SOURCE_KEYS[kind],
        path,
        hint=f"kind {kind.value} takes: {', '.join(_SOURCE_KEYS[kind])}",
    )
    timeout = MetricsSource.timeout
    if "timeout" in node:
        timeout = _duration(node, "timeout", f"{path}.timeout", positive=True)
    if kind is SourceKind.CONSOLE:
        return MetricsSource(kind, timeout=timeout)
    if kind is SourceKind.COMMAND:
        if "command" not in node:
            _fail(
                node.loc(None, path),
                "a command source needs `command`",
                "give the command each host runs; it must print one JSON object of metrics",
            )
        command = _text(node, "command", f"{path}.command", max_len=1000)
        return MetricsSource(kind, command=command, timeout=timeout)
    return _prometheus(node, path, timeout, base_dir)


def _prometheus(node: Node, path: str, timeout: float, base_dir: Path | None) -> MetricsSource:
    url_env, url_file = _url_source(
        node, path, "a prometheus source", "the base URL", "PROMETHEUS_URL", base_dir
    )
    if "queries" not in node:
        _fail(
            node.loc(None, path),
            "a prometheus source needs `queries`",
            "map each metric to a PromQL query, e.g. error_rate: 'sum(rate(...))'",
        )
    qnode = _mapping(node, "queries", f"{path}.queries")
    if not qnode:
        _fail(
            node.loc("queries", f"{path}.queries"),
            "`queries` is empty",
            "map each metric to a PromQL query",
        )
    queries: list[tuple[str, str]] = []
    for metric in qnode:
        _metric_name(qnode, metric, f"{path}.queries")
        queries.append((metric, _text(qnode, metric, f"{path}.queries.{metric}", max_len=2000)))
    return MetricsSource(
        SourceKind.PROMETHEUS,
        url_env=url_env,
        url_file=url_file,
        queries=tuple(queries),
        timeout=timeout,
    )


def _query_metrics(source: MetricsSource) -> frozenset[str] | None:
    """The metrics a source can answer for, or None when it reports whatever it has."""
    if source.kind is SourceKind.PROMETHEUS:
        return frozenset(metric for metric, _ in source.queries)
    return None


def _health(
    node: Node, path: str, base: HealthPolicy, queries: frozenset[str] | None
) -> HealthPolicy:
    interval = base.interval
    if "interval" in node:
        interval = _duration(node, "interval", f"{path}.interval", positive=True)
    failure_limit = base.failure_limit
    if "failure_limit" in node:
        failure_limit = _int(node, "failure_limit", f"{path}.failure_limit", low=1)
    inconclusive_limit = base.inconclusive_limit
    if "inconclusive_limit" in node:
        inconclusive_limit = _int(node, "inconclusive_limit", f"{path}.inconclusive_limit", low=1)
    thresholds, comparisons = base.thresholds, base.comparisons
    if "thresholds" in node:
        tnode = _mapping(node, "thresholds", f"{path}.thresholds")
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
        _metric_name(node, metric, path)
        mpath = f"{path}.{metric}"
        if queries is not None and metric not in queries:
            _fail(
                node.loc(metric, mpath),
                f"no query for metric `{metric}`",
                "add it under health.source.queries, or drop the threshold",
            )
        tnode = _mapping(node, metric, mpath)
        _check_keys(tnode, _THRESHOLD_KEYS, mpath)
        if "compare" in tnode and queries is not None:
            _fail(
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
            _fail(
                tnode.loc(bounds[-1] if bounds else None, mpath),
                f"threshold `{metric}` needs exactly one of `max` and `min`",
                "max: N breaches when the value is above N; min: N when it is below N",
            )
        direction = Direction(bounds[0])
        limit = _number(tnode, bounds[0], f"{mpath}.{bounds[0]}")
        old = merged.get(metric)
        unit = old.unit if old is not None and old.direction is direction else ""
        if "unit" in tnode:
            unit = _text(tnode, "unit", f"{mpath}.unit", max_len=16, empty=True)
        merged[metric] = Threshold(metric, direction, limit, unit)
        if "compare" in tnode:
            compared[metric] = _comparison(tnode, f"{mpath}.compare", metric, direction)
    return tuple(merged.values()), tuple(compared.values())


def _metric_name(node: Node, metric: str, path: str) -> None:
    if not METRIC_NAME_RE.fullmatch(metric):
        _fail(
            node.loc(metric, f"{path}.{_seg(metric)}"),
            f"metric name {_show(metric)} is not a plain identifier",
            "use lowercase letters, digits and '_', starting with a letter",
        )


# -- policy and emergency -------------------------------------------------------------------


def _policy(node: Node) -> RolloutPolicy:
    _check_keys(node, _POLICY_KEYS, "policy")
    defaults = RolloutPolicy()
    serial = defaults.serial
    if "serial" in node:
        serial = _serial(node)
    max_fail = defaults.max_fail_percentage
    if "max_fail_percentage" in node:
        max_fail = _number(node, "max_fail_percentage", "policy.max_fail_percentage")
        if not 0 <= max_fail <= 100:
            _fail(
                node.loc("max_fail_percentage", "policy.max_fail_percentage"),
                f"max_fail_percentage {max_fail:g} is outside 0..100",
                "0 stops at the first failed host; 100 never stops for failures",
            )
    timeouts = {
        key: _duration(node, key, f"policy.{key}", positive=True)
        for key in ("connect_timeout", "command_timeout", "lease_ttl")
        if key in node
    }
    if timeouts.get("lease_ttl", 5.0) < 5.0:
        _fail(
            node.loc("lease_ttl", "policy.lease_ttl"),
            f"lease_ttl {timeouts['lease_ttl']:g}s is too short",
            "use at least 5s, and more than the longest soak poll interval (default 2m)",
        )
    return RolloutPolicy(serial, max_fail, **timeouts)


def _serial(node: Node) -> tuple[BatchSize, ...]:
    value = node["serial"]
    hint = 'use whole host counts (1, 5) or percentages ("50%"), e.g. [1, "50%", "100%"]'
    if isinstance(value, NodeList):
        if not value:
            _fail(node.loc("serial", "policy.serial"), "`serial` is empty", hint)
        entries = [(item, value.loc(i, f"policy.serial[{i + 1}]")) for i, item in enumerate(value)]
    else:
        entries = [(value, node.loc("serial", "policy.serial"))]
    out: list[BatchSize] = []
    for item, loc in entries:
        if isinstance(item, int) and not isinstance(item, bool) and item >= 1:
            out.append(item)
            continue
        match = PERCENT_RE.fullmatch(item) if isinstance(item, str) else None
        if match and 1 <= int(match.group(1)) <= 100:
            out.append(f"{int(match.group(1))}%")
            continue
        _fail(loc, f"bad batch size {_show(item)}", hint)
    return tuple(out)


def _emergency(node: Node, last: int) -> EmergencyPolicy:
    _check_keys(node, _EMERGENCY_KEYS, "emergency")
    defaults = EmergencyPolicy()
    phase = defaults.phase
    if "phase" in node:
        phase = _int(node, "phase", "emergency.phase", low=0)
    if phase > last:
        _fail(
            node.loc("phase", "emergency.phase"),
            f"emergency phase {phase} does not exist (phases are 1..{last})",
            f"use a phase from 0 (the baseline) to {last}",
        )
    restart = defaults.restart
    if "restart" in node:
        restart = _bool(node, "restart", "emergency.restart")
    return EmergencyPolicy(phase, restart)


# -- the readiness checklist ----------------------------------------------------------------


def _checks(
    node: Node, base_dir: Path | None, health: HealthPolicy, phases: Sequence[Phase]
) -> ChecksConfig:
    _check_keys(node, _CHECKS_KEYS, "checks", required=("categories",))
    source_root = None
    if "source_root" in node:
        source_root = _resolve(
            _text(node, "source_root", "checks.source_root", max_len=4096), base_dir
        )
    cats = _mapping(node, "categories", "checks.categories")
    names = [c.value for c in CheckCategory]
    if not cats:
        _fail(
            cats.loc(None, "checks.categories"),
            "`categories` lists no checks",
            f"list checks under any of: {', '.join(names)}",
        )
    _check_keys(cats, names, "checks.categories", hint=f"the categories are: {', '.join(names)}")
    read = {t.metric for t in health.thresholds}
    for phase in phases:
        read.update(t.metric for t in (phase.health.thresholds if phase.health else ()))
    out: list[Check] = []
    for category in CheckCategory:  # run and report in the checklist's own order
        if category.value in cats:
            out.extend(_category(cats, category, base_dir, health, frozenset(read)))
    return ChecksConfig(source_root, tuple(out))


def _category(
    cats: Node,
    category: CheckCategory,
    base_dir: Path | None,
    health: HealthPolicy,
    read: frozenset[str],
) -> list[Check]:
    path = f"checks.categories.{category.value}"
    items = cats[category.value]
    if not isinstance(items, NodeList) or not items:
        _fail(
            cats.loc(category.value, path),
            f"`{category.value}` must be a non-empty list of checks",
            "write one `- {name: ..., kind: ...}` entry per check, or drop the category",
        )
    seen: dict[str, int] = {}
    out: list[Check] = []
    for index, item in enumerate(items):
        ipath = f"{path}[{index + 1}]"
        if not isinstance(item, Node):
            _fail(
                items.loc(index, ipath),
                f"a check must be a mapping, not a {_kind(item)}",
                "write {name: ..., kind: ...} with the keys of its kind",
            )
        check = _check(item, ipath, category, base_dir, health, read)
        if check.name in seen:
            _fail(
                item.loc("name", f"{ipath}.name"),
                f"check {_show(check.name)} appears twice in {category.value}"
                f" (first at line {seen[check.name]})",
                "give each check in a category its own name",
            )
        seen[check.name] = item.key_lines["name"]
        out.append(check)
    return out


def _check(
    node: Node,
    path: str,
    category: CheckCategory,
    base_dir: Path | None,
    health: HealthPolicy,
    read: frozenset[str],
) -> Check:
    kinds = ", ".join(k.value for k in CheckKind)
    if "kind" not in node:
        _fail(node.loc(None, path), "a check needs a `kind`", f"use one of: {kinds}")
    kind_text = _text(node, "kind", f"{path}.kind", max_len=16)
    try:
        kind = CheckKind(kind_text)
    except ValueError:
        close = difflib.get_close_matches(kind_text, [k.value for k in CheckKind], n=1)
        _fail(
            node.loc("kind", f"{path}.kind"),
            f"unknown check kind {_show(kind_text)}",
            (f"did you mean `{close[0]}`? " if close else "") + f"kinds: {kinds}",
        )
    _check_keys(node, _CHECK_KEYS[kind], path, required=("name",))
    name = _text(node, "name", f"{path}.name", max_len=120)
    line = node.key_lines.get("name", node.line)
    if kind is CheckKind.PATTERN:
        paths, exclude = _globs(node, path, "paths"), _exclude(node, path)
        forbid = _regexes(node, "forbid", path) if "forbid" in node else ()
        require = _regexes(node, "require", path) if "require" in node else ()
        if not forbid and not require:
            _fail(
                node.loc(None, path),
                "a pattern check needs `forbid` or `require`",
                "forbid: regexes no file may match; require: regexes every file must match",
            )
        return PatternCheck(category, name, line, paths, forbid, require, exclude)
    if kind is CheckKind.BALANCE:
        paths, exclude = _globs(node, path, "paths"), _exclude(node, path)
        pair = []
        for key in ("open", "close"):
            if key not in node:
                _fail(
                    node.loc(None, path),
                    f"a balance check needs `{key}`",
                    "open: what starts something (Process.monitor); close: what ends it",
                )
            pair.append(_regex(node[key], node.loc(key, f"{path}.{key}")))
        return BalanceCheck(category, name, line, paths, pair[0], pair[1], exclude)
    if kind is CheckKind.REACHABILITY:
        return ReachabilityCheck(category, name, line)
    if kind is CheckKind.METRIC:
        return MetricCheck(category, name, line, _metric_threshold(node, path, health, read))
    return _command_check(node, path, category, name, line, base_dir)


def _metric_threshold(
    node: Node, path: str, health: HealthPolicy, read: frozenset[str]
) -> Threshold:
    if "metric" not in node:
        _fail(node.loc(None, path), "a metric check needs `metric`", "name a health metric")
    metric = _text(node, "metric", f"{path}.metric", max_len=64)
    loc = node.loc("metric", f"{path}.metric")
    if not METRIC_NAME_RE.fullmatch(metric):
        _fail(loc, f"metric name {_show(metric)} is not a plain identifier", "use e.g. error_rate")
    if metric not in read:
        close = difflib.get_close_matches(metric, sorted(read), n=1)
        _fail(
            loc,
            f"metric `{metric}` is not read from the hosts",
            (f"did you mean `{close[0]}`? " if close else "")
            + "hosts report the metrics named under health.thresholds; add it there",
        )
    bounds = [key for key in ("max", "min") if key in node]
    if len(bounds) > 1:
        _fail(
            node.loc("min", f"{path}.min"),
            f"metric check `{metric}` has both `max` and `min`",
            "give one bound per check; add a second check for the other",
        )
    if not bounds:
        base = next((t for t in health.thresholds if t.metric == metric), None)
        if base is None:
            _fail(
                node.loc(None, path),
                f"metric check `{metric}` has no `max` or `min`, and health.thresholds has none",
                "give max: N or min: N, or add a threshold for it under health.thresholds",
            )
        if "unit" in node:
            unit = _text(node, "unit", f"{path}.unit", max_len=16, empty=True)
            return Threshold(metric, base.direction, base.limit, unit)
        return base
    limit = _number(node, bounds[0], f"{path}.{bounds[0]}")
    unit = next((t.unit for t in health.thresholds if t.metric == metric), "")
    if "unit" in node:
        unit = _text(node, "unit", f"{path}.unit", max_len=16, empty=True)
    return Threshold(metric, Direction(bounds[0]), limit, unit)


def _command_check(
    node: Node, path: str, category: CheckCategory, name: str, line: int, base_dir: Path | None
) -> CommandCheck:
    where = CommandWhere.LOCAL
    if "where" in node:
        text = _text(node, "where", f"{path}.where", max_len=16)
        try:
            where = CommandWhere(text)
        except ValueError:
            _fail(
                node.loc("where", f"{path}.where"),
                f"unknown place {_show(text)}",
                "local: on this machine; hosts: on every selected host",
            )
    if "command" not in node:
        _fail(node.loc(None, path), "a command check needs `command`", 'write e.g. ["mix", "test"]')
    argv = node["command"]
    cpath = f"{path}.command"
    if not isinstance(argv, NodeList) or not argv:
        _fail(
            node.loc("command", cpath),
            f"`command` must be a non-empty list of arguments, not {_show(argv)}",
            'write the argv as a list, e.g. ["mix", "test"]: commands never go through a shell',
        )
    command = []
    for index, arg in enumerate(argv):
        loc = argv.loc(index, f"{cpath}[{index + 1}]")
        if not isinstance(arg, str) or not arg:
            _fail(
                loc,
                f"an argument must be non-empty text, not {_show(arg)}",
                'quote it: "true", "5"',
            )
        if len(arg) > 4096 or any(_is_control(c) for c in arg):
            _fail(loc, "an argument is too long or holds control characters", "write plain text")
        command.append(arg)
    cwd = None
    if "cwd" in node:
        if where is CommandWhere.HOSTS:
            _fail(
                node.loc("cwd", f"{path}.cwd"),
                "`cwd` applies to local commands only",
                "drop it; host commands run in the login directory of the SSH user",
            )
        cwd = _resolve(_text(node, "cwd", f"{path}.cwd", max_len=4096), base_dir)
    expect = 0
    if "expect_exit" in node:
        expect = _int(node, "expect_exit", f"{path}.expect_exit", low=0)
        if expect > 255:
            _fail(
                node.loc("expect_exit", f"{path}.expect_exit"),
                f"exit status {expect} is outside 0..255",
                "exit statuses are 0..255",
            )
    timeout = None
    if "timeout" in node:
        timeout = _duration(node, "timeout", f"{path}.timeout", positive=True)
    return CommandCheck(category, name, line, where, tuple(command), cwd, expect, timeout)


def _globs(node: Node, path: str, key: str) -> tuple[str, ...]:
    if key not in node:
        _fail(node.loc(None, path), f"this check needs `{key}`", 'e.g. paths: ["lib/**/*.ex"]')
    value = node[key]
    kpath = f"{path}.{key}"
    if not isinstance(value, NodeList) or not value:
        _fail(
            node.loc(key, kpath),
            f"`{key}` must be a non-empty list of globs, not {_show(value)}",
            'write e.g. ["lib/**/*.ex"], relative to the source root',
        )
    out = []
    for index, item in enumerate(value):
        loc = value.loc(index, f"{kpath}[{index + 1}]")
        if not isinstance(item, str) or not item.strip():
            _fail(loc, f"a glob must be text, not {_show(item)}", 'write e.g. "lib/**/*.ex"')
        parts = item.replace("\\", "/").split("/")
        if item.startswith(("/", "~")) or ".." in parts or any(_is_control(c) for c in item):
            _fail(
                loc,
                f"glob {_show(item)} leaves the source tree",
                "globs are relative to the source root, without '..' or a leading '/'",
            )
        if any("**" in part and part != "**" for part in parts):
            _fail(
                loc,
                f"glob {_show(item)} uses ** inside a name",
                "** stands for whole directories only: write lib/**/*.ex, not lib/**.ex",
            )
        out.append(item)
    return tuple(out)


def _exclude(node: Node, path: str) -> tuple[str, ...]:
    return _globs(node, path, "exclude") if "exclude" in node else ()


def _regexes(node: Node, key: str, path: str) -> tuple[re.Pattern[str], ...]:
    value = node[key]
    kpath = f"{path}.{key}"
    if not isinstance(value, NodeList) or not value:
        _fail(
            node.loc(key, kpath),
            f"`{key}` must be a non-empty list of regexes, not {_show(value)}",
            "write e.g. ['Process\\.spawn'] (single quotes keep backslashes as they are)",
        )
    return tuple(_regex(item, value.loc(i, f"{kpath}[{i + 1}]")) for i, item in enumerate(value))


def _regex(value: object, loc: SourceLocation) -> re.Pattern[str]:
    if not isinstance(value, str) or not value:
        _fail(loc, f"a regex must be non-empty text, not {_show(value)}", "quote it")
    if len(value) > 500:
        _fail(loc, f"the regex is {len(value)} characters long", "keep it to 500 or fewer")
    try:
        return re.compile(value, re.MULTILINE)
    except re.error as exc:
        _fail(
            loc,
            f"bad regex {_show(value)}: {exc.msg} at position {exc.pos}",
            "write it in Python `re` syntax inside single quotes; escape . ( ) with a backslash",
        )


def _url_source(
    node: Node, path: str, what: str, url: str, example: str, base_dir: Path | None
) -> tuple[str | None, str | None]:
    """Exactly one of ``url_env`` (a variable name) and ``url_file`` (resolved path)."""
    if ("url_env" in node) == ("url_file" in node):
        both = "url_env" in node
        _fail(
            node.loc("url_file", f"{path}.url_file") if both else node.loc(None, path),
            "give exactly one of `url_env` and `url_file`"
            if both
            else f"{what} needs `url_env` or `url_file`",
            f"{url} comes from {URL_FROM}",
        )
    if "url_env" in node:
        url_env = _text(node, "url_env", f"{path}.url_env", max_len=128)
        if not ENV_NAME_RE.fullmatch(url_env):
            _fail(
                node.loc("url_env", f"{path}.url_env"),
                f"{_show(url_env)} is not an environment variable name",
                f"use uppercase letters, digits and '_', e.g. {example}",
            )
        return url_env, None
    return None, _resolve(_text(node, "url_file", f"{path}.url_file", max_len=4096), base_dir)


def _resolve(text: str, base_dir: Path | None) -> str:
    """A path from the playbook, relative to the playbook's directory (when it has one)."""
    if base_dir is not None and not Path(text).is_absolute():
        return str(base_dir / text)
    return text


# -- notifications --------------------------------------------------------------------------


def _notify(node: Node, base_dir: Path | None) -> NotifyConfig:
    _check_keys(node, _NOTIFY_KEYS, "notify")
    webhook = None
    if "webhook" in node:
        webhook = _webhook(_mapping(node, "webhook", "notify.webhook"), base_dir)
    events = frozenset(NotifyKind)
    if "events" in node:
        events = _notify_events(node)
    return NotifyConfig(webhook, events)


def _webhook(node: Node, base_dir: Path | None) -> WebhookConfig:
    path = "notify.webhook"
    if "url" in node:
        _fail(
            node.loc("url", f"{path}.url"),
            "a literal `url` is refused: a webhook URL is a secret",
            f"anyone holding it can post to the channel; give {URL_FROM}",
        )
    _check_keys(node, _WEBHOOK_KEYS, path)
    url_env, url_file = _url_source(
        node, path, "a webhook", "the URL", "ROLLOUT_WEBHOOK_URL", base_dir
    )
    timeout = WebhookConfig.timeout
    if "timeout" in node:
        timeout = _duration(node, "timeout", f"{path}.timeout", positive=True)
        if timeout > MAX_NOTIFY_TIMEOUT:
            _fail(
                node.loc("timeout", f"{path}.timeout"),
                f"a webhook timeout of {timeout:g}s holds up the rollout",
                f"use at most {MAX_NOTIFY_TIMEOUT:g}s; 5s is plenty for a chat webhook",
            )
    template = WebhookConfig.template
    if "template" in node:
        template = _text(node, "template", f"{path}.template", max_len=200)
        parts = template.split("/")
        if (
            template.startswith("/")
            or ".." in parts
            or "\\" in template
            or not template.endswith(".j2")
        ):
            _fail(
                node.loc("template", f"{path}.template"),
                f"template {_show(template)} is not a .j2 file under templates/",
                "name it relative to templates/, e.g. notify/slack.json.j2",
            )
    _check_template(template, node.loc("template" if "template" in node else None,
                                       f"{path}.template"))  # fmt: skip
    return WebhookConfig(url_env, url_file, timeout, template)


def _check_template(template: str, loc: SourceLocation) -> None:
    """A broken notification template is found when the playbook loads, not mid-rollback."""
    from .errors import TemplateError
    from .notification import check_template

    try:
        check_template(template)
    except TemplateError as exc:
        _fail(loc, f"notification template {template} is broken: {exc.message}",
              exc.hint or "fix the template, then re-run")  # fmt: skip


def _notify_events(node: Node) -> frozenset[NotifyKind]:
    value = node["events"]
    names = [k.value for k in NotifyKind]
    if not isinstance(value, NodeList):
        _fail(
            node.loc("events", "notify.events"),
            f"`events` must be a list, not {_show(value)}",
            f"list any of: {', '.join(names)}",
        )
    out: set[NotifyKind] = set()
    for index, item in enumerate(value):
        loc = value.loc(index, f"notify.events[{index + 1}]")
        try:
            kind = NotifyKind(item)
        except ValueError:
            close = difflib.get_close_matches(str(item), names, n=1)
            _fail(
                loc,
                f"unknown event {_show(item)}",
                (f"did you mean `{close[0]}`? " if close else "") + f"events: {', '.join(names)}",
            )
        if kind in out:
            _fail(loc, f"event `{kind.value}` is listed twice", "list each event once")
        out.add(kind)
    return frozenset(out)


# -- scalars --------------------------------------------------------------------------------


def _typed(node: Node, key: str, path: str, ok: bool, what: str, hint: str) -> Any:
    """``node[key]`` when ``ok``, else "`key` must be <what>, not <the value>" at its line."""
    value = node[key]
    if not ok:
        _fail(node.loc(key, path), f"`{key}` must be {what}, not {_show(value)}", hint)
    return value


def _mapping(node: Node, key: str, path: str) -> Node:
    hint = "write it as `key: value` lines indented under it, or {key: value}"
    value: Node = _typed(node, key, path, isinstance(node[key], Node), "a mapping", hint)
    return value


def _text(
    node: Node, key: str, path: str, *, max_len: int, lines: bool = False, empty: bool = False
) -> str:
    value = node[key]
    loc = node.loc(key, path)
    if not isinstance(value, str):
        _fail(loc, f"`{key}` must be text, not {_show(value)}", "quote it if it is meant as text")
    if not value.strip() and not empty:
        _fail(loc, f"`{key}` is empty", "write something, or leave the key out where optional")
    if len(value) > max_len:
        _fail(loc, f"`{key}` is {len(value)} characters long", f"keep it to {max_len} or fewer")
    bad = next((c for c in value if _is_control(c) and not (lines and c == "\n")), None)
    if bad is not None:
        what = "a line break" if bad in "\r\n\u2028\u2029" else f"control character {bad!r}"
        _fail(loc, f"`{key}` contains {what}", "write it on one line of plain text")
    return value


def _bool(node: Node, key: str, path: str) -> bool:
    ok = isinstance(node[key], bool)
    value: bool = _typed(node, key, path, ok, "true or false", "write true or false without quotes")
    return value


def _int(node: Node, key: str, path: str, *, low: int) -> int:
    what = "a positive whole number" if low == 1 else f"a whole number >= {low}"
    ok = is_whole(node[key], low)
    value: int = _typed(node, key, path, ok, what, f"write {what} without quotes")
    return value


def _number(node: Node, key: str, path: str) -> float:
    hint = "write a number without quotes or units, e.g. 5.0"
    return float(_typed(node, key, path, is_number(node[key]), "a number", hint))


def _duration(node: Node, key: str, path: str, *, positive: bool) -> float:
    loc = node.loc(key, path)
    try:
        seconds = parse_duration(node[key], loc)
    except InputError as exc:
        raise _as_playbook_error(
            exc, "write a number with a unit: 500ms, 30s, 30m, 2h, 1d"
        ) from None
    if not math.isfinite(seconds):
        _fail(loc, f"`{key}` is not a finite duration", "write e.g. 30s, 30m, 2h or 24h")
    if positive and seconds <= 0:
        _fail(loc, f"`{key}` must be longer than zero", "write e.g. 10s or 1m")
    return seconds


# -- errors ---------------------------------------------------------------------------------


def _check_keys(
    node: Node,
    allowed: Sequence[str],
    path: str,
    *,
    required: Sequence[str] = (),
    hint: str | None = None,
) -> None:
    for key in node:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            _fail(
                node.loc(key, _join(path, _seg(key))),
                f"unknown key {_show(key)}",
                f"did you mean `{close[0]}`?"
                if close
                else hint or f"allowed here: {', '.join(allowed)}",
            )
    for key in required:
        if key not in node:
            _fail(
                node.loc(None, _join(path, key)),
                f"missing required key `{key}`",
                f"add `{key}:`" + (f" to {path}" if path else " at the top level"),
            )


def _fail(location: SourceLocation, message: str, hint: str) -> NoReturn:
    raise PlaybookError(message, location=location, hint=hint)


def _as_playbook_error(exc: InputError, hint: str | None = None) -> PlaybookError:
    """Re-raise a yamlsrc :class:`InputError` as a PlaybookError with the same location."""
    message = exc.message
    prefix = f"{exc.location}: " if exc.location else ""
    if prefix and message.startswith(prefix):
        message = message[len(prefix) :]
    default = "fix the YAML at that line"
    if "constructor for the tag" in message:
        default = "tags such as !!python/... are refused: write plain YAML values"
    return PlaybookError(message, location=exc.location, hint=hint or exc.hint or default)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _seg(key: str) -> str:
    """A key as it may appear in an error's key path: plain, or quoted and cut short."""
    if re.fullmatch(r"[A-Za-z0-9_%-]{1,64}", key):
        return key
    return _show(key)


def _show(value: object) -> str:
    """``value`` for an error message: repr'd (control characters escaped) and cut short."""
    return show(value)


def _kind(value: object) -> str:
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return type(value).__name__
