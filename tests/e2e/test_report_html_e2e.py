"""`invoke advance --html` against the lab writes the page of the run it just stepped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rollout_lab import Lab, control
from rollout_lab.testing import clean_lab_fixture, lab_fixture  # noqa: F401

from ..page.browser import DOM, chromium, open_page
from .cli import CLI, fast_playbook

pytestmark = pytest.mark.e2e
LAB_HOSTS = 2


def test_advance_html_writes_the_stepped_runs_page_even_on_rollback(
    clean_lab: Lab, tmp_path: Path
) -> None:
    """Two scheduled advances with a breaching host: each writes the page of its own run; the
    second one's page (exit 4) shows the breach on that host and the automatic rollback."""
    playbook = fast_playbook(tmp_path / "fast.yml", failure_limit=2)
    cli = CLI(clean_lab.inventory, tmp_path / "ledger.db")
    ran = cli("deploy", "--phase", "1", "--yes", "--no-wait", "--soak", "10m", playbook=playbook)
    assert ran.code == 0, ran.stderr
    bad = clean_lab.hosts[1].name
    control.set_metrics(clean_lab.hosts[1], error_rate=7.5)
    pages = []
    for n, code in ((1, 0), (2, 4)):
        page = tmp_path / f"advance-{n}.html"
        ran = cli("advance", "--html", str(page), playbook=playbook)
        assert ran.code == code, ran.stdout + ran.stderr
        found = re.search(r"wrote the report page of run (\S+) to", ran.stdout)
        assert found, ran.stdout
        pages.append((found.group(1), page))
    assert pages[0][0] != pages[1][0]
    first = pages[0][1].read_text()
    assert "invoke advance" in first and "BREACH (1/2)" in first
    assert "AUTOMATIC ROLLBACK" not in first
    if chromium() is None:
        pytest.skip("chromium is not installed")
    opened = open_page(pages[1][1], tmp_path / "advance-2.png", height=2400)
    assert opened.console == ()
    dom = DOM(opened.dom)
    assert dom.find("span", id="status")[0].text == "Rolled back"
    assert dom.find("div", id="headline")[0].text.startswith(f"Breach on {bad}: error_rate = 7.5%")
    assert [n.text for n in dom.find("b", cls="breach-host")] == [bad]
    assert dom.find("line", cls="vrollback")
