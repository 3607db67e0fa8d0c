"""The readiness checklist: the playbook's ``checks:`` run against a source tree and the fleet.

Five kinds of check (``docs/checks.md``): ``pattern`` and ``balance`` read the service's source
tree; ``reachability`` and ``metric`` ask every selected host through the backend seam;
``command`` runs an argv locally (no shell) or on every host. A check that cannot see what it
is meant to judge (no source tree, no matching file, an unreachable host, a metric a host does
not report) FAILS; nothing passes by default.

The scanning and tallying below are pure; the only I/O goes through three seams: the source
tree (read only), :class:`~rollout.backend.Backend`, and a :data:`LocalRunner`. The engine
emits a ``check`` event per result and never prints: :func:`render_checks` returns the text
and ``rollout.junit.junit_xml`` the JUnit XML, for the caller to write.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .backend import Backend
from .clock import SYSTEM, Clock
from .errors import HostError, RolloutError
from .events import Emit, Event, Kind
from .fleet import connect_failures, each, run_parallel
from .models import (
    BalanceCheck,
    Check,
    CheckCategory,
    CommandCheck,
    CommandWhere,
    Direction,
    MetricCheck,
    PatternCheck,
    Playbook,
    ReachabilityCheck,
)

__all__ = [
    "CategoryTally",
    "CheckReport",
    "CheckResult",
    "LocalResult",
    "LocalRunner",
    "render_checks",
    "run_checks",
    "run_local",
]

#: Findings listed per check; the rest are counted ("... and 12 more").
MAX_DETAILS = 20
#: Bytes read from each source file; longer files are scanned up to here.
MAX_FILE_BYTES = 4_000_000
#: Default deadline of a local command check (host commands default to policy.command_timeout).
LOCAL_TIMEOUT = 600.0
#: Lines of a failed command's output kept in a result.
OUTPUT_LINES = 12


@dataclass(frozen=True)
class CheckResult:
    """What one check found: passed or not, why, and the findings behind it."""

    category: CheckCategory
    name: str
    ok: bool
    reason: str
    details: tuple[str, ...] = ()
    duration: float = 0.0


@dataclass(frozen=True)
class CategoryTally:
    category: CheckCategory
    passed: int
    total: int


@dataclass(frozen=True)
class CheckReport:
    """Every result, in checklist order. An empty checklist is not ``ok``."""

    results: tuple[CheckResult, ...]

    @property
    def categories(self) -> tuple[CategoryTally, ...]:
        """Passed/total per category that has checks, in the checklist's category order."""
        out = []
        for category in CheckCategory:
            mine = [r for r in self.results if r.category is category]
            if mine:
                out.append(CategoryTally(category, sum(r.ok for r in mine), len(mine)))
        return tuple(out)

    @property
    def passed(self) -> int:
        return sum(r.ok for r in self.results)

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def overall(self) -> tuple[int, int]:
        return self.passed, self.total

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    @property
    def ok(self) -> bool:
        return bool(self.results) and self.passed == self.total


@dataclass(frozen=True)
class LocalResult:
    """A local command's outcome; ``exit_status`` is None when it did not finish or start."""

    exit_status: int | None
    output: str  # stdout and stderr, interleaved, decoded
    timed_out: bool = False
    error: str | None = None  # why it could not start (not found, not executable)


#: Runs ``argv`` in ``cwd`` with a deadline in seconds, without a shell.
LocalRunner = Callable[[Sequence[str], Path, float], LocalResult]


def run_local(argv: Sequence[str], cwd: Path, timeout: float) -> LocalResult:
    """Run ``argv`` in its own process group; on timeout the whole group is killed."""
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a timeout also reaches what it spawned (mix -> erl)
        )
    except FileNotFoundError:
        return LocalResult(None, "", error=f"{argv[0]}: command not found")
    except PermissionError:
        return LocalResult(None, "", error=f"{argv[0]}: permission denied")
    except OSError as exc:
        return LocalResult(None, "", error=f"{argv[0]}: {exc.strerror or exc}")
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        try:
            out, _ = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # a grandchild left the group and holds the pipe
            out = b""
        return LocalResult(None, out.decode("utf-8", "replace"), timed_out=True)
    return LocalResult(proc.returncode, out.decode("utf-8", "replace"))


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended between the timeout and now
        os.killpg(pid, signal.SIGKILL)


# -- the engine -------------------------------------------------------------------------------


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
            return _pattern(check, root)
        if isinstance(check, BalanceCheck):
            return _balance(check, root)
        if isinstance(check, ReachabilityCheck):
            return _reachability(check, backend, hosts)
        if isinstance(check, MetricCheck):
            return _metric(check, backend, hosts)
        if check.where is CommandWhere.HOSTS:
            timeout = check.timeout or playbook.policy.command_timeout
            return _host_command(check, backend, hosts, timeout)
        return _local_command(check, root, local)
    except _NoTree as exc:
        return _fail(check, exc.message)
    except OSError as exc:  # an unreadable source file, a vanished directory
        return _fail(check, f"could not read the source tree: {exc}")
    except RolloutError as exc:  # one broken check must not hide the others' results
        return _fail(check, f"could not run: {exc.message}")


def _pass(check: Check, reason: str, details: Iterable[str] = ()) -> CheckResult:
    return CheckResult(check.category, check.name, True, reason, tuple(details))


def _fail(check: Check, reason: str, details: Iterable[str] = ()) -> CheckResult:
    return CheckResult(check.category, check.name, False, reason, _capped(list(details)))


def _capped(items: list[str]) -> tuple[str, ...]:
    if len(items) <= MAX_DETAILS:
        return tuple(items)
    return (*items[:MAX_DETAILS], f"... and {len(items) - MAX_DETAILS} more")


# -- source tree checks (pure apart from reading files) --------------------------------------


@dataclass(frozen=True)
class Hit:
    """One regex match in one file."""

    path: str  # relative to the source root, with '/'
    line: int
    pattern: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.excerpt}  [{self.pattern}]"


def find_hits(path: str, text: str, patterns: Sequence[re.Pattern[str]]) -> list[Hit]:
    """Every match of ``patterns`` in ``text``, with its line number, in line order."""
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    hits = []
    for pattern in patterns:
        for match in pattern.finditer(text):
            line = bisect.bisect_right(starts, match.start())
            end = text.find("\n", starts[line - 1])
            excerpt = text[starts[line - 1] : end if end >= 0 else len(text)]
            hits.append(Hit(path, line, pattern.pattern, _printable(excerpt.strip(), 100)))
    return sorted(hits, key=lambda h: (h.line, h.pattern))


def _printable(text: str, limit: int) -> str:
    """``text`` safe for a terminal or an XML report: control characters become '?'."""
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


class _NoTree(RolloutError):
    """The source tree is not configured or not there: every source check fails with this."""


def _source_files(
    root: Path | None, globs: Sequence[str], exclude: Sequence[str]
) -> tuple[list[tuple[str, Path]], list[str]]:
    """(relative path, file) for each file the globs match, and the globs that match none."""
    if root is None:
        raise _NoTree(
            "no source tree is configured: set checks.source_root in the playbook or pass --source"
        )
    if not root.is_dir():
        raise _NoTree(f"source tree {root} does not exist: check checks.source_root or --source")
    base = root.resolve()
    problems = []
    found: dict[str, Path] = {}
    for pattern in globs:
        matched = 0
        for file in _glob(root, pattern):
            real = file.resolve()
            if not real.is_relative_to(base):
                continue  # a symlink out of the tree is not the service's source
            found[file.relative_to(root).as_posix()] = file
            matched += 1
        if not matched:
            problems.append(f"{pattern}: matches no file under {root}")
    dropped = {
        file.relative_to(root).as_posix() for pattern in exclude for file in _glob(root, pattern)
    }
    return sorted((rel, p) for rel, p in found.items() if rel not in dropped), problems


def _glob(root: Path, pattern: str) -> list[Path]:
    try:
        return [p for p in root.glob(pattern) if p.is_file()]
    except (ValueError, NotImplementedError) as exc:
        raise RolloutError(f"bad glob {pattern!r}: {exc}") from None


def _read(path: Path) -> str:
    with path.open("rb") as fh:
        return fh.read(MAX_FILE_BYTES).decode("utf-8", "replace")


def _unmatched(problems: Sequence[str]) -> list[str]:
    return [f"{_plural(len(problems), 'glob')} matched no file"] if problems else []


def _pattern(check: PatternCheck, root: Path | None) -> CheckResult:
    files, problems = _source_files(root, check.paths, check.exclude)
    hits: list[Hit] = []
    lacking: list[str] = []
    for rel, path in files:
        text = _read(path)
        hits.extend(find_hits(rel, text, check.forbid))
        lacking.extend(
            f"{rel}: no match for {req.pattern}" for req in check.require if not req.search(text)
        )
    count = _plural(len(files), "file")
    if problems or hits or lacking:
        parts = _unmatched(problems)
        if hits:
            where = len({h.path for h in hits})
            parts.append(f"{_plural(len(hits), 'forbidden match')} in {_plural(where, 'file')}")
        if lacking:
            parts.append(
                f"{len({x.split(':')[0] for x in lacking})} of {count} lack a required match"
            )
        return _fail(check, "; ".join(parts), [*problems, *map(str, hits), *lacking])
    what = "no forbidden pattern" if check.forbid else ""
    if check.require:
        what = (what + " and " if what else "") + "every required pattern"
    return _pass(check, f"{what} in {count}")


def _balance(check: BalanceCheck, root: Path | None) -> CheckResult:
    files, problems = _source_files(root, check.paths, check.exclude)
    unbalanced = []
    opens_total = 0
    for rel, path in files:
        text = _read(path)
        opens = find_hits(rel, text, [check.open])
        closes = len(check.close.findall(text))
        opens_total += len(opens)
        if len(opens) > closes:
            unbalanced.append(
                f"{rel}:{opens[0].line}: {len(opens)} x {check.open.pattern}"
                f" but {closes} x {check.close.pattern}"
            )
    if problems or unbalanced:
        parts = _unmatched(problems)
        if unbalanced:
            parts.append(
                f"{_plural(len(unbalanced), 'file')} of {len(files)} open more than they close"
            )
        return _fail(check, "; ".join(parts), [*problems, *unbalanced])
    return _pass(
        check, f"{_plural(len(files), 'file')} balanced ({opens_total} opened, all closed)"
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}es" if word.endswith("h") else f"{n} {word}s"


# -- fleet checks -------------------------------------------------------------------------------


def _no_hosts(check: Check) -> CheckResult:
    return _fail(check, "no hosts selected: nothing to check", ["check --limit and the inventory"])


def _host_error(name: str, error: HostError | None) -> str:
    detail = error.detail if error is not None else "failed"
    return f"{name}: {_printable(detail, 300)}"


def _reachability(
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
        return _fail(
            check, f"{len(failures)} of {_plural(len(hosts), 'host')} did not answer", failures
        )
    return _pass(check, f"{_plural(len(hosts), 'host')} connected and their consoles answered")


def _metric(check: MetricCheck, backend: Backend, hosts: tuple[str, ...]) -> CheckResult:
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
        why = f"{len(failures)} of {_plural(len(hosts), 'host')} fail {limit.describe()}"
        return _fail(check, f"{why}; {worst}" if worst else why, failures)
    bound = "max" if limit.direction is Direction.MAX else "min"
    return _pass(check, f"{worst} ({bound} {limit.limit:g}{limit.unit})")


def _host_command(
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
            tail = _printable(result.tail(3).replace("\n", " | "), 300)
            failures.append(f"{name}: exit {result.exit_status}" + (f": {tail}" if tail else ""))
    shown = _argv(check.command)
    if failures:
        return _fail(
            check,
            f"`{shown}` failed on {len(failures)} of {_plural(len(hosts), 'host')}"
            f" (expected exit {check.expect_exit})",
            failures,
        )
    return _pass(check, f"`{shown}` exited {check.expect_exit} on {_plural(len(hosts), 'host')}")


def _local_command(check: CommandCheck, root: Path | None, local: LocalRunner) -> CheckResult:
    cwd = Path(check.cwd) if check.cwd is not None else root
    shown = _argv(check.command)
    if cwd is None:
        return _fail(
            check,
            f"`{shown}` runs in the source tree, and none is configured",
            ["set checks.source_root in the playbook, pass --source, or give the check a cwd"],
        )
    if not cwd.is_dir():
        return _fail(check, f"`{shown}` cannot run: directory {cwd} does not exist")
    timeout = check.timeout or LOCAL_TIMEOUT
    result = local(check.command, cwd, timeout)
    tail = [_printable(x, 200) for x in result.output.strip().splitlines()[-OUTPUT_LINES:]]
    if result.error is not None:
        return _fail(check, f"`{shown}` could not start: {result.error}")
    if result.timed_out or result.exit_status is None:
        return _fail(check, f"`{shown}` was stopped after {timeout:g}s", tail)
    if result.exit_status != check.expect_exit:
        return _fail(
            check, f"`{shown}` exited {result.exit_status}, expected {check.expect_exit}", tail
        )
    return _pass(check, f"`{shown}` exited {result.exit_status} in {cwd}")


def _argv(argv: Sequence[str]) -> str:
    return _printable(" ".join(argv), 120)


# -- rendering -------------------------------------------------------------------------------


def render_checks(report: CheckReport, *, encoding: str | None = "utf-8") -> str:
    """The checklist as text: each check with ✓/✗ and its reason, then the tallies.

    ``encoding`` is the target stream's; where it cannot show ✓ and ✗ (ASCII, latin-1, or
    None), the marks are ``ok`` and ``XX``.
    """
    good, bad, rule = _marks(encoding)
    lines: list[str] = []
    if not report.results:
        return "No checks are configured: add a `checks:` section to the playbook.\n"
    for tally in report.categories:
        lines.append(tally.category.value.replace("_", " ").upper())
        for result in report.results:
            if result.category is not tally.category:
                continue
            lines.append(f"  {good if result.ok else bad} {result.name}: {result.reason}")
            lines.extend(f"      {detail}" for detail in result.details)
        lines.append(f"  {tally.passed}/{tally.total} checks passed")
        lines.append("")
    lines.append(rule * 50)
    lines.append(f"OVERALL: {report.passed}/{report.total} checks passed")
    if report.ok:
        lines.append("Ready: every check passed.")
    else:
        lines.append(f"Not ready: {_plural(len(report.failed), 'check')} failed.")
    return "\n".join(lines) + "\n"


def _marks(encoding: str | None) -> tuple[str, str, str]:
    if encoding:
        try:
            "✓✗═".encode(encoding)
            return "✓", "✗", "═"
        except (UnicodeEncodeError, LookupError):
            pass
    return "ok", "XX", "="
