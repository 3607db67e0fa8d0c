"""Typed, frozen models shared by every layer.

Loaders (``inventory/``, ``playbook/``) turn YAML into these at the edge; past them no
``dict[str, Any]`` crosses a module boundary. One module a concept:

- ``flags``: flag values, observed values, ``FlagState`` and ``FlagChange``;
- ``secret``: ``Secret``, a value that prints masked;
- ``health``: thresholds, metric sources, canary comparisons, scoring, ``HealthPolicy``;
- ``policy``: a phase's ``Gates``, ``RolloutPolicy`` (batches, timeouts), ``EmergencyPolicy``;
- ``phases``: ``Risk``, ``Wave`` and ``Phase``;
- ``hosts``: ``Host``, ``Jump``, ``Inventory`` and a host's ``ConsoleMode``;
- ``checklist``: the readiness checks (the playbook's ``checks:``);
- ``notifyconfig``: the notifications (the playbook's ``notify:``);
- ``playbook``: the ``Playbook`` aggregate.

Every public name is exported here: import from ``rollout.models``.
"""

from __future__ import annotations

from .checklist import (
    BalanceCheck,
    Check,
    CheckCategory,
    CheckHead,
    CheckKind,
    ChecksConfig,
    CommandCheck,
    CommandWhere,
    MetricCheck,
    PatternCheck,
    ReachabilityCheck,
)
from .flags import (
    FLAG_NAME_RE,
    FlagChange,
    FlagState,
    FlagValue,
    Observed,
    Opaque,
    format_value,
    same_value,
)
from .health import (
    METRIC_NAME_RE,
    Comparison,
    Direction,
    HealthPolicy,
    MetricsSource,
    Scoring,
    SourceKind,
    Threshold,
)
from .hosts import ConsoleMode, Host, Inventory, Jump
from .notifyconfig import NotifyConfig, NotifyKind, WebhookConfig
from .phases import Phase, Risk, Wave, WaveSize
from .playbook import Playbook
from .policy import BatchSize, EmergencyPolicy, Gates, RolloutPolicy
from .secret import Secret

__all__ = [
    "FLAG_NAME_RE",
    "METRIC_NAME_RE",
    "BalanceCheck",
    "BatchSize",
    "Check",
    "CheckCategory",
    "CheckHead",
    "CheckKind",
    "ChecksConfig",
    "CommandCheck",
    "CommandWhere",
    "Comparison",
    "ConsoleMode",
    "Direction",
    "EmergencyPolicy",
    "FlagChange",
    "FlagState",
    "FlagValue",
    "Gates",
    "HealthPolicy",
    "Host",
    "Inventory",
    "Jump",
    "MetricCheck",
    "MetricsSource",
    "NotifyConfig",
    "NotifyKind",
    "Observed",
    "Opaque",
    "PatternCheck",
    "Phase",
    "Playbook",
    "ReachabilityCheck",
    "RolloutPolicy",
    "Risk",
    "Scoring",
    "Secret",
    "SourceKind",
    "Threshold",
    "Wave",
    "WaveSize",
    "WebhookConfig",
    "format_value",
    "same_value",
]
