"""``checks``: the readiness checklist, by category, each check one of five kinds.

``pattern`` and ``balance`` read the release's source tree (globs under ``source_root``,
regexes), ``reachability`` needs nothing, ``metric`` bounds a health metric the hosts report,
and ``command`` runs an argv locally or on the hosts. Running them is the engine's
:mod:`rollout.checks`; this module only reads and checks the section.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from ..errors import SourceLocation
from ..fields import is_control, show
from ..models import (
    METRIC_NAME_RE,
    BalanceCheck,
    Check,
    CheckCategory,
    CheckKind,
    ChecksConfig,
    CommandCheck,
    CommandWhere,
    Direction,
    HealthPolicy,
    MetricCheck,
    PatternCheck,
    Phase,
    ReachabilityCheck,
    Threshold,
)
from ..yamlsrc import Node, NodeList
from .health import read_unit
from .reader import (
    check_keys,
    did_you_mean,
    fail,
    read_choice,
    read_duration,
    read_int,
    read_mapping,
    read_mappings,
    read_number,
    read_text,
    resolve,
)

__all__ = ["read_checks"]

_CHECKS_KEYS = ("source_root", "categories")
_CHECK_KEYS: dict[CheckKind, tuple[str, ...]] = {
    CheckKind.PATTERN: ("name", "kind", "paths", "exclude", "forbid", "require"),
    CheckKind.BALANCE: ("name", "kind", "paths", "exclude", "open", "close"),
    CheckKind.REACHABILITY: ("name", "kind"),
    CheckKind.METRIC: ("name", "kind", "metric", "max", "min", "unit"),
    CheckKind.COMMAND: ("name", "kind", "where", "command", "cwd", "expect_exit", "timeout"),
}


def read_checks(
    node: Node, base_dir: Path | None, health: HealthPolicy, phases: Sequence[Phase]
) -> ChecksConfig:
    """The ``checks`` mapping; a metric check may bound only a metric some health threshold
    (top-level or a phase's) makes the hosts report."""
    check_keys(node, _CHECKS_KEYS, "checks", required=("categories",))
    source_root = None
    if "source_root" in node:
        source_root = resolve(
            read_text(node, "source_root", "checks.source_root", max_len=4096), base_dir
        )
    cats = read_mapping(node, "categories", "checks.categories")
    names = [c.value for c in CheckCategory]
    if not cats:
        fail(
            cats.loc(None, "checks.categories"),
            "`categories` lists no checks",
            f"list checks under any of: {', '.join(names)}",
        )
    check_keys(cats, names, "checks.categories", hint=f"the categories are: {', '.join(names)}")
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
    seen: dict[str, int] = {}
    out: list[Check] = []
    for _, ipath, item in read_mappings(
        cats,
        category.value,
        f"checks.categories.{category.value}",
        hint="write one `- {name: ..., kind: ...}` entry per check, or drop the category",
        of="checks",
        item="check",
        item_hint="write {name: ..., kind: ...} with the keys of its kind",
    ):
        check = _check(item, ipath, category, base_dir, health, read)
        if check.name in seen:
            fail(
                item.loc("name", f"{ipath}.name"),
                f"check {show(check.name)} appears twice in {category.value}"
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
    kind = read_choice(node, "kind", path, CheckKind, what="check kind", hint=f"kinds: {kinds}",
                       suggest=True, missing="a check needs a `kind`")  # fmt: skip
    check_keys(node, _CHECK_KEYS[kind], path, required=("name",))
    name = read_text(node, "name", f"{path}.name", max_len=120)
    line = node.key_lines.get("name", node.line)
    if kind is CheckKind.PATTERN:
        paths, exclude = _globs(node, path, "paths"), _exclude(node, path)
        forbid = _regexes(node, "forbid", path) if "forbid" in node else ()
        require = _regexes(node, "require", path) if "require" in node else ()
        if not forbid and not require:
            fail(
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
                fail(
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
        fail(node.loc(None, path), "a metric check needs `metric`", "name a health metric")
    metric = read_text(node, "metric", f"{path}.metric", max_len=64)
    loc = node.loc("metric", f"{path}.metric")
    if not METRIC_NAME_RE.fullmatch(metric):
        fail(loc, f"metric name {show(metric)} is not a plain identifier", "use e.g. error_rate")
    if metric not in read:
        fail(
            loc,
            f"metric `{metric}` is not read from the hosts",
            did_you_mean(metric, sorted(read))
            + "hosts report the metrics named under health.thresholds; add it there",
        )
    bounds = [key for key in ("max", "min") if key in node]
    if len(bounds) > 1:
        fail(
            node.loc("min", f"{path}.min"),
            f"metric check `{metric}` has both `max` and `min`",
            "give one bound per check; add a second check for the other",
        )
    if not bounds:
        base = next((t for t in health.thresholds if t.metric == metric), None)
        if base is None:
            fail(
                node.loc(None, path),
                f"metric check `{metric}` has no `max` or `min`, and health.thresholds has none",
                "give max: N or min: N, or add a threshold for it under health.thresholds",
            )
        if "unit" in node:
            return Threshold(metric, base.direction, base.limit, read_unit(node, path, ""))
        return base
    limit = read_number(node, bounds[0], f"{path}.{bounds[0]}")
    unit = next((t.unit for t in health.thresholds if t.metric == metric), "")
    return Threshold(metric, Direction(bounds[0]), limit, read_unit(node, path, unit))


def _command_check(
    node: Node, path: str, category: CheckCategory, name: str, line: int, base_dir: Path | None
) -> CommandCheck:
    where = CommandWhere.LOCAL
    if "where" in node:
        hint = "local: on this machine; hosts: on every selected host"
        where = read_choice(node, "where", path, CommandWhere, what="place", hint=hint)
    if "command" not in node:
        fail(node.loc(None, path), "a command check needs `command`", 'write e.g. ["mix", "test"]')
    cpath = f"{path}.command"
    argv = _nonempty_list(
        node,
        "command",
        path,
        "arguments",
        'write the argv as a list, e.g. ["mix", "test"]: commands never go through a shell',
    )
    command = []
    for index, arg in enumerate(argv):
        loc = argv.loc(index, f"{cpath}[{index + 1}]")
        if not isinstance(arg, str) or not arg:
            fail(
                loc,
                f"an argument must be non-empty text, not {show(arg)}",
                'quote it: "true", "5"',
            )
        if len(arg) > 4096 or any(is_control(c) for c in arg):
            fail(loc, "an argument is too long or holds control characters", "write plain text")
        command.append(arg)
    cwd = None
    if "cwd" in node:
        if where is CommandWhere.HOSTS:
            fail(
                node.loc("cwd", f"{path}.cwd"),
                "`cwd` applies to local commands only",
                "drop it; host commands run in the login directory of the SSH user",
            )
        cwd = resolve(read_text(node, "cwd", f"{path}.cwd", max_len=4096), base_dir)
    expect = 0
    if "expect_exit" in node:
        expect = read_int(node, "expect_exit", f"{path}.expect_exit", low=0)
        if expect > 255:
            fail(
                node.loc("expect_exit", f"{path}.expect_exit"),
                f"exit status {expect} is outside 0..255",
                "exit statuses are 0..255",
            )
    timeout = None
    if "timeout" in node:
        timeout = read_duration(node, "timeout", f"{path}.timeout", positive=True)
    return CommandCheck(category, name, line, where, tuple(command), cwd, expect, timeout)


def _nonempty_list(node: Node, key: str, path: str, what: str, hint: str) -> NodeList:
    """``node[key]`` (at ``path.key``) when it is a non-empty list; ``what`` its entries."""
    value = node[key]
    if not isinstance(value, NodeList) or not value:
        fail(
            node.loc(key, f"{path}.{key}"),
            f"`{key}` must be a non-empty list of {what}, not {show(value)}",
            hint,
        )
    return value


def _globs(node: Node, path: str, key: str) -> tuple[str, ...]:
    if key not in node:
        fail(node.loc(None, path), f"this check needs `{key}`", 'e.g. paths: ["lib/**/*.ex"]')
    kpath = f"{path}.{key}"
    value = _nonempty_list(
        node, key, path, "globs", 'write e.g. ["lib/**/*.ex"], relative to the source root'
    )
    out = []
    for index, item in enumerate(value):
        loc = value.loc(index, f"{kpath}[{index + 1}]")
        if not isinstance(item, str) or not item.strip():
            fail(loc, f"a glob must be text, not {show(item)}", 'write e.g. "lib/**/*.ex"')
        parts = item.replace("\\", "/").split("/")
        if item.startswith(("/", "~")) or ".." in parts or any(is_control(c) for c in item):
            fail(
                loc,
                f"glob {show(item)} leaves the source tree",
                "globs are relative to the source root, without '..' or a leading '/'",
            )
        if any("**" in part and part != "**" for part in parts):
            fail(
                loc,
                f"glob {show(item)} uses ** inside a name",
                "** stands for whole directories only: write lib/**/*.ex, not lib/**.ex",
            )
        out.append(item)
    return tuple(out)


def _exclude(node: Node, path: str) -> tuple[str, ...]:
    return _globs(node, path, "exclude") if "exclude" in node else ()


def _regexes(node: Node, key: str, path: str) -> tuple[re.Pattern[str], ...]:
    kpath = f"{path}.{key}"
    value = _nonempty_list(
        node,
        key,
        path,
        "regexes",
        "write e.g. ['Process\\.spawn'] (single quotes keep backslashes as they are)",
    )
    return tuple(_regex(item, value.loc(i, f"{kpath}[{i + 1}]")) for i, item in enumerate(value))


def _regex(value: object, loc: SourceLocation) -> re.Pattern[str]:
    if not isinstance(value, str) or not value:
        fail(loc, f"a regex must be non-empty text, not {show(value)}", "quote it")
    if len(value) > 500:
        fail(loc, f"the regex is {len(value)} characters long", "keep it to 500 or fewer")
    try:
        return re.compile(value, re.MULTILINE)
    except re.error as exc:
        fail(
            loc,
            f"bad regex {show(value)}: {exc.msg} at position {exc.pos}",
            "write it in Python `re` syntax inside single quotes; escape . ( ) with a backslash",
        )
