"""Typed, frozen models shared by every layer.

Loaders (``inventory/``, ``playbook.py``) turn YAML into these at the edge; past them no
``dict[str, Any]`` crosses a module boundary.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import ClassVar

#: A flag's value: ``True``/``False``, or an integer percentage 1..100 (rollout exposure).
FlagValue = bool | int


@dataclass(frozen=True)
class Opaque:
    """A value read from a host that is neither a boolean nor an integer (shown as ``inspect``)."""

    text: str

    def __str__(self) -> str:
        return f"unexpected value {self.text}"


#: What a read-back can observe for one flag: a value, an opaque term, or None (absent).
Observed = FlagValue | Opaque | None

FLAG_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
METRIC_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class Secret:
    """A value that prints masked; call :meth:`reveal` only where it is sent."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return "********"

    def __repr__(self) -> str:
        return "Secret('********')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)


def format_value(value: Observed) -> str:
    """Render a flag value for people: ``on``, ``off``, ``10%`` or ``absent``."""
    if value is None:
        return "absent"
    if value is True:
        return "on"
    if value is False:
        return "off"
    if isinstance(value, Opaque):
        return str(value)
    return f"{value}%"


@dataclass(frozen=True)
class FlagChange:
    """One flag that must change on a host."""

    flag: str
    current: Observed
    target: FlagValue

    def __str__(self) -> str:
        return f"{self.flag}: {format_value(self.current)} -> {format_value(self.target)}"


@dataclass(frozen=True)
class FlagState:
    """A full assignment of values to flags, in a stable order."""

    values: tuple[tuple[str, FlagValue], ...]

    @classmethod
    def of(cls, mapping: Mapping[str, FlagValue]) -> FlagState:
        return cls(tuple(sorted(mapping.items())))

    def as_dict(self) -> dict[str, FlagValue]:
        return dict(self.values)

    def get(self, flag: str) -> FlagValue | None:
        for name, value in self.values:
            if name == flag:
                return value
        return None

    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.values)

    def __iter__(self) -> Iterator[tuple[str, FlagValue]]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def merged(self, delta: Mapping[str, FlagValue]) -> FlagState:
        data = self.as_dict()
        data.update(delta)
        return FlagState.of(data)

    def changes_from(self, current: Mapping[str, Observed]) -> tuple[FlagChange, ...]:
        """The changes that take ``current`` to this state (only flags this state names)."""
        out = []
        for flag, target in self.values:
            have = current.get(flag)
            if not same_value(have, target):
                out.append(FlagChange(flag, have, target))
        return tuple(out)


def same_value(a: Observed, b: Observed) -> bool:
    """Equality that keeps ``True`` and ``1`` (and ``False`` and ``0``) apart."""
    if a is None or b is None:
        return a is b
    return type(a) is type(b) and a == b


class ConsoleMode(Enum):
    """``rollout_console``: how a host's console calls reach its node (rollout.erlcall)."""

    AUTO = "auto"  # erl_call where the release has it and it answers, else rpc (recorded)
    ERL_CALL = "erl_call"  # erl_call only: a host without it fails, saying so
    RPC = "rpc"  # bin/<release> rpc only


class Risk(Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Direction(Enum):
    """Which side of the limit is a breach."""

    MAX = "max"  # breach when value > limit
    MIN = "min"  # breach when value < limit


@dataclass(frozen=True)
class Threshold:
    metric: str
    direction: Direction
    limit: float
    unit: str = ""

    def breached_by(self, value: float) -> bool:
        if self.direction is Direction.MAX:
            return value > self.limit
        return value < self.limit

    def describe(self) -> str:
        op = ">" if self.direction is Direction.MAX else "<"
        return f"{self.metric} {op} {self.limit:g}{self.unit}"


class SourceKind(Enum):
    CONSOLE = "console"  # Foundation.Deployment.Monitor.get_deployment_health/0 over rpc
    COMMAND = "command"  # a command on each host printing a JSON object of metrics
    PROMETHEUS = "prometheus"  # an HTTP Prometheus query API


@dataclass(frozen=True)
class MetricsSource:
    kind: SourceKind = SourceKind.CONSOLE
    command: str | None = None  # SourceKind.COMMAND: argv-joined command run on each host
    url_env: str | None = None  # PROMETHEUS: env variable holding the base URL (may carry a token)
    url_file: str | None = None  # PROMETHEUS: file holding the base URL
    queries: tuple[tuple[str, str], ...] = ()  # metric -> PromQL, for PROMETHEUS
    timeout: float = 10.0


@dataclass(frozen=True)
class Comparison:
    """How one metric of a wave's canary hosts is compared with its baseline hosts (the
    playbook's ``compare:``; judged by :mod:`rollout.canary`)."""

    metric: str
    direction: Direction  # MAX: higher is worse (error rate); MIN: lower is worse (throughput)
    allowed: float = 0.0  # the largest harmless shift, in the metric's unit or in percent
    percent: bool = False  # ``allowed`` is a percentage of the baseline median
    confidence: float = 0.95  # of the one-sided Mann-Whitney U test
    min_samples: int = 5  # per side; fewer is inconclusive
    weight: float = 1.0
    critical: bool = False  # a fail fails the wave whatever the score

    def allowed_shift(self, baseline_median: float) -> float:
        if self.percent:
            return abs(baseline_median) * self.allowed / 100.0
        return self.allowed

    def describe(self) -> str:
        unit = "%" if self.percent else ""
        worse = "higher" if self.direction is Direction.MAX else "lower"
        return (
            f"{self.metric}: canary {worse} than baseline by more than {self.allowed:g}{unit} "
            f"at {self.confidence:.0%} confidence"
        )


@dataclass(frozen=True)
class Scoring:
    """Kayenta's score thresholds, in percent of the judged metrics' weight (``judgement:``)."""

    pass_score: float = 95.0
    marginal_score: float = 75.0


@dataclass(frozen=True)
class HealthPolicy:
    thresholds: tuple[Threshold, ...]
    interval: float = 30.0
    failure_limit: int = 2
    inconclusive_limit: int = 4
    #: relative judgements of a wave's canary against its baseline, per metric
    comparisons: tuple[Comparison, ...] = ()

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric this policy reads: thresholds', then compared-only ones."""
        names = [t.metric for t in self.thresholds]
        return (*names, *(c.metric for c in self.comparisons if c.metric not in names))


#: A wave's cumulative size: a host count, or a percentage of the fleet like "25%".
WaveSize = int | str


@dataclass(frozen=True)
class Wave:
    """One wave of a phase (the playbook's ``waves:``): the fleet share that has the phase
    once it is applied (cumulative, like Argo Rollouts' setWeight) and how long it soaks."""

    hosts: WaveSize
    soak: float  # seconds


@dataclass(frozen=True)
class Gates:
    """What must hold before a phase may be applied (see ``advance``)."""

    backup: bool = False  # a backup taken after the previous phase was applied
    checks: bool = True  # the readiness checklist passes
    approval: bool = False  # `invoke approve --phase N` recorded


@dataclass(frozen=True)
class Phase:
    number: int  # 0 is the baseline (every flag at its default)
    name: str
    risk: Risk
    soak: float  # seconds
    delta: FlagState  # what the playbook lists for this phase
    state: FlagState  # the full, cumulative state the fleet must reach
    validation: str = ""
    health: HealthPolicy | None = None  # None: the playbook default
    gates: Gates = field(default_factory=Gates)
    #: waves before the last one; the remaining hosts form a final wave soaked for ``soak``
    waves: tuple[Wave, ...] = ()
    scoring: Scoring | None = None  # None: the playbook's ``judgement:``

    @property
    def title(self) -> str:
        return f"Phase {self.number}: {self.name}"


#: Ansible's ``serial``: each entry an absolute count or a percentage string like "50%".
BatchSize = int | str


@dataclass(frozen=True)
class RolloutPolicy:
    serial: tuple[BatchSize, ...] = ("100%",)
    max_fail_percentage: float = 0.0
    connect_timeout: float = 10.0
    command_timeout: float = 60.0
    #: how long a run's fleet lease lives on a host without a renewal (rollout.fleetstate)
    lease_ttl: float = 120.0


@dataclass(frozen=True)
class EmergencyPolicy:
    phase: int = 1
    restart: bool = True


@dataclass(frozen=True)
class Playbook:
    path: str
    name: str
    description: str
    defaults: FlagState  # phase 0: every known flag at its default
    phases: tuple[Phase, ...]  # phases 1..N in order (phase 0 not included)
    health: HealthPolicy
    source: MetricsSource
    policy: RolloutPolicy
    emergency: EmergencyPolicy
    checks: ChecksConfig = field(default_factory=lambda: ChecksConfig())
    notify: NotifyConfig = field(default_factory=lambda: NotifyConfig())
    #: flag name -> the playbook line that declares it (for errors that name the line)
    flag_lines: Mapping[str, int] = field(default_factory=dict)
    scoring: Scoring = field(default_factory=lambda: Scoring())
    #: ``health.textfile``: where each soak round's numbers are written in the Prometheus
    #: text format for a node_exporter textfile collector (None: not written)
    textfile: str | None = None

    @property
    def flags(self) -> tuple[str, ...]:
        """The allowlist: every flag the tool may read or write."""
        return self.defaults.names()

    @property
    def last(self) -> int:
        return self.phases[-1].number if self.phases else 0

    def baseline(self) -> Phase:
        return Phase(0, "Baseline (flag defaults)", Risk.LOW, 0.0, FlagState(()), self.defaults)

    def phase(self, number: int) -> Phase:
        """Phase ``number`` (0 is the baseline); KeyError if the playbook has none."""
        if number == 0:
            return self.baseline()
        for phase in self.phases:
            if phase.number == number:
                return phase
        raise KeyError(number)

    def health_for(self, number: int) -> HealthPolicy:
        phase = self.phase(number)
        return phase.health or self.health

    def scoring_for(self, number: int) -> Scoring:
        return self.phase(number).scoring or self.scoring

    def match(self, flags: Mapping[str, Observed]) -> int | None:
        """The highest phase whose full state equals ``flags`` exactly, else None."""
        for phase in reversed((self.baseline(), *self.phases)):
            if not phase.state.changes_from(flags):
                return phase.number
        return None


@dataclass(frozen=True)
class Host:
    """One release host from the inventory, with its connection variables resolved."""

    name: str
    address: str
    port: int = 22
    user: str | None = None
    key_file: str | None = None
    known_hosts_file: str | None = None
    release_bin: str = "/opt/foundation/bin/foundation"
    release_env: tuple[tuple[str, Secret], ...] = ()
    restart_command: str | None = None
    service: str = "foundation"
    groups: frozenset[str] = frozenset()
    state_paths: tuple[str, ...] = ()
    #: bastions to go through, first hop first (ProxyJump); never bypassed
    jumps: tuple[Jump, ...] = ()
    #: rollout_state_dir: where the host keeps its fleet record and lease ("" = the default,
    #: ``<release root>/.rollout-state`` for ``<release root>/bin/<name>``, else
    #: ``<dir of release_bin>/.rollout-state-<name>``; see rollout.fleetstate)
    rollout_state_dir: str = ""
    #: rollout_console: the console path (rollout.erlcall); auto unless the inventory says
    console: ConsoleMode = ConsoleMode.AUTO

    def __str__(self) -> str:
        return self.name

    @property
    def state_dir(self) -> str:
        if self.rollout_state_dir:
            return self.rollout_state_dir
        parent, _, name = self.release_bin.rpartition("/")
        if parent.endswith("/bin") and parent.count("/") >= 2:  # <root>/bin/<release>
            return parent.removesuffix("/bin") + "/.rollout-state"
        # another layout: beside the script, named after it, so two releases never share one
        return f"{parent}/.rollout-state-{name}"


@dataclass(frozen=True)
class Jump:
    """One bastion on the way to a host (OpenSSH's ProxyJump hop), resolved like a host."""

    name: str  # as written in ProxyJump (or the ssh_config Host alias)
    address: str
    port: int = 22
    user: str | None = None
    key_file: str | None = None

    def __str__(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.address}:{self.port}"


@dataclass(frozen=True)
class Inventory:
    path: str
    #: The fleet's identity, its key in the ledger and for backups: ``rollout_fleet`` when
    #: the inventory sets it, else its path relative to the project root (docs/inventory.md)
    name: str
    hosts: tuple[Host, ...]
    groups: Mapping[str, frozenset[str]]  # group -> host names (children resolved)
    #: group -> host names in Ansible's group order (what ``web[0]`` indexes); empty: none known
    group_order: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    #: group -> its direct child groups, in declaration order (for ``invoke inventory --graph``)
    group_children: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    #: The key an older rollout used for this inventory (its file's stem), when it differs
    #: from ``name`` and ``name`` was derived from the path: records under it need a decision
    legacy_name: str | None = None

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)


# -- the readiness checklist (the playbook's `checks:` section) ------------------------------


class CheckCategory(Enum):
    """The checklist's categories, in the order they are run and reported."""

    ARCHITECTURE = "architecture"
    STATE_MANAGEMENT = "state_management"
    ERROR_HANDLING = "error_handling"
    TESTING = "testing"
    OPERATIONS = "operations"


class CheckKind(Enum):
    PATTERN = "pattern"  # regexes no source file may match (forbid) or every one must (require)
    BALANCE = "balance"  # per source file, `close` matches at least as often as `open`
    REACHABILITY = "reachability"  # every host connects and its console answers
    METRIC = "metric"  # a health metric is within its limit on every host
    COMMAND = "command"  # a command exits as expected, locally or on every host


class CommandWhere(Enum):
    LOCAL = "local"  # on the operator's machine, without a shell
    HOSTS = "hosts"  # on every selected host, through the backend


@dataclass(frozen=True)
class PatternCheck:
    """Source files under ``paths`` (globs, relative to the source root) are scanned."""

    kind: ClassVar[CheckKind] = CheckKind.PATTERN
    category: CheckCategory
    name: str
    line: int  # where the check sits in the playbook
    paths: tuple[str, ...]
    forbid: tuple[re.Pattern[str], ...] = ()  # a match anywhere fails the check
    require: tuple[re.Pattern[str], ...] = ()  # every file must match each of these
    exclude: tuple[str, ...] = ()  # globs of files to leave out


@dataclass(frozen=True)
class BalanceCheck:
    """Per file: at least as many ``close`` matches as ``open`` ones (monitor/demonitor)."""

    kind: ClassVar[CheckKind] = CheckKind.BALANCE
    category: CheckCategory
    name: str
    line: int
    paths: tuple[str, ...]
    open: re.Pattern[str]
    close: re.Pattern[str]
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReachabilityCheck:
    kind: ClassVar[CheckKind] = CheckKind.REACHABILITY
    category: CheckCategory
    name: str
    line: int


@dataclass(frozen=True)
class MetricCheck:
    """A health metric read from every host's console; the worst host decides."""

    kind: ClassVar[CheckKind] = CheckKind.METRIC
    category: CheckCategory
    name: str
    line: int
    threshold: Threshold


@dataclass(frozen=True)
class CommandCheck:
    """An argv (never a shell string) whose exit status must be ``expect_exit``."""

    kind: ClassVar[CheckKind] = CheckKind.COMMAND
    category: CheckCategory
    name: str
    line: int
    where: CommandWhere
    command: tuple[str, ...]
    cwd: str | None = None  # LOCAL only; None: the source root
    expect_exit: int = 0
    timeout: float | None = None  # None: 10 minutes locally, policy.command_timeout on hosts


Check = PatternCheck | BalanceCheck | ReachabilityCheck | MetricCheck | CommandCheck


@dataclass(frozen=True)
class ChecksConfig:
    source_root: str | None = None  # the service's source tree; None: it must be given
    checks: tuple[Check, ...] = ()


# -- notifications (the playbook's `notify:` section) ----------------------------------------


class NotifyKind(Enum):
    DEPLOY_START = "deploy.start"
    DEPLOY_FINISH = "deploy.finish"
    ROLLBACK_AUTO = "rollback.auto"
    ROLLBACK_MANUAL = "rollback.manual"
    ROLLBACK_EMERGENCY = "rollback.emergency"


@dataclass(frozen=True)
class WebhookConfig:
    """Where notifications are POSTed. The URL itself is a secret and never in the playbook."""

    url_env: str | None = None  # an environment variable holding the URL
    url_file: str | None = None  # a file holding the URL (resolved against the playbook)
    timeout: float = 5.0  # hard cap on each POST, connect included
    template: str = "notify/slack.json.j2"  # under templates/


@dataclass(frozen=True)
class NotifyConfig:
    webhook: WebhookConfig | None = None  # None: notifications go to the ledger only
    events: frozenset[NotifyKind] = frozenset(NotifyKind)
