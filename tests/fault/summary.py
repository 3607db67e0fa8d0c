"""The fault suite's report, as a pytest plugin: one line per scenario, then how many held.

Every scenario test is marked ``@pytest.mark.fault`` and names its scenario with
``@pytest.mark.scenario("...")`` (parametrized tests add their id). A scenario *held* when its
test passed; an xfail (a known bug, named in its reason) did not hold. The scenario name rides
on each test report (``user_properties``), so the summary also works under pytest-xdist, where
tests run in workers and only the controller prints: there, the controller must load this
plugin at start-up (``pytest_plugins = ["tests.fault.summary"]`` in an initial conftest), since
it never collects ``tests/fault`` itself. Without that, ``tests/fault/conftest.py`` registers
it when this directory is collected (enough for a run without xdist, or ``pytest -n N
tests/fault``).

A scenario can also report figures (``tests/fault/endurance.py``'s ``figure``: memory,
descriptors, durations, ledger size); they ride on the report the same way and are printed
under the scenario's line.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

_KEY = "fault_scenario"
_FIGURE = "fault_figure"


@dataclass
class _Outcome:
    name: str
    status: str = "held"  # held | FAILED | not held (known bug) | skipped
    why: str = ""
    figures: tuple[str, ...] = ()


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        name = _scenario(item)
        if name is not None:
            item.user_properties.append((_KEY, name))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    name = next((str(v) for k, v in report.user_properties if k == _KEY), None)
    if name is None:
        return
    entry = _OUTCOMES.setdefault(report.nodeid, _Outcome(name))
    figures = tuple(str(v) for k, v in report.user_properties if k == _FIGURE)
    if figures:
        entry.figures = figures
    wasxfail = getattr(report, "wasxfail", None)
    if wasxfail is not None and report.passed:
        entry.status, entry.why = "held", "marked as a known bug but passed: remove the xfail"
    elif wasxfail is not None:
        entry.status, entry.why = "not held (known bug)", str(wasxfail)
    elif report.failed:
        entry.status, entry.why = "FAILED", f"{report.when} failed"
    elif report.skipped and entry.status == "held":
        longrepr = report.longrepr
        entry.status = "skipped"
        entry.why = str(longrepr[2]) if isinstance(longrepr, tuple) else ""


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _OUTCOMES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fault scenarios")
    ran = [o for o in _OUTCOMES.values() if o.status != "skipped"]
    for entry in sorted(_OUTCOMES.values(), key=lambda o: o.name):
        why = f" ({entry.why})" if entry.why else ""
        write(f"fault scenario {entry.name}: {entry.status}{why}")
        for text in entry.figures:
            write(f"    {text}")
    held = sum(1 for o in ran if o.status == "held")
    write(f"{held}/{len(ran)} fault scenarios held")
