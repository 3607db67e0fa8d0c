"""Load a playbook: the file's size and YAML, then each section in the order they depend on.

``flags`` first (the baseline), then ``health`` (its source before its thresholds, which may
judge only what a prometheus source queries), ``judgement``, ``phases`` (over the defaults, the
health policy and the scores), ``policy``, ``emergency`` (a phase that exists), ``checks``
(metrics some threshold reads) and ``notify``. The first mistake refuses the whole file.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType

from ..errors import InputError, SourceLocation
from ..fields import show
from ..models import (
    ChecksConfig,
    EmergencyPolicy,
    HealthPolicy,
    MetricsSource,
    NotifyConfig,
    Playbook,
    RolloutPolicy,
    Scoring,
)
from ..yamlsrc import Node, load_file, load_text
from .checks import read_checks
from .flags import read_flags
from .health import HEALTH_KEYS, read_health, read_scoring
from .metrics_source import query_metrics, read_source
from .notify import read_notify
from .phases import read_phases
from .policy import read_emergency, read_policy
from .reader import as_playbook_error, check_keys, fail, kind_of, read_mapping, read_text

__all__ = ["MAX_FILE_BYTES", "load_playbook", "load_playbook_text"]

ROLLOUT_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,63}")
MAX_FILE_BYTES = 1_000_000

_TOP_KEYS = (
    "rollout", "description", "flags", "health", "policy", "emergency", "phases", "checks",
    "notify", "judgement",
)  # fmt: skip


def load_playbook(path: str | Path) -> Playbook:
    """Read, validate and resolve the playbook at ``path``."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError:
        size = 0  # load_file reports a missing or unreadable file
    if size > MAX_FILE_BYTES:
        fail(SourceLocation(str(p)), f"file is {size} bytes", "a playbook is at most 1 MB")
    try:
        data = load_file(p, MAX_FILE_BYTES)  # a regular file only, capped as it is read
    except InputError as exc:
        raise as_playbook_error(exc) from None
    return _playbook(data, str(p), p.parent)


def load_playbook_text(text: str, source: str = "<string>") -> Playbook:
    """Validate and resolve playbook YAML given as text; ``source`` names it in errors."""
    try:
        data = load_text(text, source)
    except InputError as exc:
        raise as_playbook_error(exc) from None
    return _playbook(data, source, None)


def _playbook(data: object, source: str, base_dir: Path | None) -> Playbook:
    if not isinstance(data, Node):
        what = "empty" if data is None else f"a {kind_of(data)}, not a mapping"
        fail(
            SourceLocation(source, 1),
            f"the playbook is {what}",
            "a playbook is a mapping with rollout, flags and phases at the top level",
        )
    check_keys(data, _TOP_KEYS, "", required=("rollout", "flags", "phases"))
    name = read_text(data, "rollout", "rollout", max_len=64)
    if not ROLLOUT_NAME_RE.fullmatch(name):
        fail(
            data.loc("rollout"),
            f"rollout name {show(name)} is not a plain identifier",
            "use lowercase letters, digits, '_' and '-', starting with a letter",
        )
    description = ""
    if "description" in data:
        description = read_text(data, "description", "description", max_len=2000, lines=True)
    flags_node = read_mapping(data, "flags", "flags")
    defaults = read_flags(flags_node)
    source_ = MetricsSource()
    health = HealthPolicy(thresholds=())
    textfile: str | None = None
    if "health" in data:
        node = read_mapping(data, "health", "health")
        check_keys(node, HEALTH_KEYS, "health")
        if "source" in node:
            source_ = read_source(read_mapping(node, "source", "health.source"), base_dir)
        health = read_health(node, "health", health, query_metrics(source_))
        if "textfile" in node:
            textfile = read_text(node, "textfile", "health.textfile", max_len=4096)
    scoring = Scoring()
    if "judgement" in data:
        scoring = read_scoring(data, "judgement", "judgement", scoring)
    phases = read_phases(data, defaults, health, query_metrics(source_), scoring)
    policy = RolloutPolicy()
    if "policy" in data:
        policy = read_policy(read_mapping(data, "policy", "policy"))
    emergency = EmergencyPolicy()
    if "emergency" in data:
        emergency = read_emergency(read_mapping(data, "emergency", "emergency"), len(phases))
    checks = ChecksConfig()
    if "checks" in data:
        checks = read_checks(read_mapping(data, "checks", "checks"), base_dir, health, phases)
    notify = NotifyConfig()
    if "notify" in data:
        notify = read_notify(read_mapping(data, "notify", "notify"), base_dir)
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
