"""The readiness checklist: the playbook's ``checks:`` section (run by :mod:`rollout.checks`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from .health import Threshold


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
class CheckHead:
    """What every check has: its category, its name and the playbook line it sits on. The
    checks below extend it (these three fields come first, in this order)."""

    category: CheckCategory
    name: str
    line: int  # where the check sits in the playbook


@dataclass(frozen=True)
class PatternCheck(CheckHead):
    """Source files under ``paths`` (globs, relative to the source root) are scanned."""

    kind: ClassVar[CheckKind] = CheckKind.PATTERN
    paths: tuple[str, ...]
    forbid: tuple[re.Pattern[str], ...] = ()  # a match anywhere fails the check
    require: tuple[re.Pattern[str], ...] = ()  # every file must match each of these
    exclude: tuple[str, ...] = ()  # globs of files to leave out


@dataclass(frozen=True)
class BalanceCheck(CheckHead):
    """Per file: at least as many ``close`` matches as ``open`` ones (monitor/demonitor)."""

    kind: ClassVar[CheckKind] = CheckKind.BALANCE
    paths: tuple[str, ...]
    open: re.Pattern[str]
    close: re.Pattern[str]
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReachabilityCheck(CheckHead):
    """Every host connects and its console answers."""

    kind: ClassVar[CheckKind] = CheckKind.REACHABILITY


@dataclass(frozen=True)
class MetricCheck(CheckHead):
    """A health metric read from every host's console; the worst host decides."""

    kind: ClassVar[CheckKind] = CheckKind.METRIC
    threshold: Threshold


@dataclass(frozen=True)
class CommandCheck(CheckHead):
    """An argv (never a shell string) whose exit status must be ``expect_exit``."""

    kind: ClassVar[CheckKind] = CheckKind.COMMAND
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
