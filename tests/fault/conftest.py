"""The fault suite's report: one line per scenario (held or not), then how many held.

Every test here is marked ``@pytest.mark.fault`` and names its scenario with
``@pytest.mark.scenario("...")`` (parametrized tests add their id). A scenario *held* when its
test passed; an xfail (a known bug, named in its reason) did not hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass
class _Outcome:
    name: str
    status: str = "held"  # held | FAILED | not held (known bug) | skipped
    why: str = ""


_OUTCOMES: dict[str, _Outcome] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scenario(name): the fault scenario a test checks")


def _scenario(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("scenario")
    if item.get_closest_marker("fault") is None or marker is None:
        return None  # a test of the fault tools themselves, not a scenario
    name = str(marker.args[0]) if marker.args else item.name
    callspec = getattr(item, "callspec", None)
    return f"{name} [{callspec.id}]" if callspec is not None else name


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    name = _scenario(item)
    if name is None:
        return
    report: pytest.TestReport = outcome.get_result()
    entry = _OUTCOMES.setdefault(item.nodeid, _Outcome(name))
    if hasattr(report, "wasxfail") and report.passed:
        entry.status, entry.why = "held", "marked as a known bug but passed: remove the xfail"
    elif hasattr(report, "wasxfail"):
        entry.status, entry.why = "not held (known bug)", str(report.wasxfail)
    elif report.failed:
        entry.status = "FAILED"
        entry.why = f"{report.when} failed"
    elif report.skipped and entry.status == "held":
        entry.status = "skipped"
        longrepr = report.longrepr
        entry.why = str(longrepr[2]) if isinstance(longrepr, tuple) else ""


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _OUTCOMES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fault scenarios")
    ran = [o for o in _OUTCOMES.values() if o.status != "skipped"]
    for entry in _OUTCOMES.values():
        why = f" ({entry.why})" if entry.why else ""
        write(f"fault scenario {entry.name}: {entry.status}{why}")
    held = sum(1 for o in ran if o.status == "held")
    write(f"{held}/{len(ran)} fault scenarios held")
