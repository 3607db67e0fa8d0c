"""The readiness checklist: each kind of check on the fake source trees and the fake backend."""

from __future__ import annotations

import json
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import pytest

from rollout.checks import (
    MAX_DETAILS,
    CheckReport,
    CheckResult,
    LocalResult,
    LocalRunner,
    find_hits,
    render_checks,
    run_checks,
    run_local,
)
from rollout.events import Collector, Kind
from rollout.junit import junit_xml
from rollout.models import CheckCategory, Playbook
from rollout.playbook import load_playbook, load_playbook_text
from rollout.testing import FakeBackend, FakeHost
from rollout.transport.base import CommandResult

ROOT = Path(__file__).resolve().parents[2]
TREES = ROOT / "tests" / "data" / "checks"
GOOD, BAD = TREES / "good", TREES / "bad"
HOSTS = ("web1", "web2", "web3")

BASE = """\
rollout: demo
flags: {alpha: false}
health:
  thresholds:
    error_rate: {max: 5.0, unit: "%"}
    message_delivery_success: {min: 95.0, unit: "%"}
phases:
  - {phase: 1, name: One, risk: low, soak: 1m, set: {alpha: true}}
checks:
  categories:
"""


def playbook(categories: str) -> Playbook:
    """A one-flag playbook whose checks are ``categories`` (YAML indented by four)."""
    return load_playbook_text(BASE + categories, "checks.yml")


def fleet(**faults: dict[str, object]) -> FakeBackend:
    """Three fake hosts; ``faults`` maps a host to attributes set on its FakeHost."""
    hosts = {name: FakeHost(name, ("alpha",)) for name in HOSTS}
    for name, attrs in faults.items():
        for key, value in attrs.items():
            setattr(hosts[name], key, value)
    return FakeBackend(hosts)


def run(
    book: Playbook,
    backend: FakeBackend | None = None,
    *,
    source: Path | None = GOOD,
    hosts: Sequence[str] = HOSTS,
    local: LocalRunner = run_local,
) -> tuple[CheckReport, Collector]:
    """Run ``book``'s checks against ``source`` and the fake fleet, collecting events."""
    events = Collector()
    backend = backend or fleet()
    report = run_checks(book, backend, hosts, source_root=source, emit=events, local=local)
    return report, events


def only(report: CheckReport) -> CheckResult:
    """The one result of a one-check report."""
    assert len(report.results) == 1
    return report.results[0]


# -- pattern and balance ---------------------------------------------------------------------

NO_SPAWN = """\
    architecture:
      - {name: No spawn, kind: pattern, paths: ["lib/**/*.ex"],
         forbid: ['\\bspawn\\(', 'Process\\.spawn']}
"""


def test_forbid_pattern_passes_on_clean_source() -> None:
    """A forbid pattern that matches nowhere passes and says how many files it read."""
    result = only(run(playbook(NO_SPAWN))[0])
    assert result.ok and "7 files" in result.reason


def test_forbid_pattern_fails_with_file_and_line_of_each_hit() -> None:
    """Each forbidden match is reported as file:line with the offending line and pattern."""
    result = only(run(playbook(NO_SPAWN), source=BAD)[0])
    assert not result.ok
    assert result.reason == "3 forbidden matches in 2 files"
    assert "lib/jido_system/agents/task_agent.ex:7: spawn(fn -> warm_up() end)  [\\bspawn\\(]" in (
        result.details
    )
    assert any(d.startswith("lib/foundation/error_handler.ex:10: ") for d in result.details)


def test_require_pattern_fails_for_files_that_lack_it_and_missing_files() -> None:
    """A require pattern fails for a file without the match and for a listed file that is absent."""
    book = playbook(
        """\
    state_management:
      - name: Agents persist
        kind: pattern
        paths: [lib/jido_system/agents/task_agent.ex, lib/jido_system/agents/coordinator_agent.ex,
                lib/jido_system/agents/monitor_agent.ex]
        require: ['use JidoSystem\\.Agents\\.PersistentFoundationAgent']
"""
    )
    assert only(run(book)[0]).ok
    result = only(run(book, source=BAD)[0])
    assert not result.ok
    assert result.reason == "1 glob matched no file; 1 of 2 files lack a required match"
    assert result.details[0].startswith("lib/jido_system/agents/monitor_agent.ex: matches no file")
    assert result.details[1].startswith("lib/jido_system/agents/coordinator_agent.ex: no match")


def test_a_glob_that_matches_nothing_fails_the_check() -> None:
    """A stale glob is a failure, never a vacuous pass."""
    book = playbook(
        "    testing:\n"
        "      - {name: t, kind: pattern, paths: ['test/**/*_spec.exs'], forbid: [x]}\n"
    )
    result = only(run(book)[0])
    assert not result.ok and result.reason == "1 glob matched no file"


def test_exclude_leaves_files_out() -> None:
    """Files matched by `exclude` are not scanned."""
    book = playbook(
        """\
    error_handling:
      - {name: c, kind: pattern, paths: ["lib/**/*.ex"], exclude: [lib/foundation/*.ex],
         forbid: ['rescue\\s+_']}
"""
    )
    assert only(run(book, source=BAD)[0]).ok


def test_balance_passes_and_fails_per_file() -> None:
    """Monitor/demonitor balance holds in the good tree and fails with counts in the bad one."""
    book = playbook(
        """\
    architecture:
      - {name: Monitors, kind: balance, paths: ["lib/**/*.ex"],
         open: 'Process\\.monitor\\(', close: 'Process\\.demonitor\\('}
"""
    )
    good = only(run(book)[0])
    assert good.ok and good.reason == "7 files balanced (1 opened, all closed)"
    bad = only(run(book, source=BAD)[0])
    assert not bad.ok and bad.reason == "1 file of 3 open more than they close"
    assert bad.details == (
        "lib/jido_system/agents/coordinator_agent.ex:5: 2 x Process\\.monitor\\("
        " but 0 x Process\\.demonitor\\(",
    )


@pytest.mark.parametrize("source", [None, TREES / "nowhere"])
def test_a_missing_source_tree_fails_every_source_check(source: Path | None) -> None:
    """Without a source tree, pattern and balance checks fail and say how to give one."""
    book = playbook(
        NO_SPAWN + "      - {name: B, kind: balance, paths: ['lib/*.ex'], open: a, close: b}\n"
    )
    report, _ = run(book, source=source)
    assert [r.ok for r in report.results] == [False, False]
    assert all("--source" in r.reason for r in report.results)


def test_source_option_wins_over_the_playbook(tmp_path: Path) -> None:
    """`source_root=` (the --source option) replaces checks.source_root from the playbook."""
    path = tmp_path / "pb.yml"
    path.write_text(BASE.replace("checks:\n", "checks:\n  source_root: ../bad\n") + NO_SPAWN)
    book = load_playbook(path)
    assert book.checks.source_root == str(tmp_path / "../bad")
    assert not only(run(book, source=None)[0]).ok  # tmp_path/../bad does not exist
    assert only(run(book, source=GOOD)[0]).ok


def test_findings_are_capped(tmp_path: Path) -> None:
    """A check lists at most MAX_DETAILS findings and counts the rest."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "many.ex").write_text("spawn(a)\n" * (MAX_DETAILS + 5))
    result = only(run(playbook(NO_SPAWN), source=tmp_path)[0])
    assert len(result.details) == MAX_DETAILS + 1
    assert result.details[-1] == "... and 5 more"
    assert result.reason == f"{MAX_DETAILS + 5} forbidden matches in 1 file"


def test_hits_know_their_line_and_hide_control_characters() -> None:
    """A match spanning lines reports the line it starts on; escapes in source are neutralised."""
    import re

    text = "ok\n\x1b[31mred\nrescue\n  _ -> :x\n"
    hits = find_hits("f.ex", text, [re.compile(r"rescue\s+_"), re.compile("red")])
    assert [(h.line, h.excerpt) for h in hits] == [(2, "?[31mred"), (3, "rescue")]


# -- hosts -----------------------------------------------------------------------------------

OPS = """\
    operations:
      - {name: Reach, kind: reachability}
"""


def test_reachability_passes_when_every_console_answers() -> None:
    """Every host connects and reads its flags: the check passes."""
    result = only(run(playbook(OPS))[0])
    assert result.ok and result.reason == "3 hosts connected and their consoles answered"


def test_reachability_fails_for_unreachable_hosts_and_dead_nodes() -> None:
    """A host that cannot connect, or whose node is down, fails the check by name."""
    backend = fleet(web2={"reachable": False}, web3={"node_up": False})
    result = only(run(playbook(OPS), backend)[0])
    assert not result.ok and result.reason == "2 of 3 hosts did not answer"
    assert result.details[0] == "web2: cannot reach host"
    assert result.details[1].startswith("web3: remote console failed")


def test_host_checks_fail_without_hosts() -> None:
    """An empty host selection fails host checks instead of passing vacuously."""
    assert not only(run(playbook(OPS), hosts=())[0]).ok


METRIC = """\
    operations:
      - {name: Errors, kind: metric, metric: error_rate}
      - {name: Delivery, kind: metric, metric: message_delivery_success, min: 99}
"""


def test_metric_checks_report_the_worst_host() -> None:
    """Metric checks pass within the limit and name the worst host's value."""
    backend = fleet(web2={"metrics": {"error_rate": 2.5, "message_delivery_success": 99.5}})
    errors, delivery = run(playbook(METRIC), backend)[0].results
    assert errors.ok and errors.reason == "worst host web2: error_rate = 2.5% (max 5%)"
    assert delivery.ok and delivery.reason.startswith("worst host web2:")


def test_metric_breach_on_one_host_fails() -> None:
    """One host over the limit fails the check; the others do not outvote it."""
    backend = fleet(web3={"metrics": {"error_rate": 7.25, "message_delivery_success": 90.0}})
    errors, delivery = run(playbook(METRIC), backend)[0].results
    assert not errors.ok
    assert errors.reason == "1 of 3 hosts fail error_rate > 5%; worst host web3: error_rate = 7.25%"
    assert errors.details == ("web3: error_rate = 7.25% (error_rate > 5%)",)
    assert not delivery.ok and "message_delivery_success < 99%" in delivery.reason


@pytest.mark.parametrize("value", [None, float("nan")])
def test_missing_or_non_numeric_metric_fails(value: float | None) -> None:
    """A metric a host cannot report (or reports as NaN) fails; it never passes."""
    backend = fleet(web1={"metrics": {"error_rate": value, "message_delivery_success": 99.9}})
    errors = run(playbook(METRIC), backend)[0].results[0]
    assert not errors.ok and errors.details[0].startswith("web1: error_rate is")


def test_metric_fails_for_an_unreachable_host() -> None:
    """A host whose health cannot be read fails the metric check."""
    errors = run(playbook(METRIC), fleet(web1={"node_up": False}))[0].results[0]
    assert not errors.ok and errors.details[0].startswith("web1: remote console failed")


class ScriptedRuns(FakeBackend):
    """A FakeBackend whose `run` answers with a per-host exit status (None: timed out)."""

    def __init__(self, exits: dict[str, int | None]) -> None:
        super().__init__({n: FakeHost(n, ("alpha",)) for n in HOSTS})
        self.exits = exits
        self.timeouts: list[float] = []

    def run(self, name: str, argv: Sequence[str], *, timeout: float) -> CommandResult:
        self.timeouts.append(timeout)
        status = self.exits.get(name, 0)
        return CommandResult(name, " ".join(argv), status, "", "boom", 0.1, status is None)


HOST_CMD = """\
    operations:
      - {name: Binary, kind: command, where: hosts, command: [test, -x, /opt/bin/foundation]}
"""


def test_host_command_runs_the_argv_on_every_host() -> None:
    """A host command runs as the exact argv on each host, within policy.command_timeout."""
    backend = ScriptedRuns({})
    result = only(run(playbook(HOST_CMD), backend)[0])
    assert result.ok and result.reason == "`test -x /opt/bin/foundation` exited 0 on 3 hosts"
    assert backend.timeouts == [60.0, 60.0, 60.0]


def test_host_command_fails_on_a_wrong_exit_or_a_timeout() -> None:
    """A host with another exit status, or still running at its deadline, fails the check."""
    result = only(run(playbook(HOST_CMD), ScriptedRuns({"web1": 1, "web3": None}))[0])
    assert not result.ok
    assert result.details == ("web1: exit 1: boom", "web3: still running after 60s")


def test_host_command_fails_for_an_unreachable_host() -> None:
    """A host the command cannot reach fails the check."""
    result = only(run(playbook(HOST_CMD), fleet(web1={"reachable": False}))[0])
    assert not result.ok and result.details == ("web1: cannot reach host",)


# -- local commands --------------------------------------------------------------------------


def local_check(code: str, extra: str = "") -> Playbook:
    """A playbook with one local command check running Python ``code``."""
    argv = json.dumps([sys.executable, "-c", code])
    return playbook(f"    testing:\n      - {{name: L, kind: command, command: {argv}{extra}}}\n")


def test_local_command_runs_in_the_source_tree_by_default() -> None:
    """Without cwd a local command runs in the source root and passes on exit 0."""
    check = "import os, sys; sys.exit(0 if os.path.isfile('mix.exs') else 3)"
    result = only(run(local_check(check))[0])
    assert result.ok, result.reason


def test_local_command_fails_on_a_wrong_exit_with_the_output_tail() -> None:
    """A non-zero exit fails the check and keeps the end of the output."""
    result = only(run(local_check("print('1 test, 1 failure'); raise SystemExit(2)"))[0])
    assert not result.ok and result.reason.endswith("exited 2, expected 0")
    assert result.details == ("1 test, 1 failure",)


def test_local_command_timeout_kills_the_whole_process_group() -> None:
    """A command past its timeout is stopped, children included, and fails the check."""
    code = (
        "import subprocess, sys, time;"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        "time.sleep(60)"
    )
    started = time.monotonic()
    result = only(run(local_check(code, ", timeout: 500ms"))[0])
    assert time.monotonic() - started < 5
    assert not result.ok and "stopped after 0.5s" in result.reason


def test_local_command_not_found_fails() -> None:
    """A command that does not exist fails with a clear reason instead of raising."""
    book = playbook("    testing:\n      - {name: L, kind: command, command: [no-such-cmd-x]}\n")
    result = only(run(book)[0])
    assert not result.ok and "no-such-cmd-x: command not found" in result.reason


def test_local_command_in_a_missing_directory_fails(tmp_path: Path) -> None:
    """A cwd that does not exist fails the check."""
    book = local_check("pass", f", cwd: {json.dumps(str(tmp_path / 'gone'))}")
    assert "does not exist" in only(run(book)[0]).reason


def test_run_local_never_uses_a_shell(tmp_path: Path) -> None:
    """Shell syntax in an argument is passed through literally."""
    result = run_local(
        [sys.executable, "-c", "import sys; print(sys.argv[1])", "$(id) ; x"], tmp_path, 10
    )
    assert result.exit_status == 0 and result.output.strip() == "$(id) ; x"


# -- the report ------------------------------------------------------------------------------

MIXED = NO_SPAWN + METRIC


def mixed_report() -> CheckReport:
    """A report with one pass in architecture and one pass, one failure in operations."""
    backend = fleet(web3={"metrics": {"error_rate": 9.0, "message_delivery_success": 99.5}})
    return run(playbook(MIXED), backend)[0]


def test_report_counts_per_category_and_overall() -> None:
    """The report tallies passed/total per category, overall, and is ok only if all pass."""
    report = mixed_report()
    assert [(t.category, t.passed, t.total) for t in report.categories] == [
        (CheckCategory.ARCHITECTURE, 1, 1),
        (CheckCategory.OPERATIONS, 1, 2),
    ]
    assert report.overall == (2, 3) and not report.ok
    assert not CheckReport(()).ok


def test_each_result_is_an_event_then_the_summary() -> None:
    """The engine emits one check event per result and a final OVERALL event; it never prints."""
    _, events = run(playbook(MIXED))
    checks = events.of(Kind.CHECK)
    assert [e.data.get("check") for e in checks] == ["No spawn", "Errors", "Delivery", None]
    assert checks[-1].message == "OVERALL: 3/3 checks passed" and checks[-1].ok is True


def test_render_shows_marks_reasons_and_tallies() -> None:
    """Text output has a mark and reason per check, a tally per category and the overall line."""
    text = render_checks(mixed_report())
    assert "  ✓ No spawn: no forbidden pattern in 7 files" in text
    assert "  ✗ Errors: 1 of 3 hosts fail error_rate > 5%" in text
    assert "      web3: error_rate = 9% (error_rate > 5%)" in text
    assert "ARCHITECTURE\n" in text and "  1/2 checks passed" in text
    assert "OVERALL: 2/3 checks passed" in text


@pytest.mark.parametrize("encoding", ["ascii", "latin-1", None])
def test_render_falls_back_to_ascii_marks(encoding: str | None) -> None:
    """Where the stream cannot show ✓/✗ the marks are ok/XX and the text is pure ASCII."""
    text = render_checks(mixed_report(), encoding=encoding)
    assert "  ok No spawn:" in text and "  XX Errors:" in text
    text.encode("ascii")


def test_junit_xml_structure_and_counts() -> None:
    """JUnit XML parses, has a suite per category and a failure element per failed check."""
    root = ET.fromstring(junit_xml(mixed_report()))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures")) == ("3", "1")
    suites = root.findall("testsuite")
    assert [(s.get("name"), s.get("tests"), s.get("failures")) for s in suites] == [
        ("architecture", "1", "0"),
        ("operations", "2", "1"),
    ]
    cases = suites[1].findall("testcase")
    assert [c.get("name") for c in cases] == ["Errors", "Delivery"]
    failure = cases[0].find("failure")
    assert failure is not None and cases[1].find("failure") is None
    assert failure.get("message", "").startswith("1 of 3 hosts fail error_rate > 5%")
    assert "web3: error_rate = 9%" in (failure.text or "")


def test_junit_xml_survives_characters_xml_cannot_hold() -> None:
    """Control characters in names or findings are replaced so the XML still parses."""
    report = CheckReport(
        (CheckResult(CheckCategory.TESTING, "odd\x00name", False, "bad \x1b[31m", ("a\x07b",)),)
    )
    root = ET.fromstring(junit_xml(report))
    case = root.find("testsuite/testcase")
    assert case is not None and case.get("name") == "odd?name"


# -- the reference checklist -----------------------------------------------------------------


def passing_local(argv: Sequence[str], cwd: Path, timeout: float) -> LocalResult:
    """A local runner that records nothing and answers exit 0 (mix is not run in unit tests)."""
    return LocalResult(0, "")


def test_reference_checklist_passes_on_the_good_tree() -> None:
    """Every check of the reference playbook passes on the good tree and a healthy fake fleet."""
    book = load_playbook(ROOT / "playbooks" / "otp_refactor.yml")
    report, _ = run(book, local=passing_local)
    assert report.ok, render_checks(report)
    assert {t.category for t in report.categories} == set(CheckCategory)


def test_reference_checklist_fails_every_source_check_on_the_bad_tree() -> None:
    """Each source check of the reference playbook fails on the bad tree; host checks still pass."""
    book = load_playbook(ROOT / "playbooks" / "otp_refactor.yml")
    report, _ = run(book, source=BAD, local=passing_local)
    for result in report.results:
        source_check = result.category is not CheckCategory.OPERATIONS
        is_command = result.name == "Integration tests pass"
        assert result.ok is (not source_check or is_command), result
