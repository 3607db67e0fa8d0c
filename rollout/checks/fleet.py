"""The fleet and command checks: ``reachability``, ``metric``, and ``command`` on every host
(through the :class:`~rollout.backend.Backend` seam) or locally (through a
:data:`~rollout.checks.local.LocalRunner`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from ..backend import Backend
from ..errors import HostError
from ..fleet import connect_failures, each, run_parallel
from ..models import Check, CommandCheck, Direction, MetricCheck, ReachabilityCheck
from .local import LOCAL_TIMEOUT, LocalRunner
from .results import CheckResult, failing, passing, plural, printable

#: Lines of a failed command's output kept in a result.
OUTPUT_LINES = 12


def _no_hosts(check: Check) -> CheckResult:
    return failing(
        check, "no hosts selected: nothing to check", ["check --limit and the inventory"]
    )


def _host_error(name: str, error: HostError | None) -> str:
    detail = error.detail if error is not None else "failed"
    return f"{name}: {printable(detail, 300)}"


def check_reachability(
    check: ReachabilityCheck, backend: Backend, hosts: tuple[str, ...]
) -> CheckResult:
    if not hosts:
        return _no_hosts(check)
    reads = each(hosts, lambda name: backend.console(name).read_flags(),
                 connect=connect_failures(backend.connect))  # fmt: skip
    # the connection failures first, then the consoles that did not answer
    failed = sorted((o for o in reads.values() if not o.ok), key=lambda o: not o.unreachable)
    failures = [_host_error(o.host, o.error) for o in failed]
    if failures:
        return failing(
            check, f"{len(failures)} of {plural(len(hosts), 'host')} did not answer", failures
        )
    return passing(check, f"{plural(len(hosts), 'host')} connected and their consoles answered")


def check_metric(check: MetricCheck, backend: Backend, hosts: tuple[str, ...]) -> CheckResult:
    if not hosts:
        return _no_hosts(check)
    limit = check.threshold
    readings = run_parallel(hosts, lambda name: backend.console(name).health())
    failures = []
    values: list[tuple[float, str]] = []
    for name in hosts:
        outcome = readings[name]
        if outcome.value is None:
            failures.append(_host_error(name, outcome.error))
            continue
        value = outcome.value.metrics.get(limit.metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            failures.append(f"{name}: {limit.metric} is missing or not a number")
            continue
        if not math.isfinite(value):  # NaN compares false both ways, so it would pass
            failures.append(f"{name}: {limit.metric} is {value}, not a finite number")
            continue
        values.append((float(value), name))
        if limit.breached_by(float(value)):
            failures.append(f"{name}: {limit.metric} = {value:g}{limit.unit} ({limit.describe()})")
    worst = ""
    if values:
        pick = max if limit.direction is Direction.MAX else min
        value, name = pick(values)
        worst = f"worst host {name}: {limit.metric} = {value:g}{limit.unit}"
    if failures:
        why = f"{len(failures)} of {plural(len(hosts), 'host')} fail {limit.describe()}"
        return failing(check, f"{why}; {worst}" if worst else why, failures)
    bound = "max" if limit.direction is Direction.MAX else "min"
    return passing(check, f"{worst} ({bound} {limit.limit:g}{limit.unit})")


def check_host_command(
    check: CommandCheck, backend: Backend, hosts: tuple[str, ...], timeout: float
) -> CheckResult:
    if not hosts:
        return _no_hosts(check)
    results = run_parallel(hosts, lambda name: backend.run(name, check.command, timeout=timeout))
    failures = []
    for name in hosts:
        outcome = results[name]
        result = outcome.value
        if result is None:
            failures.append(_host_error(name, outcome.error))
        elif result.timed_out or result.exit_status is None:
            failures.append(f"{name}: still running after {timeout:g}s")
        elif result.exit_status != check.expect_exit:
            tail = printable(result.tail(3).replace("\n", " | "), 300)
            failures.append(f"{name}: exit {result.exit_status}" + (f": {tail}" if tail else ""))
    shown = _argv(check.command)
    if failures:
        return failing(
            check,
            f"`{shown}` failed on {len(failures)} of {plural(len(hosts), 'host')}"
            f" (expected exit {check.expect_exit})",
            failures,
        )
    return passing(check, f"`{shown}` exited {check.expect_exit} on {plural(len(hosts), 'host')}")


def check_local_command(check: CommandCheck, root: Path | None, local: LocalRunner) -> CheckResult:
    cwd = Path(check.cwd) if check.cwd is not None else root
    shown = _argv(check.command)
    if cwd is None:
        return failing(
            check,
            f"`{shown}` runs in the source tree, and none is configured",
            ["set checks.source_root in the playbook, pass --source, or give the check a cwd"],
        )
    if not cwd.is_dir():
        return failing(check, f"`{shown}` cannot run: directory {cwd} does not exist")
    timeout = check.timeout or LOCAL_TIMEOUT
    result = local(check.command, cwd, timeout)
    tail = [printable(x, 200) for x in result.output.strip().splitlines()[-OUTPUT_LINES:]]
    if result.error is not None:
        return failing(check, f"`{shown}` could not start: {result.error}")
    if result.timed_out or result.exit_status is None:
        return failing(check, f"`{shown}` was stopped after {timeout:g}s", tail)
    if result.exit_status != check.expect_exit:
        return failing(
            check, f"`{shown}` exited {result.exit_status}, expected {check.expect_exit}", tail
        )
    return passing(check, f"`{shown}` exited {result.exit_status} in {cwd}")


def _argv(argv: Sequence[str]) -> str:
    return printable(" ".join(argv), 120)
