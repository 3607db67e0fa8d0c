"""Running the checklist: each check of the playbook in order, a ``check`` event per result.

:func:`run_checks` times each check, emits its event and then the summary; ``_run_one``
sends a check to its kind's module and turns what a check cannot see (no source tree, an
unreadable file, an engine error) into that check's failure, so one broken check never hides
the others' results.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..backend import Backend
from ..clock import SYSTEM, Clock
from ..errors import RolloutError
from ..events import Emit, Event, Kind
from ..models import (
    BalanceCheck,
    Check,
    CommandWhere,
    MetricCheck,
    PatternCheck,
    Playbook,
    ReachabilityCheck,
)
from .fleet import check_host_command, check_local_command, check_metric, check_reachability
from .local import LocalRunner, run_local
from .results import CheckReport, CheckResult, failing
from .source import NoTree, check_balance, check_pattern


def run_checks(
    playbook: Playbook,
    backend: Backend,
    host_names: Sequence[str],
    *,
    source_root: Path | None,
    emit: Emit,
    local: LocalRunner = run_local,
    clock: Clock = SYSTEM,
) -> CheckReport:
    """Run every check of ``playbook`` in order; a ``check`` event per result, then a summary.

    ``source_root`` (the ``--source`` option) wins over the playbook's ``checks.source_root``.
    """
    root: Path | None = source_root
    if root is None and playbook.checks.source_root is not None:
        root = Path(playbook.checks.source_root)
    results = []
    for check in playbook.checks.checks:
        started = clock.monotonic()
        result = _run_one(check, playbook, backend, tuple(host_names), root, local)
        result = CheckResult(
            result.category, result.name, result.ok, result.reason, result.details,
            max(0.0, clock.monotonic() - started),
        )  # fmt: skip
        emit(
            Event(
                Kind.CHECK,
                f"{check.category.value}: {check.name}: {result.reason}",
                ok=result.ok,
                data={
                    "category": check.category.value,
                    "check": check.name,
                    "kind": check.kind.value,
                    "reason": result.reason,
                    "details": list(result.details),
                },
                ts=clock.wall(),
            )
        )
        results.append(result)
    report = CheckReport(tuple(results))
    emit(
        Event(
            Kind.CHECK,
            f"OVERALL: {report.passed}/{report.total} checks passed",
            ok=report.ok,
            data={"passed": report.passed, "total": report.total},
            ts=clock.wall(),
        )
    )
    return report


def _run_one(
    check: Check,
    playbook: Playbook,
    backend: Backend,
    hosts: tuple[str, ...],
    root: Path | None,
    local: LocalRunner,
) -> CheckResult:
    try:
        if isinstance(check, PatternCheck):
            return check_pattern(check, root)
        if isinstance(check, BalanceCheck):
            return check_balance(check, root)
        if isinstance(check, ReachabilityCheck):
            return check_reachability(check, backend, hosts)
        if isinstance(check, MetricCheck):
            return check_metric(check, backend, hosts)
        if check.where is CommandWhere.HOSTS:
            timeout = check.timeout or playbook.policy.command_timeout
            return check_host_command(check, backend, hosts, timeout)
        return check_local_command(check, root, local)
    except NoTree as exc:
        return failing(check, exc.message)
    except OSError as exc:  # an unreadable source file, a vanished directory
        return failing(check, f"could not read the source tree: {exc}")
    except RolloutError as exc:  # one broken check must not hide the others' results
        return failing(check, f"could not run: {exc.message}")
